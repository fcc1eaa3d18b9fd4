"""MM-Vet grading through vlascore's judge client: any OpenAI-compatible endpoint, cached like other judgements.

MM-Vet scores an open answer 0-1 with an LLM given the benchmark's few-shot grading prompt. The prompt is read at
run time from the installed lmms-eval (tasks/mmvet/utils.py, MM_VET_PROMPT, parsed without importing the module,
whose import opens an API client), so it is the one lmms-eval uses; its sha256 is part of the grader version.
Unlike lmms-eval's own MM-Vet scoring, a grade that cannot be had is recorded as failed with its reason, never
as 0: the benchmark is then `incomplete` and gets no score until `vlascore qa` is run again and the grades exist.
The benchmark's score is the mean grade x 100, as MM-Vet defines it.
"""

from __future__ import annotations

import ast
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from vlascore.judging.cache import JudgeCache, cache_key
from vlascore.judging.endpoint import Endpoint, LazyClient
from vlascore.judging.judgement import Usage
from vlascore.judging.vlm import CallFailed, complete
from vlascore.qa.records import Grade

GRADER_VERSION = "mmvet-grader-1"
TEMPERATURES = (0.0, 0.5, 1.0, 1.5)
"""A reply that is not a 0-1 number is asked again, warmer each time (MM-Vet's own grader does the same)."""
MAX_TOKENS = 128


def grading_prompt(tasks_root: Path | None = None) -> str:
    """MM_VET_PROMPT from the installed lmms-eval, read from its source without running it."""
    if tasks_root is None:
        import importlib.util

        spec = importlib.util.find_spec("lmms_eval")
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError("lmms-eval is not installed: pip install 'vlascore[qa]'")
        tasks_root = Path(spec.origin).parent / "tasks"
    source = tasks_root / "mmvet" / "utils.py"
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "MM_VET_PROMPT" for t in node.targets):
            value = ast.literal_eval(node.value)
            if isinstance(value, str) and value.strip():
                return value
    raise LookupError(f"{source} defines no MM_VET_PROMPT string (an lmms-eval this vlascore does not know)")


def grading_query(prompt: str, question: str, answer: str, prediction: str) -> str:
    """MM-Vet's table row to complete: question | ground truth (with spaced <AND>/<OR>) | prediction |."""
    truth = answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    return f"{prompt}\n{question} | {truth} | {prediction} |"


def parse_grade(text: str) -> float:
    """The 0-1 correctness score that starts the reply; ValueError otherwise."""
    first = text.strip().split(" ")[0].strip() if text.strip() else ""
    try:
        value = float(first)
    except ValueError:
        raise ValueError(f"the reply does not start with a number: {text[:80]!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"the grade {value} is outside 0-1")
    return value


class MMVetGrader:
    """Grades MM-Vet replies; thread-safe."""

    def __init__(self, endpoint: Endpoint, *, cache_dir: str | Path | None = None, prompt: str | None = None) -> None:
        if not endpoint.model:
            raise ValueError("MM-Vet's grader needs a model name (--judge-model)")
        self._client = LazyClient(endpoint, needs="MM-Vet is graded by an LLM")
        self.model, self.base_url = endpoint.model, endpoint.base_url
        self.prompt = prompt if prompt is not None else grading_prompt()
        self.version = f"{GRADER_VERSION}+{hashlib.sha256(self.prompt.encode()).hexdigest()[:12]}"
        self.cache = JudgeCache(cache_dir)
        self._lock = threading.Lock()
        self.usage = Usage()

    def describe(self) -> dict[str, Any]:
        return {"grader": self.version, "judge_model": self.model, "base_url": self.base_url}

    def grade(self, question: str, answer: str, prediction: str) -> Grade:
        query = grading_query(self.prompt, question, answer, prediction)
        request_hash = hashlib.sha256(query.encode()).hexdigest()
        key = cache_key(self.version, self.model, request_hash)
        if (hit := self.cache.get(key)) is not None:
            return Grade(
                status="ok",
                score=float(hit["score"]),
                raw_replies=hit.get("raw_replies", []),
                cached=True,
                request_hash=request_hash,
            )
        replies: list[str] = []
        error = ""
        usage = Usage()
        for temperature in TEMPERATURES:
            try:
                text = complete(
                    self._client,
                    model=self.model,
                    messages=[{"role": "user", "content": query}],
                    temperature=temperature,
                    max_tokens=MAX_TOKENS,
                    usage=usage,
                    where=self.base_url,
                )[0]
            except CallFailed as exc:
                error = str(exc)
                break
            replies.append(text)
            try:
                score = parse_grade(text)
            except ValueError as exc:
                error = str(exc)
                continue
            self.cache.put(key, {"score": score, "raw_replies": replies})
            self._count(usage)
            return Grade(status="ok", score=score, raw_replies=replies, request_hash=request_hash)
        self._count(usage)
        return Grade(
            status="failed",
            failure_reason=f"no 0-1 grade after {len(replies)} answered request(s): {error}",
            raw_replies=replies,
            request_hash=request_hash,
        )

    def _count(self, usage: Usage) -> None:
        with self._lock:
            self.usage.add(usage)

    def grade_all(self, items: list[tuple[str, str, str]], concurrency: int = 8) -> list[Grade]:
        """Grades of (question, answer, prediction) items, in order. JudgeAbort (endpoint unreachable or refusing)
        propagates: the caller records the benchmark as incomplete."""
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(lambda item: self.grade(*item), items))
