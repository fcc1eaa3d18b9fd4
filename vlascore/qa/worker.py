"""The lmms-eval process of `vlascore qa`: `python -m vlascore.qa.worker SPEC.json`.

One process per `vlascore qa` call: lmms-eval is imported once and the model loaded once, and each benchmark runs
in its own `simple_evaluate` call, so one benchmark's failure is recorded against it alone. lmms-eval can finish
without raising when a task fails, so a benchmark counts as done only when its metric value and samples are in the
returned results. Events (one JSON object per line) go to the original stdout; everything lmms-eval prints goes to
stderr, which `vlascore qa` writes to qa/work/lmms-eval.log. Each benchmark's outcome is written to
`<work>/raw/<benchmark>.json` before the next one starts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

from vlascore.qa.hooks import PENDING_METRIC
from vlascore.store import atomic_write_text

_events: TextIO = sys.stdout


def emit(**event: Any) -> None:
    _events.write(json.dumps(event) + "\n")
    _events.flush()


def jsonable(value: Any) -> Any:
    """A JSON-safe copy (numpy scalars, tuples, sets; anything else as its repr)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return jsonable(value.item())
        except (TypeError, ValueError):
            pass
    return repr(value)


def _reply(sample: dict[str, Any]) -> str:
    resp = sample.get("filtered_resps")
    while isinstance(resp, list) and resp:
        resp = resp[0]
    return resp if isinstance(resp, str) else "" if resp is None else str(resp)


def extract(results: dict[str, Any] | None, task: str, metric: str) -> dict[str, Any]:
    """The benchmark's metric and samples from simple_evaluate's return; ValueError when they are missing."""
    if not results or task not in results.get("results", {}):
        raise ValueError(f"lmms-eval returned no results for task {task} (see the lmms-eval log)")
    values = results["results"][task]
    key = next((k for k in values if k == metric or k.startswith(f"{metric},")), None)
    if key is None:
        raise ValueError(f"lmms-eval's results for {task} hold no {metric!r} value (keys: {', '.join(values)})")
    value = values[key]
    if isinstance(value, str) or value is None or not math.isfinite(float(value)):
        raise ValueError(f"lmms-eval's {metric} for {task} is {value!r}, not a number")
    samples = (results.get("samples") or {}).get(task)
    if not samples:
        raise ValueError(f"lmms-eval returned no samples for task {task}")
    rows = [
        {
            "doc_id": int(s["doc_id"]),
            "target": jsonable(s.get("target")),
            "prediction": _reply(s),
            "metric": jsonable(s.get(metric)),
        }
        for s in samples
    ]
    return {"value": float(value), "samples": sorted(rows, key=lambda r: r["doc_id"])}


def main(argv: list[str] | None = None) -> int:
    global _events
    args = argparse.ArgumentParser(prog="python -m vlascore.qa.worker").parse_known_args(argv)[1]
    spec_path = Path(args[0])
    spec = json.loads(spec_path.read_text())
    _events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # lmms-eval's own prints and progress bars go to the log
    sys.stdout = sys.stderr
    try:
        from argparse import Namespace

        from lmms_eval.evaluator import simple_evaluate
        from lmms_eval.models import get_model
        from lmms_eval.tasks import TaskManager

        from vlascore.qa import lmms_plugin
        from vlascore.qa.benchmarks import Benchmark, DataSource
        from vlascore.qa.overlay import write_overlay

        folder = Path(spec["tasks_dir"])
        for item in spec["benchmarks"]:
            write_overlay(Benchmark.model_validate(item["benchmark"]), DataSource.model_validate(item["data"]), folder)
        model_class = get_model(lmms_plugin.MODEL_ID)  # resolved through the lmms_eval.models entry point
        model = model_class(spec=str(spec_path))
        manager = TaskManager(include_path=str(folder), include_defaults=False)  # the overlays include by path
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which names every benchmark
        emit(kind="fatal", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        return 3

    def progress(task: str, done: int, total: int) -> None:
        emit(kind="answered", task=task, done=done, total=total)

    lmms_plugin.progress = progress
    raw_dir = Path(spec["raw_dir"])
    for item in spec["benchmarks"]:
        bench = Benchmark.model_validate(item["benchmark"])
        task, name = bench.task_name, bench.name
        emit(kind="start", benchmark=name)
        started = time.time()
        out: dict[str, Any] = {"benchmark": name, "task": task, "started": started}
        try:
            results = simple_evaluate(
                model=model,
                tasks=[task],
                task_manager=manager,
                limit=spec.get("limit"),
                batch_size=1,
                log_samples=True,
                bootstrap_iters=0,
                process_docs_parallel=1,
                verbosity="WARNING",
                random_seed=spec.get("seed", 0),
                numpy_random_seed=spec.get("seed", 0),
                torch_random_seed=spec.get("seed", 0),
                fewshot_random_seed=spec.get("seed", 0),
                cli_args=Namespace(
                    output_path=str(raw_dir / name),
                    process_with_media=False,
                    reasoning_tags=None,
                    agentic_trace_mode="basic",
                ),
            )
            metric = PENDING_METRIC if bench.grader == "judge" else bench.metric
            out.update(status="ok", **extract(results, task, metric))
        except BaseException as exc:  # noqa: BLE001 - one benchmark's failure must not lose the others
            if isinstance(exc, KeyboardInterrupt):
                raise
            out.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        out["wall_s"] = time.time() - started
        atomic_write_text(raw_dir / f"{name}.json", json.dumps(out))
        emit(kind="done", benchmark=name, status=out["status"], error=out.get("error"))
    model.adapter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
