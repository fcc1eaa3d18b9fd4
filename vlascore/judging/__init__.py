"""Judging: judge definitions (judges/*.yaml), the VLM judge engine, retrieval few-shot, the grounded judge,
and the audit. Heavy pieces (openai client, embedders) are imported only by the code paths that use them."""

from vlascore.judging.definitions import JudgeError, JudgeSpec, builtin_judge_paths, load_judge
from vlascore.judging.judgement import DIMENSIONS, Judgement, JudgementFile

__all__ = ["DIMENSIONS", "JudgeError", "JudgeSpec", "Judgement", "JudgementFile", "builtin_judge_paths", "load_judge"]
