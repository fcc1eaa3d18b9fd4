"""Functions vlascore's overlay tasks give lmms-eval (`!function vlascore.qa.hooks.NAME`), for benchmarks whose
answers vlascore grades itself (grader: judge): lmms-eval asks the questions and keeps the replies, and vlascore's
judge client grades them afterwards (vlascore/qa/mmvet.py), cached, with every failed grade recorded as failed.
Importing this module needs nothing beyond the standard library: lmms-eval imports it in its own process.
"""

from __future__ import annotations

from typing import Any

PENDING_METRIC = "vlascore_pending"


def first_image(doc: dict[str, Any]) -> list[Any]:
    """The doc's `image` (RGB), or no image."""
    image = doc.get("image")
    return [] if image is None else [image.convert("RGB")]


def prompted_question(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """pre_prompt + question + post_prompt, from the task's lmms_eval_specific_kwargs."""
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc['question']}{kwargs.get('post_prompt', '')}"


def keep_reply(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    """The reply and what grading needs, for vlascore to grade after the run."""
    fields = {k: doc[k] for k in ("question_id", "question", "answer", "capability") if k in doc}
    return {PENDING_METRIC: {**fields, "prediction": results[0]}}


def count(results: list[Any]) -> int:
    """Aggregation of the pending metric: how many replies were kept (the score comes from the grades)."""
    return len(results)
