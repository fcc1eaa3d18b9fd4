"""A QA model with known answers: replays a JSON file of answers, for tests and for checking a benchmark's scoring.

    {"textvqa": {"0": "coca cola", "1": "stop"}, "mmbench": {"*": "A"}}

Keys are vlascore benchmark names, then the question's row in the benchmark's split (0-based, as lmms-eval
numbers them) or "*" for every other row. A question with no answer is an error, never an empty answer: a
scripted model that was not told what to say must not be scored as if it had answered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vlascore.adapters.base import Adapter, PolicyStep, Question
from vlascore.backends.base import Observation


class ScriptedQAAdapter(Adapter):
    """Answers benchmark questions from `-M answers=FILE.json` (see the module docstring); it does not act."""

    name = "scripted-qa"
    acts = False
    answers_questions = True
    needs = "-M answers=FILE.json: the answers to give, by benchmark and question row"

    def __init__(self, answers: str | None = None, **unknown: Any) -> None:
        if unknown:
            raise TypeError(f"unknown option(s) {', '.join(sorted(unknown))}; scripted-qa takes only answers=FILE")
        if not answers:
            raise ValueError("scripted-qa needs -M answers=FILE.json ({benchmark: {row: answer}})")
        super().__init__(answers=str(answers))
        try:
            table = json.loads(Path(answers).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read the answers file {answers}: {exc}") from exc
        if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
            raise ValueError(f"{answers}: expected {{benchmark: {{row: answer}}}}")
        self.table: dict[str, dict[str, str]] = {
            b: {str(k): str(v) for k, v in rows.items()} for b, rows in table.items()
        }

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        raise NotImplementedError("scripted-qa only answers questions (vlascore qa); it does not act")

    def answer(self, question: Question) -> str:
        rows = self.table.get(question.benchmark)
        if rows is None:
            raise KeyError(
                f"scripted-qa: the answers file has no {question.benchmark!r} section "
                f"(it has {', '.join(sorted(self.table)) or 'none'})"
            )
        text = rows.get(str(question.doc_id), rows.get("*"))
        if text is None:
            raise KeyError(f'scripted-qa: no answer for {question.benchmark} row {question.doc_id} (and no "*")')
        return text

    def info(self) -> dict[str, Any]:
        return {"answers_questions": True, "acts": False}
