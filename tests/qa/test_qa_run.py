"""`vlascore qa` end to end: lmms-eval runs the benchmarks' own scoring on small local copies, asked by vlascore's
lmms-eval model (resolved through its entry point); scores must equal the hand-computed values in qa_data.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from qa_data import ANSWERS, EXPECTED, EXPECTED_MM, MMVET_GRADES, write_answers, write_benchmarks
from qa_kit import bench_data_fixture, needs_lmms, offline_hf_fixture  # noqa: F401 - fixtures
from typer.testing import CliRunner

from vlascore.cli import app
from vlascore.judging.endpoint import Endpoint
from vlascore.judging.mockserver import MockOpenAI
from vlascore.qa.benchmarks import resolve
from vlascore.qa.records import read_results, read_samples
from vlascore.qa.run import QAOptions, run_qa

pytestmark = [needs_lmms, pytest.mark.slow]
runner = CliRunner()


def _grade_by_question(body: dict[str, Any]) -> str:
    text = body["messages"][-1]["content"]
    row = text.rsplit("\n", 1)[-1]  # the table row to complete: question | truth | prediction |
    return next(grade for question, grade in MMVET_GRADES.items() if row.startswith(f"{question} |"))


def test_a_scripted_model_gets_the_hand_computed_score_on_every_benchmark(bench_data: Path, tmp_path: Path) -> None:
    answers = write_answers(tmp_path / "answers.json")
    out = tmp_path / "run"
    with MockOpenAI(_grade_by_question) as server:
        result = runner.invoke(
            app,
            [
                "qa",
                "-m",
                "scripted-qa",
                "-M",
                f"answers={answers}",
                "-b",
                "all",
                "--data-dir",
                str(bench_data),
                "-o",
                str(out),
                "--base-url",
                server.url,
                "--judge-model",
                "grader",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--no-progress",
            ],
        )
        assert result.exit_code == 0, result.output
        assert server.chat_calls == 3  # one grade per MM-Vet reply
    results = read_results(out)
    assert list(results) == ["mmmu", "mmvet", "mmstar", "ocrbench", "mmbench", "textvqa", "infovqa", "docvqa"]
    for name, expected in EXPECTED.items():
        assert results[name].status == "ok", (name, results[name].failure_reason)
        tolerance = 5e-4 if name == "mmmu" else 1e-9  # MMMU's aggregation rounds the accuracy to 5 decimals
        assert results[name].score == pytest.approx(expected, abs=tolerance), name
    assert results["ocrbench"].unit == "/1000" and results["ocrbench"].mm_value == pytest.approx(50.0)
    assert results["ocrbench"].lmms_value == pytest.approx(0.002)  # lmms-eval's Final Score / 1000, 4 questions
    assert results["mmvet"].grader == {
        "grader": results["mmvet"].grader["grader"],
        "judge_model": "grader",
        "base_url": server.url,
    }
    mmvet = read_samples(out, "mmvet")
    assert [s.score for s in mmvet] == [1.0, 0.5, 0.0] and all(s.grade and s.grade.status == "ok" for s in mmvet)
    bench = read_samples(out, "mmbench")
    assert [s.prediction for s in bench] == ["A", "C", "C", "D", "C"]  # the control character is gone
    assert EXPECTED_MM == pytest.approx(61.875)  # (66.67 + 50 + 66.67 + 500/10 + 50 + 63.33 + 58.33 + 90) / 8
    assert "MM = 61.9 (mean of mmmu, mmvet, mmstar, ocrbench, mmbench, textvqa, infovqa, docvqa)" in " ".join(
        result.output.split()
    )

    # Run again: every benchmark is up to date, nothing is asked or graded again (no lmms-eval process at all).
    outcome = run_qa(
        model="scripted-qa",
        model_args={"answers": str(answers)},
        benchmarks=resolve("all"),
        out=out,
        data_dir=bench_data,
        options=QAOptions(grader=Endpoint(model="grader", base_url=server.url), cache_dir=tmp_path / "cache"),
    )
    assert sorted(outcome.skipped) == sorted(EXPECTED) and outcome.log is None and not outcome.failed

    shown = runner.invoke(app, ["score", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "500.0" in shown.output and "MM = 61.9" in " ".join(shown.output.split())


def test_a_failing_benchmark_is_an_error_naming_it_and_the_others_are_kept(bench_data: Path, tmp_path: Path) -> None:
    """The scripted model has no answer for one TextVQA question: lmms-eval's run of textvqa fails (its CLI would
    have carried on); docvqa is scored, textvqa is recorded as failed with the reason, and the call exits 1."""
    answers = write_answers(tmp_path / "answers.json", {**ANSWERS, "textvqa": {"0": "Coca Cola"}})
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "qa",
            "-m",
            "scripted-qa",
            "-M",
            f"answers={answers}",
            "-b",
            "textvqa,docvqa",
            "--data-dir",
            str(bench_data),
            "-o",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 1
    flat = " ".join(result.output.split())
    assert "1 benchmark(s) without a score: textvqa" in flat and "no answer for textvqa row 1" in flat
    results = read_results(out)
    assert results["textvqa"].status == "failed" and results["textvqa"].score is None
    assert results["textvqa"].failure_reason.startswith("textvqa: KeyError")
    assert results["docvqa"].status == "ok" and results["docvqa"].score == pytest.approx(EXPECTED["docvqa"])
    assert not (out / "qa" / "textvqa.samples.jsonl").exists()

    # Answering again with the full answers scores textvqa; docvqa is up to date and not asked again.
    fixed = runner.invoke(
        app,
        [
            "qa",
            "-m",
            "scripted-qa",
            "-M",
            f"answers={write_answers(answers)}",
            "-b",
            "textvqa,docvqa",
            "--data-dir",
            str(bench_data),
            "-o",
            str(out),
            "--no-progress",
        ],
    )
    assert fixed.exit_code == 0, fixed.output
    assert read_results(out)["textvqa"].score == pytest.approx(EXPECTED["textvqa"])


def test_a_local_copy_without_the_scored_columns_is_refused_before_anything_runs(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    data = write_benchmarks(tmp_path / "data", only=["textvqa"])
    copy = data / "textvqa" / "validation-00000-of-00001.parquet"
    pq.write_table(pq.read_table(copy).drop(["answers"]), copy)  # lmms-eval would score every question 0
    result = runner.invoke(
        app,
        [
            "qa",
            "-m",
            "scripted-qa",
            "-M",
            f"answers={write_answers(tmp_path / 'a.json')}",
            "-b",
            "textvqa",
            "--data-dir",
            str(data),
            "-o",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 2
    assert "textvqa: the data at" in result.output and "lacks the column(s) answers" in " ".join(result.output.split())
    assert not (tmp_path / "run").exists()


def test_mmvet_grades_that_fail_leave_it_incomplete_then_a_later_call_grades_the_stored_replies(
    bench_data: Path, tmp_path: Path
) -> None:
    answers = write_answers(tmp_path / "answers.json")
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = [
        "qa",
        "-m",
        "scripted-qa",
        "-M",
        f"answers={answers}",
        "-b",
        "mmvet",
        "--data-dir",
        str(bench_data),
        "-o",
        str(out),
        "--judge-model",
        "grader",
        "--cache-dir",
        str(cache),
        "--no-progress",
    ]
    with MockOpenAI(lambda body: "I cannot grade this") as bad:
        result = runner.invoke(app, [*args, "--base-url", bad.url])
    assert result.exit_code == 1
    r = read_results(out)["mmvet"]
    assert r.status == "incomplete" and r.score is None and r.mm_value is None and r.graded_failed == 3
    assert "3 of 3 grades failed" in r.failure_reason and "does not start with a number" in r.failure_reason
    assert all(s.grade and s.grade.status == "failed" and s.score is None for s in read_samples(out, "mmvet"))

    with MockOpenAI(_grade_by_question) as good:
        outcome = run_qa(
            model="scripted-qa",
            model_args={"answers": str(answers)},
            benchmarks=resolve("mmvet"),
            out=out,
            data_dir=bench_data,
            options=QAOptions(grader=Endpoint(model="grader", base_url=good.url), cache_dir=cache),
        )
        assert good.chat_calls == 3
    assert outcome.log is None  # graded from the stored replies: the model was not asked again
    r = outcome.results["mmvet"]
    assert r.status == "ok" and r.score == pytest.approx(50.0)


def test_mmvet_without_an_endpoint_or_key_fails_before_asking_anything(bench_data: Path, tmp_path: Path) -> None:
    answers = write_answers(tmp_path / "a.json")
    result = runner.invoke(
        app,
        [
            "qa",
            "-m",
            "scripted-qa",
            "-M",
            f"answers={answers}",
            "-b",
            "mmvet",
            "--data-dir",
            str(bench_data),
            "-o",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 2
    assert "OPENAI_API_KEY" in result.output and not (tmp_path / "run" / "qa").exists()


def test_a_tiny_random_vlm_answers_through_the_real_loading_path(bench_data: Path, tmp_path: Path) -> None:
    """A random-weight Llava-style VLM saved with save_pretrained, steered so greedy decoding says "5" after the
    prompts' last token (".", ending "Answer the question using a single word or phrase.")."""
    from tiny_hf import build_tokenizer, plant_reply, tiny_llava

    tok = build_tokenizer()
    path = tiny_llava(tmp_path / "vlm", tokenizer=tok)
    plant_reply(path, tok.convert_tokens_to_ids("."), [tok.convert_tokens_to_ids("5")])
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "qa",
            "-m",
            "vlm",
            "-M",
            f"path={path}",
            "-M",
            "device=cpu",
            "-b",
            "textvqa,docvqa",
            "--data-dir",
            str(bench_data),
            "-o",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    results = read_results(out)
    assert [s.prediction for s in read_samples(out, "textvqa")] == ["5", "5", "5"]
    # TextVQA: only row 2 (ten "5" answers) is right -> 1/3. DocVQA: "5" vs "Total" and vs "12.5" (ANLS 0.25 < 0.5).
    assert results["textvqa"].score == pytest.approx(100 / 3) and results["docvqa"].score == pytest.approx(0.0)
    assert json.loads((out / "qa" / "textvqa.json").read_text())["model_args"] == {"path": str(path), "device": "cpu"}


def test_answers_file_covers_every_benchmark() -> None:
    assert set(ANSWERS) == set(EXPECTED) == {b.name for b in resolve("all")}
