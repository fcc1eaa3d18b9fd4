"""Success-rate scoring of a run: per-task rate with a Wilson 95% interval, the suite mean, counts; plus
the VLA Score (vla.py) of every judgement file the run holds.

**[decision]** Errored episodes (policy or simulator failure, see EpisodeRecord.status) are excluded from
the success-rate denominator and reported as a count next to it, like failed judgements; pass
`errored_as_failure=True` to count them as failures instead. The suite mean is the unweighted mean of
the per-task rates; its interval is the Wilson interval at that mean with n = all completed episodes
(identical to the pooled interval when every task has the same number of episodes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from vlascore.judging.judgement import JudgementFile
from vlascore.records import utcnow
from vlascore.scoring.vla import VlaScoreResult, read_judgement_files, vla_score
from vlascore.stats import wilson_interval
from vlascore.store import LoadedRun, atomic_write_text, load_run
from vlascore.suites import Suite, TaskSpec

# 2: added `vla` (VLA Score per judgement file). 3: added `columns`, `averages`, `suite_mean_columns` and the
# per-task `mean_over` / `groups` (grid suites); the suite mean became the mean of the suite's columns (for suites
# without declared columns, one per task: the same number as before).
RESULTS_SCHEMA_VERSION = 3
RESULTS_FILE = "results.json"


class TaskResult(BaseModel):
    """Success statistics of one task."""

    model_config = ConfigDict(extra="forbid")
    task: str
    """Task id."""
    episodes: int
    """Episodes recorded (completed + errored)."""
    completed: int
    """Episodes that ran to a normal end."""
    errored: int
    """Episodes that failed with an error (excluded from the rate unless errored_as_failure)."""
    successes: int
    """Successful episodes."""
    success_rate: float | None
    """successes / denominator, None when the denominator is 0."""
    ci_low: float | None
    """Lower bound of the Wilson 95% interval."""
    ci_high: float | None
    """Upper bound of the Wilson 95% interval."""
    mean_steps: float | None
    """Mean control steps of completed episodes."""
    mean_over: list[str] = []
    """Grid labels whose groups are averaged with equal weight (the task's `mean_over`); empty: pooled rate."""
    groups: dict[str, float | None] = {}
    """Group label (e.g. `variant=base`, `drawer=top,urdf=default`) -> its success rate, when `mean_over` is set."""


class ColumnResult(BaseModel):
    """One result column: the unweighted mean of its tasks' rates."""

    model_config = ConfigDict(extra="forbid")
    id: str
    key: str
    """Name across suites (summaries, simreal), e.g. `google_vm/pick_coke_can`."""
    title: str = ""
    tasks: list[str]
    in_mean: bool = True
    success_rate: float | None
    """None when any of its tasks has no rate yet (the missing ones are in `missing`)."""
    missing: list[str] = []


class AverageResult(BaseModel):
    """A headline average, always with the columns it averages."""

    model_config = ConfigDict(extra="forbid")
    id: str
    title: str = ""
    columns: list[str]
    """Column ids averaged."""
    keys: list[str]
    """Their cross-suite keys, in the same order (a board compares averages only over the same keys)."""
    value: float | None
    """None unless every column has a rate: an average over fewer columns is another number."""
    missing: list[str] = []


class RunResults(BaseModel):
    """What `vlascore score` writes to <run>/results.json."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = RESULTS_SCHEMA_VERSION
    """Version of this file's format."""
    run_id: str
    """Run name."""
    adapter: str
    """Adapter that produced the run."""
    suite: str
    """Suite name."""
    suite_fingerprint: str
    """Fingerprint of the suite spec the run used."""
    protocol_version: str
    """Suite protocol version."""
    scored_at: str
    """UTC time of scoring."""
    errored_as_failure: bool
    """Whether errored episodes counted as failures (True) or were excluded (False)."""
    tasks: list[TaskResult]
    """Per-task results in suite order."""
    suite_mean: float | None
    """Unweighted mean of the success rates of the suite's columns that count (`suite_mean_columns`; a suite that
    declares no columns has one per task)."""
    suite_mean_columns: list[str] = []
    """Column ids the suite mean averages."""
    suite_ci_low: float | None
    """Lower bound of the suite mean's 95% interval."""
    suite_ci_high: float | None
    """Upper bound of the suite mean's 95% interval."""
    episodes: int
    """All recorded episodes."""
    errored: int
    """All errored episodes."""
    missing: int
    """Planned episodes not recorded yet (an interrupted run; resume it)."""
    vla: list[VlaScoreResult] = []
    """VLA Score (Eq. 8) under each judgement file of the run (<run>/judgements/*.json), sorted by label."""
    columns: list[ColumnResult] = []
    """Every result column of the suite, in suite order."""
    averages: list[AverageResult] = []
    """The suite's headline averages."""

    @property
    def declares_columns(self) -> bool:
        """Whether the suite declares columns or averages beyond one column per task (the SimplerEnv suites)."""
        return bool(self.averages) or any(c.tasks != [c.id] for c in self.columns)


def _group_rates(rows: Any, task: TaskSpec | None, n_of: Any) -> tuple[list[str], dict[str, float | None]]:
    """Per-group rates of a task whose rate is a mean over grid groups (SimplerEnv's per-variant averaging)."""
    if task is None or not task.mean_over or not task.grid:
        return [], {}
    keys: dict[str, list[int]] = {}
    for i, seed in enumerate(rows["seed"]):
        cell = task.cell(int(seed))
        assert cell is not None
        unknown = [k for k in task.mean_over if k not in cell.labels]
        if unknown:
            raise ValueError(f"task {task.id!r}: mean_over names {unknown}, not grid labels ({list(cell.labels)})")
        keys.setdefault(",".join(f"{k}={cell.labels[k]}" for k in task.mean_over), []).append(i)
    groups = {}
    for key, idx in keys.items():
        sub = rows.iloc[idx]
        ok = sub[sub["status"] == "ok"]
        n = n_of(sub, ok)
        groups[key] = int(ok["success"].sum()) / n if n else None
    return list(task.mean_over), groups


def _mean(values: list[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None) / len(values)


def score_run(
    run: LoadedRun, errored_as_failure: bool = False, judgements: list[JudgementFile] | None = None
) -> RunResults:
    """Success statistics and the VLA Score under each judgement file (`judgements`: already read ones, or None to
    read <run>/judgements/)."""
    eps = run.episodes
    suite = _suite_of(run)

    def n_of(rows: Any, ok: Any) -> int:
        return len(rows) if errored_as_failure else len(ok)

    results = []
    for task in run.run.tasks:
        rows = eps[eps["task"] == task].reset_index(drop=True)
        ok = rows[rows["status"] == "ok"]
        errored = int((rows["status"] == "errored").sum())
        successes = int(ok["success"].sum())
        n = n_of(rows, ok)
        spec = suite.task(task) if suite is not None and task in {t.id for t in suite.tasks} else None
        mean_over, groups = _group_rates(rows, spec, n_of) if n else ([], {})
        rate = (_mean(list(groups.values())) if groups else successes / n) if n else None
        lo, hi = wilson_interval(rate * n, n) if rate is not None else (None, None)
        results.append(
            TaskResult(
                task=task,
                episodes=len(rows),
                completed=len(ok),
                errored=errored,
                successes=successes,
                success_rate=rate,
                ci_low=lo,
                ci_high=hi,
                mean_steps=float(ok["num_steps"].mean()) if len(ok) else None,
                mean_over=mean_over,
                groups=groups,
            )
        )
    columns, averages = _columns(suite, results)
    counted = [c for c in columns if c.in_mean]
    rates = [c.success_rate for c in counted if c.success_rate is not None]
    mean = sum(rates) / len(rates) if rates else None
    n_total = sum(r.episodes if errored_as_failure else r.completed for r in results)
    lo, hi = wilson_interval(mean * n_total, n_total) if mean is not None and n_total else (None, None)
    planned = {f"{t}-{s}" for t, seeds in run.run.seeds.items() for s in seeds}
    return RunResults(
        run_id=run.run.run_id,
        adapter=run.run.adapter,
        suite=run.run.suite,
        suite_fingerprint=run.run.suite_fingerprint,
        protocol_version=run.run.protocol_version,
        scored_at=utcnow(),
        errored_as_failure=errored_as_failure,
        tasks=results,
        suite_mean=mean,
        suite_mean_columns=[c.id for c in counted if c.success_rate is not None],
        suite_ci_low=lo,
        suite_ci_high=hi,
        episodes=len(eps),
        errored=int((eps["status"] == "errored").sum()),
        missing=len(planned - set(eps["episode_id"])),
        vla=[vla_score(run, jf) for jf in (read_judgement_files(run.path) if judgements is None else judgements)],
        columns=columns,
        averages=averages,
    )


def _suite_of(run: LoadedRun) -> Suite | None:
    """The suite spec frozen in the run record (None if it no longer validates, e.g. a record from the future)."""
    try:
        return Suite.model_validate(run.run.suite_spec)
    except ValidationError:
        return None


def _columns(suite: Suite | None, results: list[TaskResult]) -> tuple[list[ColumnResult], list[AverageResult]]:
    """The suite's columns and averages over the run's tasks; without a suite spec, one column per task."""
    rate = {r.task: r.success_rate for r in results}
    if suite is None:
        return [ColumnResult(id=t, key=t, title=t, tasks=[t], success_rate=rate[t]) for t in rate], []
    columns = []
    for col in suite.result_columns:
        missing = [t for t in col.tasks if rate.get(t) is None]
        value = None if missing else _mean([rate[t] for t in col.tasks])
        columns.append(
            ColumnResult(
                id=col.id,
                key=suite.column_key(col),
                title=col.title,
                tasks=list(col.tasks),
                in_mean=col.in_mean,
                success_rate=value,
                missing=missing,
            )
        )
    by_id = {c.id: c for c in columns}
    averages = []
    for avg in suite.averages:
        missing = [c for c in avg.columns if by_id[c].success_rate is None]
        value = None if missing else _mean([by_id[c].success_rate for c in avg.columns])
        keys = [by_id[c].key for c in avg.columns]
        averages.append(
            AverageResult(
                id=avg.id, title=avg.title, columns=list(avg.columns), keys=keys, missing=missing, value=value
            )
        )
    return columns, averages


def score_and_write(path: str | Path, errored_as_failure: bool = False) -> RunResults:
    run = load_run(path)
    results = score_run(run, errored_as_failure)
    atomic_write_text(run.path / RESULTS_FILE, results.model_dump_json(indent=2))
    return results
