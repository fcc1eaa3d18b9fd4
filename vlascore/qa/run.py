"""`vlascore qa`: ask a model's VLM side the QA benchmarks through lmms-eval and store the scores in a run directory.

The data path: benchmarks + data sources -> overlay tasks -> one lmms-eval worker process (vlascore/qa/worker.py,
the model loaded once through the `vlascore` lmms-eval model) -> raw results per benchmark -> judge grading for
judge-graded benchmarks -> qa/<benchmark>.json and .samples.jsonl. A benchmark whose result exists with an
unchanged key is skipped, so an interrupted or partly failed call continues where it stopped; an MM-Vet run whose
grades failed is graded again from its stored replies, without asking the model again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlascore._version import __version__
from vlascore.extras import MissingExtraError, available
from vlascore.judging.endpoint import Endpoint
from vlascore.provenance import package_versions
from vlascore.qa import MMVET_GRADER_MODEL
from vlascore.qa.benchmarks import Benchmark, DataSource, data_source
from vlascore.qa.overlay import OVERLAY_VERSION
from vlascore.qa.records import QAResult, QASample, qa_dir, read_results, read_samples, write_result
from vlascore.store import RUN_FILE, RunStore, StoreError

WORK_DIR = "work"
LOG_FILE = "lmms-eval.log"
Event = Callable[[dict[str, Any]], None]


@dataclass
class QAOptions:
    limit: int | None = None
    """Questions per benchmark (the first N rows; None: all)."""
    seed: int = 0
    rerun: bool = False
    """Run benchmarks again even when their result is up to date."""
    grader: Endpoint = Endpoint(model=MMVET_GRADER_MODEL)
    """The endpoint that grades MM-Vet (its concurrency: grading requests in flight)."""
    cache_dir: str | Path | None = None
    python: str = sys.executable


@dataclass
class QAOutcome:
    results: dict[str, QAResult] = field(default_factory=dict)
    """This call's benchmarks -> result (skipped ones included, as stored)."""
    skipped: list[str] = field(default_factory=list)
    log: Path | None = None

    @property
    def failed(self) -> dict[str, QAResult]:
        return {k: r for k, r in self.results.items() if r.status != "ok"}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _lmms_version() -> str:
    return package_versions(("lmms-eval",)).get("lmms-eval", "")


def generation_key(
    bench: Benchmark, source: DataSource, model: str, model_args: dict[str, Any], options: QAOptions
) -> str:
    """What the model's replies depend on."""
    # a local copy is known by its fingerprint (moving it changes nothing), a hub dataset by its id
    data = source.model_dump(exclude={"path", "files"}) if source.fingerprint else source.model_dump()
    return _digest(
        {
            "benchmark": bench.model_dump(),
            "data": data,
            "model": model,
            "model_args": model_args,
            "limit": options.limit,
            "seed": options.seed,
            "lmms_eval": _lmms_version(),
            "overlay": OVERLAY_VERSION,
        }
    )


def result_key(gen_key: str, grader: dict[str, Any] | None) -> str:
    return gen_key if grader is None else _digest({"generation": gen_key, "grader": grader})


def check_model(run_dir: Path, model: str) -> None:
    """The adapter must answer questions, and a run directory holding a simulated run must be the same adapter's."""
    from vlascore.adapters import ADAPTERS

    cls = ADAPTERS.get(model)
    if not getattr(cls, "answers_questions", False):
        raise ValueError(
            f"adapter {model!r} has no VLM side that answers questions (see `vlascore models list`, "
            "column QA); for a VLA built on a VLM, score its backbone with --model vlm -M path=..."
        )
    if (run_dir / RUN_FILE).is_file():
        recorded = RunStore(run_dir).read_run().adapter
        if recorded != model:
            raise StoreError(
                f"{run_dir} holds a simulated run of {recorded!r}; QA results of {model!r} belong in another --out"
            )


def _sources(benchmarks: list[Benchmark], data: dict[str, str], data_root: Path | None) -> dict[str, DataSource]:
    unknown = sorted(set(data) - {b.name for b in benchmarks})
    if unknown:
        raise ValueError(f"--data names benchmark(s) not being run: {', '.join(unknown)}")
    out = {}
    for b in benchmarks:
        where: str | Path | None = data.get(b.name)
        if where is None and data_root is not None and (data_root / b.name).exists():
            where = data_root / b.name
        out[b.name] = data_source(b, where)
    return out


def _sample_score(bench: Benchmark, detail: Any) -> float | None:
    if bench.sample_scalar and isinstance(detail, int | float) and not isinstance(detail, bool):
        return float(detail)
    if bench.sample_field and isinstance(detail, dict) and isinstance(detail.get(bench.sample_field), int | float):
        return float(detail[bench.sample_field])
    return None


def _score(bench: Benchmark, value: float, n: int) -> float:
    if bench.score == "fraction":
        return 100.0 * value
    if bench.score == "per_1000":  # lmms-eval returns correct / 1000 whatever the number asked: rescale to 1000
        return value * 1000.0 * 1000.0 / n
    return value


def result_from_raw(bench: Benchmark, raw: dict[str, Any], base: dict[str, Any]) -> tuple[QAResult, list[QASample]]:
    """QAResult and samples from the worker's raw output (grading of judge benchmarks comes after)."""
    if raw.get("status") != "ok":
        return QAResult(
            **base, status="failed", failure_reason=raw.get("error") or "unknown error", wall_s=raw.get("wall_s")
        ), []
    samples = [
        QASample(
            doc_id=s["doc_id"],
            prediction=s["prediction"],
            target=s.get("target"),
            detail=s["metric"],
            score=_sample_score(bench, s["metric"]),
        )
        for s in raw["samples"]
    ]
    if bench.grader == "judge":
        return QAResult(
            **base, status="incomplete", failure_reason="not graded yet", samples=len(samples), wall_s=raw.get("wall_s")
        ), samples
    score = _score(bench, float(raw["value"]), len(samples))
    per_question = [s.score for s in samples if s.score is not None]
    if bench.pooled and (
        len(per_question) != len(samples)
        or not math.isclose(bench.pooled_score(per_question), score, rel_tol=1e-9, abs_tol=1e-9)
    ):
        why = (
            f"lmms-eval's {bench.metric} ({raw['value']!r}, {score!r} {bench.unit}) does not match its "
            f"per-question scores ({len(per_question)} of {len(samples)} readable)"
        )
        return QAResult(**base, status="failed", failure_reason=why, wall_s=raw.get("wall_s")), []
    return QAResult(
        **base,
        status="ok",
        score=score,
        mm_value=score / bench.mm_divisor,
        lmms_value=raw["value"],
        samples=len(samples),
        wall_s=raw.get("wall_s"),
    ), samples


def grade(
    bench: Benchmark, result: QAResult, samples: list[QASample], grader: Any, concurrency: int
) -> tuple[QAResult, list[QASample]]:
    """Judge grades for a judge-graded benchmark's replies; incomplete (no score) when any grade failed."""
    from vlascore.judging.endpoint import JudgeAbort

    items = []
    for s in samples:
        d = s.detail if isinstance(s.detail, dict) else {}
        items.append((str(d.get("question", "")), str(d.get("answer", "")), s.prediction))
    try:
        grades = grader.grade_all(items, concurrency)
    except JudgeAbort as exc:
        return result.model_copy(
            update={"status": "incomplete", "failure_reason": f"grading stopped: {exc}", "grader": grader.describe()}
        ), samples
    graded = [s.model_copy(update={"grade": g, "score": g.score}) for s, g in zip(samples, grades, strict=True)]
    failed = [g for g in grades if g.status != "ok"]
    update: dict[str, Any] = {"grader": grader.describe(), "graded_failed": len(failed)}
    if failed:
        why = f"{len(failed)} of {len(grades)} grades failed (first: {failed[0].failure_reason})"
        update |= {"status": "incomplete", "score": None, "mm_value": None, "failure_reason": why}
    else:
        score = 100.0 * sum(g.score or 0.0 for g in grades) / len(grades)
        update |= {
            "status": "ok",
            "failure_reason": "",
            "score": score,
            "mm_value": score / bench.mm_divisor,
            "lmms_value": None,
        }
    return result.model_copy(update=update), graded


def _worker(spec_path: Path, log: Path, offline: bool, options: QAOptions, on_event: Event | None) -> tuple[int, str]:
    """Run the worker; (exit code, fatal error or "")."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    if offline:  # every dataset is local: never wait on the hub
        env |= {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    fatal = ""
    with open(log, "a") as err:
        proc = subprocess.Popen(
            [options.python, "-m", "vlascore.qa.worker", str(spec_path)],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("kind") == "fatal":
                fatal = event.get("error", "")
            if on_event is not None:
                on_event(event)
        return proc.wait(), fatal


def run_qa(
    *,
    model: str,
    model_args: dict[str, Any],
    benchmarks: list[Benchmark],
    out: str | Path,
    data: dict[str, str] | None = None,
    data_dir: str | Path | None = None,
    options: QAOptions | None = None,
    on_event: Event | None = None,
) -> QAOutcome:
    """Run `benchmarks` for `model`; results go to OUT/qa/. Raises before any question on bad setup."""
    options = options or QAOptions()
    if not available("lmms_eval"):
        from vlascore.qa import LMMS_EVAL_INSTALL

        raise MissingExtraError(
            f"lmms-eval is not installed (needed for vlascore qa): {LMMS_EVAL_INSTALL}, or "
            "scripts/setup.sh with VLASCORE_EXTRAS including qa. Run `vlascore doctor`."
        )
    run_dir = Path(out)
    check_model(run_dir, model)
    sources = _sources(benchmarks, data or {}, Path(data_dir) if data_dir else None)
    grader = None
    if any(b.grader == "judge" for b in benchmarks):
        from vlascore.qa.mmvet import MMVetGrader

        grader = MMVetGrader(options.grader, cache_dir=options.cache_dir)
    existing = read_results(run_dir)
    outcome = QAOutcome()
    todo: list[tuple[Benchmark, dict[str, Any]]] = []
    for b in benchmarks:
        gen_key = generation_key(b, sources[b.name], model, model_args, options)
        described = grader.describe() if (grader is not None and b.grader == "judge") else None
        versions = {
            "vlascore": __version__,
            "lmms-eval": _lmms_version(),
            "overlay": OVERLAY_VERSION,
            "generation": gen_key,
        }
        base: dict[str, Any] = {
            "benchmark": b.name,
            "title": b.title,
            "unit": b.unit,
            "lmms_task": b.lmms_task,
            "metric": b.metric,
            "limit": options.limit,
            "model": model,
            "model_args": model_args,
            "data": sources[b.name],
            "key": result_key(gen_key, described),
            "grader": described,
            "versions": versions,
        }
        old = existing.get(b.name)
        if old is not None and not options.rerun and old.key == base["key"] and old.status == "ok":
            outcome.results[b.name] = old
            outcome.skipped.append(b.name)
            continue
        if (
            grader is not None
            and b.grader == "judge"
            and not options.rerun
            and old is not None
            and old.status != "failed"
            and old.versions.get("generation") == gen_key
            and (stored := read_samples(run_dir, b.name))
        ):
            # the replies are stored and still valid: grade them (again), without asking the model
            result, samples = grade(b, old.model_copy(update=base), stored, grader, options.grader.concurrency)
            write_result(run_dir, result, samples)
            outcome.results[b.name] = result
            continue
        todo.append((b, base))
    if not todo:
        return outcome

    work = qa_dir(run_dir) / WORK_DIR
    raw_dir = work / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    for b, _ in todo:
        (raw_dir / f"{b.name}.json").unlink(missing_ok=True)
    spec = {
        "model": model,
        "model_args": model_args,
        "limit": options.limit,
        "seed": options.seed,
        "tasks_dir": str((work / "tasks").resolve()),
        "raw_dir": str(raw_dir.resolve()),
        "benchmarks": [{"benchmark": b.model_dump(), "data": sources[b.name].model_dump()} for b, _ in todo],
    }
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    outcome.log = work / LOG_FILE
    offline = all(sources[b.name].kind != "hub" for b, _ in todo)
    code, fatal = _worker(spec_path, outcome.log, offline, options, on_event)
    for b, base in todo:
        raw_path = raw_dir / f"{b.name}.json"
        if raw_path.is_file():
            raw = json.loads(raw_path.read_text())
        elif fatal:
            raw = {"status": "failed", "error": f"lmms-eval could not start: {fatal}"}
        else:
            raw = {
                "status": "failed",
                "error": f"the lmms-eval worker exited with code {code} before finishing {b.name} (see {outcome.log})",
            }
        result, samples = result_from_raw(b, raw, base)
        if result.status == "failed":
            result = result.model_copy(update={"failure_reason": f"{b.name}: {result.failure_reason}"})
        elif b.grader == "judge" and grader is not None:
            result, samples = grade(b, result, samples, grader, options.grader.concurrency)
        write_result(run_dir, result, samples if result.status != "failed" else None)
        outcome.results[b.name] = result
    return outcome
