"""vlascore's lmms-eval model: any vlascore adapter with a VLM side (`Adapter.answer`), registered with lmms-eval
through the `lmms_eval.models` entry point (pyproject.toml), so lmms-eval resolves `--model vlascore` itself.

    lmms-eval eval --model vlascore --model_args spec=SPEC.json --tasks ...

SPEC.json: {"model": ADAPTER, "model_args": {...}, "benchmarks": [{"benchmark": {"name": ...}, ...}]} (written by
vlascore/qa/run.py). Imported only
inside lmms-eval (it needs lmms_eval).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmms_eval.api.model import lmms
from lmms_eval.models.registry_v2 import ModelManifest

from vlascore.adapters.base import NoVLMSideError, Question
from vlascore.qa.benchmarks import Benchmark

MODEL_ID = "vlascore"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

progress: Callable[[str, int, int], None] | None = None
"""Set by the worker: called (lmms task, answered, total) after each answer."""


def clean_text(text: str) -> str:
    """Text without C0/C1 control characters (tab and newline kept): MMBench questions hold some, and they break
    tokenizers, JSON-lines readers and spreadsheet writers downstream."""
    return _CONTROL.sub("", text)


def manifests() -> list[ModelManifest]:
    """The entry point's payload."""
    return [ModelManifest(model_id=MODEL_ID, simple_class_path=f"{__name__}.VlascoreLMM")]


def _flatten(visuals: Any) -> list[Any]:
    if visuals is None:
        return []
    if isinstance(visuals, list | tuple):
        return [v for item in visuals for v in _flatten(item)]
    return [visuals]


class VlascoreLMM(lmms):
    """Answers lmms-eval's generate_until requests with a vlascore adapter, one question at a time."""

    is_simple = True

    def __init__(self, spec: str, batch_size: int | str = 1, device: str | None = None, **_: Any) -> None:
        super().__init__()
        from vlascore.adapters import make_adapter

        cfg = json.loads(Path(spec).read_text())
        benches = [Benchmark.model_validate(item["benchmark"]) for item in cfg.get("benchmarks", [])]
        self.benchmark_of = {b.task_name: b.name for b in benches}
        self.adapter = make_adapter(cfg["model"], cfg.get("model_args") or {})
        if not self.adapter.answers_questions:
            self.adapter.close()
            raise NoVLMSideError(f"adapter {cfg['model']!r} has no VLM side that answers questions")
        self.batch_size_per_gpu = 1

    def generate_until(self, requests: list[Any]) -> list[str]:
        replies = []
        for i, request in enumerate(requests):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            gen = dict(gen_kwargs or {})
            until = gen.get("until") or []
            images = [im for im in _flatten(doc_to_visual(self.task_dict[task][split][doc_id])) if hasattr(im, "size")]
            question = Question(
                prompt=clean_text(str(context)),
                images=tuple(images),
                max_new_tokens=int(gen.get("max_new_tokens") or 128),
                until=tuple([until] if isinstance(until, str) else until),
                temperature=float(gen.get("temperature") or 0.0),
                benchmark=self.benchmark_of.get(task, task),
                doc_id=int(doc_id),
            )
            replies.append(clean_text(self.adapter.answer(question)))
            if progress is not None:
                progress(task, i + 1, len(requests))
        return replies

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        raise NotImplementedError("vlascore's lmms-eval model answers generate_until tasks only")

    def generate_until_multi_round(self, requests: list[Any]) -> list[str]:
        raise NotImplementedError("vlascore's lmms-eval model answers single-round questions only")
