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

from pydantic import BaseModel, ConfigDict

from vlascore.judging.judgement import JudgementFile
from vlascore.records import utcnow
from vlascore.scoring.stats import wilson_interval
from vlascore.scoring.vla import VlaScoreResult, read_judgement_files, vla_score
from vlascore.store import LoadedRun, atomic_write_text, load_run

# 2: added `vla` (VLA Score per judgement file).
RESULTS_SCHEMA_VERSION = 2
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
    """Unweighted mean of the per-task success rates."""
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


def score_run(run: LoadedRun, errored_as_failure: bool = False,
              judgements: list[JudgementFile] | None = None) -> RunResults:  # fmt: skip
    """Success statistics and the VLA Score under each judgement file (`judgements`: already read ones, or None to
    read <run>/judgements/)."""
    eps = run.episodes
    results = []
    for task in run.run.tasks:
        rows = eps[eps["task"] == task]
        ok = rows[rows["status"] == "ok"]
        errored = int((rows["status"] == "errored").sum())
        successes = int(ok["success"].sum())
        n = len(rows) if errored_as_failure else len(ok)
        lo, hi = wilson_interval(successes, n) if n else (None, None)
        results.append(
            TaskResult(
                task=task,
                episodes=len(rows),
                completed=len(ok),
                errored=errored,
                successes=successes,
                success_rate=successes / n if n else None,
                ci_low=lo,
                ci_high=hi,
                mean_steps=float(ok["num_steps"].mean()) if len(ok) else None,
            )  # fmt: skip
        )
    rates = [r.success_rate for r in results if r.success_rate is not None]
    mean = sum(rates) / len(rates) if rates else None
    n_total = sum(r.episodes if errored_as_failure else r.completed for r in results)
    lo, hi = wilson_interval(mean * n_total, n_total) if mean is not None and n_total else (None, None)
    planned = {f"{t}-{s}" for t, seeds in run.run.seeds.items() for s in seeds}
    return RunResults(
        run_id=run.run.run_id, adapter=run.run.adapter, suite=run.run.suite,
        suite_fingerprint=run.run.suite_fingerprint, protocol_version=run.run.protocol_version,
        scored_at=utcnow(), errored_as_failure=errored_as_failure, tasks=results,
        suite_mean=mean, suite_ci_low=lo, suite_ci_high=hi, episodes=len(eps),
        errored=int((eps["status"] == "errored").sum()), missing=len(planned - set(eps["episode_id"])),
        vla=[vla_score(run, jf) for jf in (read_judgement_files(run.path) if judgements is None else judgements)],
    )  # fmt: skip


def score_and_write(path: str | Path, errored_as_failure: bool = False) -> RunResults:
    run = load_run(path)
    results = score_run(run, errored_as_failure)
    atomic_write_text(run.path / RESULTS_FILE, results.model_dump_json(indent=2))
    return results
