"""The report's "Multimodal QA" section: each run's benchmark table (qa/*.json) and the combined table of every run
of the report (Sim., VLA Score, the benchmarks and the summaries of tasks/qa/summaries.yaml, each stated with the
columns it averaged).

A run directory may hold QA results only (no run.json): it then appears here and nowhere else in the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlascore.qa.benchmarks import load_benchmarks
from vlascore.qa.records import QAResult, read_results
from vlascore.qa.summary import CombinedRow, combined_row, summary_defs
from vlascore.store import RUN_FILE


def is_qa_only(path: str | Path) -> bool:
    """A directory with QA results and no simulated run."""
    return not (Path(path) / RUN_FILE).is_file() and bool(read_results(path))


def qa_anchor(i: int) -> str:
    """The HTML id of the i-th run's (0-based, in the order given) QA card."""
    return f"qa-{i + 1}"


@dataclass
class QACell:
    """One benchmark of one run in the combined table (status "": the run has no result for it)."""

    value: float | None = None
    unit: str = "%"
    status: str = ""
    limit: int | None = None
    reason: str = ""


@dataclass
class QARunView:
    """One run's benchmark table."""

    anchor: str
    label: str
    path: str
    results: list[QAResult]
    qa_only: bool
    models: list[tuple[str, str]]
    """(model, its options as JSON) the results were made with."""


@dataclass
class QARow:
    """One run of the combined table."""

    label: str
    anchor: str
    row: CombinedRow
    cells: dict[str, QACell]


@dataclass
class QASection:
    runs: list[QARunView]
    rows: list[QARow]
    columns: list[tuple[str, str]]
    """(benchmark, title) of the combined table: MM's columns and any other benchmark a run has."""
    summaries: list[tuple[str, str]]
    """(name, title) of the summaries, in summaries.yaml order."""
    notes: list[str] = field(default_factory=list)


def qa_section(paths: list[str | Path], labels: list[str], anchors: list[str], results: list[Any]) -> QASection | None:
    """The section for the report's runs (`results`: each run's RunResults, None for a QA-only run); None when no
    run has QA results, so such reports render exactly as before."""
    qa = [read_results(p) for p in paths]
    if not any(qa):
        return None
    known = load_benchmarks().benchmarks
    present = {name for r in qa for name in r}
    mm_columns = summary_defs()["MM"].columns if "MM" in summary_defs() else []
    names = [n for n in known if n in mm_columns or n in present] + sorted(present - set(known))
    columns = [(n, known[n].title if n in known else n) for n in names]
    views, rows = [], []
    for i, (path, label, anchor, res, mine) in enumerate(zip(paths, labels, anchors, results, qa, strict=True)):
        if mine:
            models = sorted({(r.model, json.dumps(r.model_args, sort_keys=True)) for r in mine.values()})
            views.append(
                QARunView(
                    anchor=qa_anchor(i),
                    label=label,
                    path=str(path),
                    results=list(mine.values()),
                    qa_only=res is None,
                    models=models,
                )
            )
        cells = {
            n: QACell(
                value=r.score if r.status == "ok" else None,
                unit=r.unit,
                status=r.status,
                limit=r.limit,
                reason=r.failure_reason,
            )
            for n, r in mine.items()
        }
        rows.append(
            QARow(
                label=label,
                anchor=qa_anchor(i) if mine else anchor,
                row=combined_row(path, label, results=res, qa=mine),
                cells=cells,
            )
        )
    summaries = [(name, d.title) for name, d in summary_defs().items()]
    return QASection(runs=views, rows=rows, columns=columns, summaries=summaries, notes=_notes(rows))


def _notes(rows: list[QARow]) -> list[str]:
    notes = []
    used = {
        tuple(r.row.summaries["MM"].columns)
        for r in rows
        if "MM" in r.row.summaries and r.row.summaries["MM"].value is not None
    }
    if len(used) > 1:
        notes.append(
            "MM averages different benchmarks in different runs (see the columns under each value): those "
            "MM values, and the Averages built on them, are not comparable."
        )
    subsets = sorted({f"{n} (first {c.limit})" for r in rows for n, c in r.cells.items() if c.limit is not None})
    if subsets:
        notes.append(
            f"Some benchmarks ran on a subset of their split: {', '.join(subsets)}. A subset score is not "
            "comparable with a full-split one."
        )
    return notes
