"""Small local copies of the eight QA benchmarks, in the columns their Hugging Face datasets have, written as parquet
files the way `Dataset.to_parquet` / a hub snapshot stores them; plus a scripted model's answers and the scores those
answers must get, computed by hand from each benchmark's published scoring rule (comments below).

    root/<benchmark>/<split>-00000-of-00001.parquet
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

NAN = "nan"  # MMBench's hub files hold the string "nan" where a question has no hint or option


def _image(seed: int, size: int = 32) -> Any:
    from PIL import Image

    return Image.new("RGB", (size, size), ((37 * seed) % 256, (91 * seed) % 256, (53 * seed) % 256))


def _write(root: Path, name: str, split: str, rows: list[dict[str, Any]], features: dict[str, Any]) -> Path:
    import datasets

    columns = {k: [r[k] for r in rows] for k in features}
    ds = datasets.Dataset.from_dict(columns, features=datasets.Features(features))
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
    return folder


def _v(kind: str = "string") -> Any:
    import datasets

    return datasets.Value(kind)


def _seq() -> Any:
    import datasets

    return datasets.Sequence(datasets.Value("string"))


def _img() -> Any:
    import datasets

    return datasets.Image()


# Scripted replies by benchmark and row, and the score each benchmark must get from them (hand-computed).
ANSWERS: dict[str, dict[str, str]] = {
    # MMMU: row 0 multiple choice, answer A, reply A (right); row 1 answer C, reply B (wrong); row 2 open, answer
    # 5, reply 5 (right). MMMU's accuracy is per question: 2/3.
    "mmmu": {"0": "A", "1": "B", "2": "5"},
    # MM-Vet: every reply is graded by the judge server in the tests (1.0, 0.5, 0.0 by question): mean 0.5 -> 50.
    "mmvet": {"0": "a red square", "1": "seven", "2": "no idea"},
    # MMStar: l2 category "perception" rows 0-2 answers A B C, replies A A A -> 1/3; category "math" row 3 answer
    # D, reply D -> 1. MMStar averages the categories: (1/3 + 1) / 2 = 2/3 (pooled accuracy would be 1/2).
    "mmstar": {"0": "A", "1": "A", "2": "A", "3": "D"},
    # OCRBench: a question scores 1 when the (lower-cased) answer is contained in the reply; handwritten maths
    # (HME100k) ignores spaces. Row 0 "Hello" in "hello world" 1; row 1 "STOP" vs "go" 0; row 2 HME100k "x^2" in
    # "x ^ 2" 1; row 3 "42" vs "4 2" 0 -> 2 of 4 correct = 500 per 1000 questions (MM: 50).
    "ocrbench": {"0": "hello world", "1": "go", "2": "x ^ 2", "3": "4 2"},
    # MMBench (circular evaluation): main questions 0-3 (answers A B C D) and row 4, index 1000000, a variant of
    # question 0 with the options rotated (answer B). A main question counts only if it and all its variants are
    # right. Replies: 0 A (right) but its variant C (wrong) -> 0; 1 C (wrong) -> 0; 2 C -> 1; 3 D -> 1: 2/4 = 50.
    # Row 3's question and reply hold control characters (\x0b, \x07), as some MMBench rows do.
    "mmbench": {"0": "A", "1": "C", "2": "C", "3": "D\x0b", "4": "C"},
    # TextVQA (VQA accuracy, min(1, matches/3) averaged over the 10 leave-one-out subsets of the human answers):
    # row 0 "Coca Cola" vs 10 x "coca cola" -> 1; row 1 "halt" vs 7 "stop" + 3 "halt" -> (7 x 1 + 3 x 2/3)/10 = 0.9;
    # row 2 "7" vs 10 x "5" -> 0. Mean 1.9/3 = 63.33...
    "textvqa": {"0": "Coca Cola", "1": "halt", "2": "7"},
    # InfoVQA (ANLS, 0 below 0.5): row 0 "blue" = "blue" 1; row 1 "1985" vs "1984": 1 - 1/4 = 0.75; row 2 "banana"
    # vs "apple": 1 - 5/6 < 0.5 -> 0. Mean 1.75/3 = 58.33...
    "infovqa": {"0": "blue", "1": "1985", "2": "banana"},
    # DocVQA (ANLS): row 0 "total" vs "Total" (case folded) 1; row 1 "12.50" vs "12.5": 1 - 1/5 = 0.8. Mean 0.9.
    "docvqa": {"0": "total", "1": "12.50"},
}
EXPECTED: dict[str, float] = {
    "mmmu": 200 / 3,
    "mmvet": 50.0,
    "mmstar": 200 / 3,
    "ocrbench": 500.0,
    "mmbench": 50.0,
    "textvqa": 190 / 3,
    "infovqa": 175 / 3,
    "docvqa": 90.0,
}
EXPECTED_MM = (200 / 3 + 50.0 + 200 / 3 + 50.0 + 50.0 + 190 / 3 + 175 / 3 + 90.0) / 8
MMVET_GRADES = {"What is shown?": "1.0", "How many?": "0.5 partly", "Why?": "0.0"}
"""The judge server's grade by MM-Vet question (the reply's first token is the grade)."""


def write_answers(path: Path, answers: dict[str, dict[str, str]] | None = None) -> Path:
    path.write_text(json.dumps(answers or ANSWERS))
    return path


def write_benchmarks(root: Path, only: list[str] | None = None) -> Path:
    """Write the local copies under `root` (one folder per benchmark) and return `root`."""
    builders = {
        "mmmu": _mmmu,
        "mmvet": _mmvet,
        "mmstar": _mmstar,
        "ocrbench": _ocrbench,
        "mmbench": _mmbench,
        "textvqa": _textvqa,
        "infovqa": _infovqa,
        "docvqa": _docvqa,
    }
    for name, build in builders.items():
        if only is None or name in only:
            build(root)
    return root


def _mmmu(root: Path) -> None:
    rows = [
        {
            "id": "validation_Art_1",
            "question": "<image 1> What colour is the square?",
            "question_type": "multiple-choice",
            "options": "['red', 'blue', 'green', 'yellow']",
            "answer": "A",
            "image_1": _image(1),
        },
        {
            "id": "validation_Math_1",
            "question": "<image 1> Which shape is shown?",
            "question_type": "multiple-choice",
            "options": "['circle', 'line', 'square', 'cone']",
            "answer": "C",
            "image_1": _image(2),
        },
        {
            "id": "validation_Math_2",
            "question": "<image 1> How many sides has a pentagon?",
            "question_type": "open",
            "options": "[]",
            "answer": "5",
            "image_1": _image(3),
        },
    ]
    features = {"id": _v(), "question": _v(), "question_type": _v(), "options": _v(), "answer": _v(), "image_1": _img()}
    _write(root, "mmmu", "validation", rows, features)


def _mmvet(root: Path) -> None:
    rows = [
        {"question_id": f"v{i}", "question": q, "answer": a, "capability": cap, "image": _image(10 + i)}
        for i, (q, a, cap) in enumerate(
            [
                ("What is shown?", "a red square", "rec"),
                ("How many?", "7 <OR> seven", "ocr,math"),
                ("Why?", "because it is red", "know,gen"),
            ]
        )
    ]
    _write(
        root,
        "mmvet",
        "test",
        rows,
        {"question_id": _v(), "question": _v(), "answer": _v(), "capability": _v(), "image": _img()},
    )


def _mmstar(root: Path) -> None:
    def q(i: int, answer: str, l2: str) -> dict[str, Any]:
        return {
            "index": i,
            "question": f"Question {i}? Options: A: one, B: two, C: three, D: four",
            "answer": answer,
            "category": "coarse perception",
            "l2_category": l2,
            "image": _image(20 + i),
        }

    rows = [q(0, "A", "perception"), q(1, "B", "perception"), q(2, "C", "perception"), q(3, "D", "math")]
    _write(
        root,
        "mmstar",
        "val",
        rows,
        {
            "index": _v("int64"),
            "question": _v(),
            "answer": _v(),
            "category": _v(),
            "l2_category": _v(),
            "image": _img(),
        },
    )


def _ocrbench(root: Path) -> None:
    rows = [
        {
            "question": "What is written?",
            "answer": ["Hello"],
            "dataset": "IIIT5K",
            "question_type": "Regular Text Recognition",
            "image": _image(30),
        },
        {
            "question": "What does the sign say?",
            "answer": ["STOP"],
            "dataset": "IC13_857",
            "question_type": "Irregular Text Recognition",
            "image": _image(31),
        },
        {
            "question": "Write the formula.",
            "answer": ["x^2"],
            "dataset": "HME100k",
            "question_type": "Handwritten Mathematical Expression Recognition",
            "image": _image(32),
        },
        {
            "question": "What number is shown?",
            "answer": ["42"],
            "dataset": "SVT",
            "question_type": "Digit String Recognition",
            "image": _image(33),
        },
    ]
    _write(
        root,
        "ocrbench",
        "test",
        rows,
        {"question": _v(), "answer": _seq(), "dataset": _v(), "question_type": _v(), "image": _img()},
    )


def _mmbench(root: Path) -> None:
    def q(
        index: int, question: str, options: tuple[str, str, str, str], answer: str, hint: str = NAN, seed: int = 0
    ) -> dict[str, Any]:
        a, b, c, d = options
        return {
            "index": index,
            "question": question,
            "hint": hint,
            "A": a,
            "B": b,
            "C": c,
            "D": d,
            "answer": answer,
            "category": "object_localization",
            "L2-category": "finegrained_perception (instance-level)",
            "source": "test",
            "split": "dev",
            "image": _image(40 + seed),
        }

    rows = [
        q(0, "Which colour?", ("red", "blue", "green", "black"), "A", hint="Look at the square.", seed=0),
        q(1, "Which shape?", ("circle", "square", "line", "cone"), "B", seed=1),
        q(2, "How many?", ("one", "two", "three", "four"), "C", seed=2),
        q(3, "Which\x0b side?\x07", ("up", "down", "left", "right"), "D", seed=3),
        q(1000000, "Which colour?", ("black", "red", "blue", "green"), "B", hint="Look at the square.", seed=0),
    ]
    features = {
        k: _v()
        for k in ("question", "hint", "A", "B", "C", "D", "answer", "category", "L2-category", "source", "split")
    }
    _write(root, "mmbench", "dev", rows, {"index": _v("int64"), **features, "image": _img()})


def _textvqa(root: Path) -> None:
    rows = [
        {"question_id": 1, "question": "What brand is it?", "answers": ["coca cola"] * 10, "image": _image(50)},
        {
            "question_id": 2,
            "question": "What does the sign say?",
            "answers": ["stop"] * 7 + ["halt"] * 3,
            "image": _image(51),
        },
        {"question_id": 3, "question": "What number is it?", "answers": ["5"] * 10, "image": _image(52)},
    ]
    for r in rows:
        r["ocr_tokens"] = ["sign"]
    _write(
        root,
        "textvqa",
        "validation",
        rows,
        {"question_id": _v("int64"), "question": _v(), "answers": _seq(), "ocr_tokens": _seq(), "image": _img()},
    )


def _docvqa_like(root: Path, name: str, qa: list[tuple[str, list[str]]], seed: int) -> None:
    rows = [
        {"questionId": str(i), "question": q, "answers": a, "image": _image(seed + i)} for i, (q, a) in enumerate(qa)
    ]
    _write(root, name, "validation", rows, {"questionId": _v(), "question": _v(), "answers": _seq(), "image": _img()})


def _infovqa(root: Path) -> None:
    _docvqa_like(
        root, "infovqa", [("Which colour?", ["blue"]), ("Which year?", ["1984"]), ("Which fruit?", ["apple"])], 60
    )


def _docvqa(root: Path) -> None:
    _docvqa_like(root, "docvqa", [("What is the heading?", ["Total"]), ("What is the amount?", ["12.5"])], 70)
