"""The combined table: simulated success, VLA Score and the QA benchmarks of a run side by side, with the paper's
summaries (GR, WR, MM, Average = mean(GR, WR, MM); tasks/qa/summaries.yaml), each stated with the columns it used.

A summary is the unweighted mean of the columns the run has. One that lacks some of its columns is `partial` and
says which are missing: two partial summaries over different columns are not comparable, and the table says so
rather than hiding it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from vlascore.paths import data_dir, load_yaml
from vlascore.qa.records import QAResult, read_results

SUMMARIES_FILE = "qa/summaries.yaml"


class SummaryDef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    columns: list[str] = []
    of: list[str] = []
    """Other summaries this one averages (Average)."""


class Summary(BaseModel):
    """One summary's value and the columns behind it."""

    model_config = ConfigDict(extra="forbid")
    name: str
    value: float | None
    columns: list[str]
    """The columns (or summaries) averaged."""
    missing: list[str]
    """Its columns the run does not have (a partial summary when not empty)."""

    @property
    def partial(self) -> bool:
        return bool(self.missing)

    def describe(self) -> str:
        if self.value is None:
            return f"{self.name}: n/a (none of its columns: {', '.join(self.missing) or 'no columns defined'})"
        used = f"mean of {', '.join(self.columns)}"
        return f"{self.name} = {self.value:.1f} ({used}" + (
            f"; partial, missing {', '.join(self.missing)})" if self.missing else ")"
        )


class CombinedRow(BaseModel):
    """One run in the combined table."""

    model_config = ConfigDict(extra="forbid")
    label: str
    sim: float | None = None
    """Suite mean success rate x 100."""
    sim_columns: dict[str, float | None] = {}
    """Column key (`<suite>/<task>`, or a suite's declared key such as `google_vm/pick_coke_can`) -> rate x 100."""
    vla: float | None = None
    vla_label: str = ""
    qa: dict[str, float | None] = {}
    """Benchmark -> score in its own unit (None: failed or incomplete)."""
    qa_mm: dict[str, float] = {}
    """Benchmark -> score on MM's 0-100 scale (ok results only)."""
    qa_subset: list[str] = []
    """Benchmarks run on a subset (--limit)."""
    summaries: dict[str, Summary] = {}


@lru_cache(maxsize=1)
def summary_defs() -> dict[str, SummaryDef]:
    raw = load_yaml((data_dir("tasks") / SUMMARIES_FILE).read_text())
    return {k: SummaryDef.model_validate(v) for k, v in raw["summaries"].items()}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(columns: dict[str, float], defs: dict[str, SummaryDef] | None = None) -> dict[str, Summary]:
    """Every summary over the available `columns` (name -> value on a 0-100 scale)."""
    defs = defs if defs is not None else summary_defs()
    out: dict[str, Summary] = {}
    for name, d in defs.items():
        if d.of:
            continue
        used = [c for c in d.columns if c in columns]
        out[name] = Summary(
            name=name,
            value=_mean([columns[c] for c in used]),
            columns=used,
            missing=[c for c in d.columns if c not in columns],
        )
    for name, d in defs.items():
        if not d.of:
            continue
        parts = [out[p] for p in d.of if p in out and out[p].value is not None]
        out[name] = Summary(
            name=name,
            value=_mean([p.value for p in parts if p.value is not None]),
            columns=[p.name for p in parts],
            missing=[p for p in d.of if p not in [q.name for q in parts]],
        )
    return out


def combined_row(
    run_dir: str | Path, label: str | None = None, results: Any = None, qa: dict[str, QAResult] | None = None
) -> CombinedRow:
    """The run's row: `results` is its RunResults (None: a QA-only run), `qa` its QA results (None: read them)."""
    qa = read_results(run_dir) if qa is None else qa
    row = CombinedRow(label=label or Path(run_dir).name)
    if results is not None:
        row.sim = None if results.suite_mean is None else 100 * results.suite_mean
        # the suite's column keys (`<suite>/<task>` for suites without declared columns, `google_vm/pick_coke_can`...)
        row.sim_columns = {c.key: None if c.success_rate is None else 100 * c.success_rate for c in results.columns}
        if results.vla:
            v = results.vla[0]
            row.vla, row.vla_label = v.vla_score.value, v.label
    for name, r in qa.items():
        row.qa[name] = r.score if r.status == "ok" else None
        if r.status == "ok" and r.mm_value is not None:
            row.qa_mm[name] = r.mm_value
        if r.subset:
            row.qa_subset.append(name)
    columns = {k: v for k, v in row.sim_columns.items() if v is not None} | row.qa_mm
    row.summaries = summarise(columns)
    return row
