"""QA results in a bundle: run/qa/<benchmark>.json (QAResult) and run/qa/<benchmark>.samples.jsonl, packed by
`vlascore submit` next to the simulated run (never qa/work/ or qa/superseded/) and checked by the board.

The board recomputes what it can from the files: each result's mm_value (score / the benchmark's mm_divisor),
a judge-graded benchmark's score (MM-Vet: the mean of its samples' grades x 100), a pooled benchmark's score (the
mean of its per-question scores: OCRBench, TextVQA, InfoVQA, DocVQA), the number of questions, and
MM (tasks/qa/summaries.yaml) over the benchmarks; a figure that disagrees is refused, as are submission.json
claims that differ from the recomputation. The other scores (MMMU, MMStar, MMBench: parsed or per-category) are taken
as recorded: recomputing them would mean running lmms-eval's scoring again.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from vlascore.board.errors import Rejected, read_bundled
from vlascore.qa.benchmarks import Benchmark, load_benchmarks
from vlascore.qa.records import QA_DIR, QAResult, QASample, qa_dir, read_samples_file
from vlascore.qa.summary import Summary, summarise

SAMPLES_SUFFIX = ".samples.jsonl"
QA_FIX = (
    "submit the QA results `vlascore qa` wrote, unedited (run `vlascore qa` again for a benchmark whose "
    "result is wrong, or delete its qa/<benchmark>.json and .samples.jsonl to submit without it)"
)
_REL_TOL = 1e-9
"""The tolerance validate.differences compares figures with (only float summation order may differ)."""

__all__ = ["QA_DIR", "QAFigure", "check_qa", "is_qa_file", "qa_files"]


class QAFigure(BaseModel):
    """One benchmark's result as the board shows it (recomputed from run/qa/ where it can be)."""

    model_config = ConfigDict(extra="forbid")
    benchmark: str
    """Benchmark name (tasks/qa/benchmarks.yaml)."""
    title: str
    """Display title."""
    status: Literal["ok", "failed", "incomplete"]
    """ok: a score; failed / incomplete: none (see failure_reason)."""
    failure_reason: str = ""
    """Why a benchmark has no score."""
    score: float | None
    """In `unit`: percent, or correct answers per 1000 questions (OCRBench)."""
    unit: str
    """`%` or `/1000`."""
    mm_value: float | None
    """The score on MM's 0-100 scale."""
    samples: int
    """Questions scored."""
    limit: int | None
    """None: the whole split; N: a subset, the first N questions."""
    graded: bool
    """Scored by an LLM judge (MM-Vet) from the per-sample grades in the samples file."""


def is_qa_file(leaf: str) -> bool:
    """A file name run/qa/ may hold in a bundle."""
    return leaf.endswith((".json", SAMPLES_SUFFIX)) and not leaf.startswith(".")


def _results(run_dir: Path) -> list[Path]:
    folder = qa_dir(run_dir)
    return [p for p in sorted(folder.glob("*.json")) if not p.name.startswith(".")] if folder.is_dir() else []


def qa_files(run_dir: Path) -> list[tuple[str, Path]]:
    """(file name, path) of the run's QA results and their samples files, in a stable order."""
    out = []
    for path in _results(run_dir):
        out.append((path.name, path))
        samples = path.with_name(path.stem + SAMPLES_SUFFIX)
        if samples.is_file():
            out.append((samples.name, samples))
    return out


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=1e-12)


def _read_samples(path: Path, where: str) -> list[QASample] | None:
    if not path.is_file():
        return None
    try:
        return read_samples_file(path)
    except ValueError as exc:
        raise Rejected(f"{where} {exc}", QA_FIX) from None


def _check(r: QAResult, bench: Benchmark, samples: list[QASample] | None, where: str, samples_where: str) -> None:
    """The figures of one result must add up (see the module docstring); Rejected otherwise."""
    if r.status != "ok":
        if r.score is not None or r.mm_value is not None:
            raise Rejected(f"{where} is {r.status} but states a score", QA_FIX)
        return
    if r.score is None or r.mm_value is None:
        raise Rejected(f"{where} is ok but states no score (or no mm_value)", QA_FIX)
    if not _same(r.mm_value, r.score / bench.mm_divisor):
        raise Rejected(
            f"{where}: mm_value {r.mm_value!r} is not score / {bench.mm_divisor:g} ({r.score / bench.mm_divisor!r})",
            QA_FIX,
        )
    if samples is None:
        raise Rejected(f"{where} has a score but no {samples_where}", QA_FIX)
    if not samples or len(samples) != r.samples:
        raise Rejected(f"{where} says {r.samples} question(s), {samples_where} holds {len(samples)}", QA_FIX)
    if len({s.doc_id for s in samples}) != len(samples):
        raise Rejected(f"{samples_where} holds a question more than once", QA_FIX)
    if r.limit is not None and r.samples > r.limit:
        raise Rejected(f"{where} says {r.samples} question(s) on a subset of {r.limit}", QA_FIX)
    if bench.pooled:
        scores = [s.score for s in samples if s.score is not None]
        if len(scores) != len(samples) or not _same(r.score, bench.pooled_score(scores)):
            raise Rejected(
                f"{where}: score {r.score!r} is not the mean of the per-question scores in {samples_where}", QA_FIX
            )
    if bench.grader == "judge":
        if r.grader is None:
            raise Rejected(f"{where} is judge-graded but names no grader", QA_FIX)
        ungraded = [s.doc_id for s in samples if s.grade is None or s.grade.status != "ok" or s.grade.score is None]
        if ungraded:
            raise Rejected(
                f"{where} is ok but {samples_where} has no valid grade for {len(ungraded)} question(s) "
                f"(first: doc_id {ungraded[0]})",
                QA_FIX,
            )
        expected = 100.0 * sum(s.grade.score for s in samples if s.grade and s.grade.score is not None) / len(samples)
        if not _same(r.score, expected):
            raise Rejected(
                f"{where}: score {r.score!r} is not the mean of the {len(samples)} grades in "
                f"{samples_where} x 100 ({expected!r})",
                QA_FIX,
            )


def check_qa(run_dir: str | Path, adapter: str, where: str = QA_DIR) -> tuple[list[QAFigure], Summary | None]:
    """The run's QA results, checked, in benchmarks.yaml order, and MM over them (None: no QA results). Raises
    Rejected for a result whose figures do not add up; `where` names the folder in messages."""
    known = load_benchmarks().benchmarks
    figures = []
    for path in _results(Path(run_dir)):
        name, samples_name = f"{where}/{path.name}", f"{where}/{path.stem}{SAMPLES_SUFFIX}"
        bench = known.get(path.stem)
        if bench is None:
            raise Rejected(f"{name} is not a benchmark vlascore knows ({', '.join(known)})", QA_FIX)
        r = read_bundled(path, QAResult, name)
        if r.benchmark != bench.name:
            raise Rejected(f"{name} holds the result of {r.benchmark!r}", QA_FIX)
        if r.model != adapter:
            raise Rejected(f"{name} was made with model {r.model!r}, not the run's adapter {adapter!r}", QA_FIX)
        if r.unit != bench.unit:
            raise Rejected(f"{name} states its score in {r.unit!r}; {bench.name} scores in {bench.unit!r}", QA_FIX)
        _check(r, bench, _read_samples(path.with_name(path.stem + SAMPLES_SUFFIX), samples_name), name, samples_name)
        figures.append(
            QAFigure(
                benchmark=r.benchmark,
                title=r.title,
                status=r.status,
                failure_reason=r.failure_reason,
                score=r.score,
                unit=r.unit,
                mm_value=r.mm_value,
                samples=r.samples,
                limit=r.limit,
                graded=bench.grader == "judge",
            )
        )
    if not figures:
        return [], None
    order = list(known)
    figures.sort(key=lambda f: order.index(f.benchmark))
    summaries = summarise({f.benchmark: f.mm_value for f in figures if f.status == "ok" and f.mm_value is not None})
    return figures, summaries.get("MM")
