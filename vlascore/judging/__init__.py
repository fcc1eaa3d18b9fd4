"""Judging: judge definitions (judges/*.yaml), the judge registry, the VLM judge engine, retrieval few-shot, the
grounded judge, and the audit. Names below load on first use, so importing a submodule (the endpoint settings, say)
stays light; heavy pieces (openai client, embedders) are imported only by the code paths that use them."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vlascore.judging.catalog import builtin_judge_paths, load_judge
    from vlascore.judging.definitions import JudgeError, JudgeSpec
    from vlascore.judging.judgement import DIMENSIONS, Judgement, JudgementFile

_WHERE = {
    "JudgeError": "definitions",
    "JudgeSpec": "definitions",
    "builtin_judge_paths": "catalog",
    "load_judge": "catalog",
    "DIMENSIONS": "judgement",
    "Judgement": "judgement",
    "JudgementFile": "judgement",
}

__all__ = [
    "DIMENSIONS",
    "JudgeError",
    "JudgeSpec",
    "Judgement",
    "JudgementFile",
    "builtin_judge_paths",
    "load_judge",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
