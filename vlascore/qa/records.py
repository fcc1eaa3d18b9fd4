"""What `vlascore qa` stores in a run directory:

    qa/<benchmark>.json            QAResult: the score (or why there is none) and how it was made
    qa/<benchmark>.samples.jsonl   one QASample per question: the reply, the reference, its per-sample score
    qa/work/                       the overlay tasks, the lmms-eval log and its raw output

A run directory may hold QA results only, or next to a simulated run of the same adapter (run.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vlascore.qa.benchmarks import DataSource, load_benchmarks
from vlascore.records import utcnow
from vlascore.store import StoreError, atomic_write_text
from vlascore.versioned import NewerRecordError, RecordError, read_record

QA_SCHEMA_VERSION = 1
QA_DIR = "qa"


class Grade(BaseModel):
    """One judge grade of a reply (grader: judge benchmarks)."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["ok", "failed"]
    score: float | None = None
    """0-1 (MM-Vet's correctness score)."""
    failure_reason: str = ""
    raw_replies: list[str] = []
    cached: bool = False
    request_hash: str = ""


class QASample(BaseModel):
    """One question of a benchmark."""

    model_config = ConfigDict(extra="forbid")
    doc_id: int
    """Row in the benchmark's split (0-based)."""
    prediction: str
    """The model's reply, as scored."""
    target: Any = None
    """The reference lmms-eval compared against (when it logs one)."""
    score: float | None = None
    """Per-sample score where the benchmark has one (0-1), else None."""
    detail: Any = None
    """lmms-eval's per-sample metric value, as it logged it."""
    grade: Grade | None = None


class QAResult(BaseModel):
    """One benchmark's outcome for one model."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = QA_SCHEMA_VERSION
    benchmark: str
    title: str
    status: Literal["ok", "failed", "incomplete"]
    """ok: a score; failed: the benchmark did not run (see failure_reason); incomplete: some grades failed."""
    failure_reason: str = ""
    score: float | None = None
    """In `unit`: percent (0-100) or, for OCRBench, correct answers per 1000 questions."""
    unit: str = "%"
    mm_value: float | None = None
    """The score on MM's 0-100 scale (OCRBench / 10)."""
    lmms_value: float | None = None
    """lmms-eval's aggregated metric as it returned it."""
    lmms_task: str
    metric: str
    samples: int = 0
    graded_failed: int = 0
    limit: int | None = None
    """Questions per benchmark asked (None: the whole split); a limited run is a subset, stated wherever shown."""
    model: str
    model_args: dict[str, Any] = {}
    """The adapter's options (`-M`)."""
    data: DataSource
    grader: dict[str, Any] | None = None
    """judge-graded benchmarks: judge model, base URL, grader version."""
    key: str
    """Digest of everything the result depends on; `vlascore qa` skips a benchmark whose key is unchanged."""
    versions: dict[str, str] = {}
    created_at: str = Field(default_factory=utcnow)
    wall_s: float | None = None

    @property
    def subset(self) -> bool:
        return self.limit is not None


def qa_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / QA_DIR


SUPERSEDED_DIR = "superseded"


def write_result(run_dir: str | Path, result: QAResult, samples: list[QASample] | None) -> None:
    """Write a benchmark's result (and samples). A stored result made with another key (other data, model options,
    grader...) is moved to qa/superseded/ first, with its samples, so a new attempt never loses an old score."""
    folder = qa_dir(run_dir)
    current = folder / f"{result.benchmark}.json"
    if current.is_file():
        try:
            old = read_record(current, QAResult)
        except NewerRecordError:
            raise
        except RecordError:  # unreadable: replaced below (a newer vlascore's file is never overwritten)
            old = None
        if old is not None and old.key != result.key:
            keep = folder / SUPERSEDED_DIR
            keep.mkdir(parents=True, exist_ok=True)
            stamp = old.created_at.replace(":", "").replace("-", "")
            for path in (current, folder / f"{result.benchmark}.samples.jsonl"):
                if path.is_file():
                    path.rename(keep / f"{stamp}-{path.name}")
    if samples is not None:
        lines = "".join(s.model_dump_json() + "\n" for s in samples)
        atomic_write_text(folder / f"{result.benchmark}.samples.jsonl", lines)
    atomic_write_text(folder / f"{result.benchmark}.json", result.model_dump_json(indent=2))


def read_results(run_dir: str | Path) -> dict[str, QAResult]:
    """Benchmark -> QAResult of a run directory ({} when it has no QA results)."""
    folder = qa_dir(run_dir)
    out: dict[str, QAResult] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        out[path.stem] = read_record(path, QAResult, f"QA result {path}", error=StoreError)
    order = {name: i for i, name in enumerate(load_benchmarks().benchmarks)}  # the paper's column order
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def read_samples_file(path: Path) -> list[QASample]:
    """The QASample rows of a samples file; ValueError naming the line of a row that is not one."""
    out = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(QASample.model_validate(json.loads(line)))
        except (ValueError, RecursionError) as exc:  # pydantic's ValidationError and JSONDecodeError are ValueErrors
            first = (str(exc).splitlines() or ["nested too deep"])[0]
            raise ValueError(f"line {i} is not a QA sample ({first})") from None
    return out


def read_samples(run_dir: str | Path, benchmark: str) -> list[QASample]:
    path = qa_dir(run_dir) / f"{benchmark}.samples.jsonl"
    return read_samples_file(path) if path.is_file() else []
