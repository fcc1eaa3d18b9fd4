"""VLA Score (docs/vla_score.md §4, DualVLA Eq. 8) of a run from its judgement files, with bootstrap 95% intervals.

Per trajectory, every dimension normalised to [0, 1] (score / 10):
    reasoning VLA:  score = ((R + A * I) / 2) * RA * B
    specialist VLA: score = A * I * B
B is the simulator's success flag from the run's episodes table, never the judge's `success_claim`.

**[decision]** The paper's specialist branch also multiplies RA, but RA is never asked of specialists
(docs/vla_score.md §2), so RA := 1 for them; the R and RA columns of a specialist are None (not asked), not 100.

The model's VLA Score is the mean of the per-trajectory scores x 100, NOT the product of the averaged
dimensions (only the per-trajectory form fits the paper's tables). The R/A/I/RA columns are means over
all validly judged trajectories, failures (B = 0) included, x 100; "Sim" is the success rate x 100 over
the same trajectories, so it can differ from the run's success rate when some episodes are unjudged.

Accounting: failed judgements (status "failed": no valid verdict) are excluded from every mean and
counted, never scored 0; episodes of the run absent from the file are `unjudged`; errored episodes (the
policy or simulator failed) are `errored`, even if a judgement for one exists. Intervals are percentile
bootstraps resampled within tasks (the suite's task mix is fixed, not sampled), one joint resample for
all columns, deterministic for a seed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict

from vlascore.judging.judgement import (
    DIMENSIONS,
    JUDGEMENTS_DIR,
    JudgementFile,
    Mode,
    dimensions_for,
)
from vlascore.stats import bootstrap_cis, wilson_interval
from vlascore.store import LoadedRun, StoreError
from vlascore.versioned import read_record

VLA_SCHEMA_VERSION = 1
SCORE_MAX = 10
# Column of the trajectory table -> field of VlaScores; B and score are derived, the rest are dimensions.
_COLUMNS = {"R": "reasoning", "A": "action", "I": "intention", "RA": "alignment", "B": "sim", "score": "vla_score"}
JudgementStatus = Literal["ok", "failed", "unjudged", "errored"]


class JudgementFileError(StoreError):
    """A judgement file that cannot be read or does not belong to the run it sits in."""


class Estimate(BaseModel):
    """A percentage (0-100) with its bootstrap 95% interval."""

    model_config = ConfigDict(extra="forbid")
    value: float | None
    """Mean x 100; None when no trajectory was validly judged."""
    ci_low: float | None
    """Lower bound of the percentile bootstrap 95% interval (x 100)."""
    ci_high: float | None
    """Upper bound of the percentile bootstrap 95% interval (x 100)."""


class VlaScores(BaseModel):
    """Counts and the Eq. 8 columns over a set of episodes (a whole run or one task)."""

    model_config = ConfigDict(extra="forbid")
    episodes: int
    """Episodes of the run in this set (judged, failed, unjudged and errored)."""
    judged: int
    """Episodes with a valid verdict: the n behind every column."""
    failed: int
    """Judgements with status `failed` (no valid verdict): excluded from every mean, never scored 0."""
    unjudged: int
    """Completed episodes the judgement file has no verdict for (judge pass not run or interrupted)."""
    errored: int
    """Errored episodes (policy or simulator failure): not judged, excluded."""
    reasoning: Estimate | None
    """R: mean Reasoning score x 10 (0-100); None for specialists (not asked)."""
    action: Estimate
    """A: mean Action score x 10 (0-100)."""
    intention: Estimate
    """I: mean Intention score x 10 (0-100)."""
    alignment: Estimate | None
    """RA: mean Reason-Act Alignment score x 10 (0-100); None for specialists (not asked; RA := 1 in Eq. 8)."""
    sim: Estimate
    """Sim.: simulator success rate x 100 over the judged episodes (B of Eq. 8)."""
    vla_score: Estimate
    """VLA Score: mean of the per-trajectory Eq. 8 scores x 100."""


class TaskVlaScore(VlaScores):
    """The Eq. 8 columns of one task (bootstrap over that task's episodes)."""

    task: str
    """Task id."""


class VlaScoreResult(VlaScores):
    """The VLA Score of one run under one judge configuration (one <run>/judgements/<label>.json)."""

    schema_version: int = VLA_SCHEMA_VERSION
    """Version of this record's format."""
    label: str
    """Judgement file label (its stem): the judge name, plus the model for VLM judges."""
    run_id: str
    """Run scored."""
    judge: str
    """Judge definition name."""
    judge_version: str
    """Effective judge version (declared version + hash of templates and settings)."""
    judge_model: str | None
    """Model behind a VLM judge (None for the grounded judge)."""
    mode: Mode
    """`reasoning`: Eq. 8 with R, A, I, RA; `specialist`: A * I * B (RA := 1, R and RA not reported)."""
    n_boot: int
    """Bootstrap resamples behind every interval."""
    seed: int
    """Seed of the bootstrap (intervals are reproducible)."""
    tasks: list[TaskVlaScore]
    """Per-task breakdown in run order."""


def eq8(
    mode: Mode,
    action: ArrayLike,
    intention: ArrayLike,
    success: ArrayLike,
    reasoning: ArrayLike | None = None,
    alignment: ArrayLike | None = None,
) -> np.ndarray:
    """Eq. 8 per trajectory on dimensions already normalised to [0, 1]; B = `success` (0/1).

    Specialists ignore `reasoning` and `alignment` (RA := 1, a documented decision).
    """
    a, i, b = (np.asarray(v, dtype=float) for v in (action, intention, success))
    if mode == "specialist":
        return a * i * b
    if reasoning is None or alignment is None:
        raise ValueError("a reasoning-mode VLA Score needs the reasoning (R) and alignment (RA) scores")
    r, ra = np.asarray(reasoning, dtype=float), np.asarray(alignment, dtype=float)
    return ((r + a * i) / 2) * ra * b


def _where(run: LoadedRun, jf: JudgementFile) -> Path:
    return run.path / JUDGEMENTS_DIR / f"{jf.label}.json"


def judgement_mode(run: LoadedRun, jf: JudgementFile) -> Mode:
    """The mode the file's judgements were made in; the adapter's declaration when the file is empty."""
    modes = {j.mode for j in jf.judgements}
    if len(modes) > 1:
        raise JudgementFileError(
            f"{_where(run, jf)} mixes reasoning and specialist judgements; a judge pass uses one mode: "
            "re-run the judge pass to rewrite the file"
        )
    if modes:
        return modes.pop()
    return "reasoning" if run.run.adapter_info.get("reasons", False) else "specialist"


def _check_belongs(run: LoadedRun, jf: JudgementFile) -> None:
    where = _where(run, jf)
    if jf.run_id != run.run.run_id:
        raise JudgementFileError(
            f"{where} judges run {jf.run_id!r}, not this run ({run.run.run_id!r}): it was copied from another "
            f"run directory; delete it, or judge this run with `vlascore judge {run.path}`"
        )
    known = set(run.episodes["episode_id"])
    unknown = sorted({j.episode_id for j in jf.judgements} - known)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else "")
        raise JudgementFileError(
            f"{where} has judgements of episodes that are not in run {run.run.run_id!r}: {shown}; "
            "it belongs to another run or an older version of this one: delete it and re-judge"
        )
    repeated = sorted(e for e, c in Counter(j.episode_id for j in jf.judgements).items() if c > 1)
    if repeated:
        raise JudgementFileError(
            f"{where} judges episode(s) {', '.join(repeated[:5])} more than once, so its verdicts are "
            "ambiguous: delete it and re-run the judge pass"
        )


def trajectory_scores(run: LoadedRun, jf: JudgementFile) -> pd.DataFrame:
    """One row per episode of the run, in run order: the inputs and output of Eq. 8.

    Columns: episode_id, task, judgement (ok | failed | unjudged | errored), B (simulator success, 0/1),
    R, A, I, RA (normalised to [0, 1]) and score (Eq. 8). Dimensions and score are NaN unless
    judgement == "ok"; for specialists R is NaN and RA is 1 (the decision above).
    Raises JudgementFileError when the file is for another run, names unknown episodes, judges an episode
    twice, mixes modes, or has a valid verdict without all of its mode's dimensions as integers 0-10.
    """
    _check_belongs(run, jf)
    mode = judgement_mode(run, jf)
    needed = dimensions_for(mode)
    by_episode = {j.episode_id: j for j in jf.judgements}
    eps = run.episodes
    rows = []
    columns = (eps[c].tolist() for c in ("episode_id", "task", "success", "status"))  # lists: fast to iterate
    for eid, task, success, status in zip(*columns, strict=True):
        row: dict[str, object] = {"episode_id": eid, "task": task, "B": float(bool(success))}
        row.update({short: np.nan for short in DIMENSIONS.values()})
        j = by_episode.get(eid)
        if status == "errored":
            row["judgement"] = "errored"
        elif j is None:
            row["judgement"] = "unjudged"
        elif j.status == "failed":
            row["judgement"] = "failed"
        else:
            row["judgement"] = "ok"
            for dim in needed:
                value = j.scores.get(dim)
                if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= SCORE_MAX:
                    raise JudgementFileError(
                        f"{_where(run, jf)}: the verdict on {eid} has {dim}={value!r}, but a valid {mode} verdict "
                        f"needs integer scores 0-{SCORE_MAX} for {', '.join(needed)}; re-run the judge pass"
                    )
                row[DIMENSIONS[dim]] = value / SCORE_MAX
            if mode == "specialist":
                row["RA"] = 1.0
        rows.append(row)
    df = pd.DataFrame(rows, columns=["episode_id", "task", "judgement", "B", *DIMENSIONS.values()])
    ok = df["judgement"] == "ok"
    df["score"] = np.nan
    if ok.any():
        sub = df[ok]
        df.loc[ok, "score"] = eq8(mode, sub["A"], sub["I"], sub["B"], sub["R"], sub["RA"])
    return df


def _scores(df: pd.DataFrame, mode: Mode, stratify: bool, n_boot: int, seed: int) -> VlaScores:
    """Counts and Estimates over the rows of a trajectory table."""
    counts = df["judgement"].value_counts()
    ok = df[df["judgement"] == "ok"]
    columns = [c for c in _COLUMNS if mode == "reasoning" or c not in ("R", "RA")]
    est = {_COLUMNS[c]: Estimate(value=None, ci_low=None, ci_high=None) for c in columns}
    if len(ok):
        cis = bootstrap_cis([ok[c] for c in columns], ok["task"] if stratify else None, n_boot, seed)
        for col, (lo, hi) in zip(columns, cis, strict=True):
            est[_COLUMNS[col]] = Estimate(value=float(ok[col].mean()) * 100, ci_low=lo * 100, ci_high=hi * 100)
        # One rule for success rates everywhere (score tables, this table, reports, the board): Wilson's interval
        # over the episodes the rate counts; the bootstrap is for the judged dimensions and the VLA Score.
        lo, hi = wilson_interval(float(ok["B"].sum()), len(ok))
        est["sim"] = Estimate(value=float(ok["B"].mean()) * 100, ci_low=lo * 100, ci_high=hi * 100)
    return VlaScores(
        episodes=len(df),
        judged=len(ok),
        failed=int(counts.get("failed", 0)),
        unjudged=int(counts.get("unjudged", 0)),
        errored=int(counts.get("errored", 0)),
        reasoning=est.get("reasoning"),
        action=est["action"],
        intention=est["intention"],
        alignment=est.get("alignment"),
        sim=est["sim"],
        vla_score=est["vla_score"],
    )


def vla_score(run: LoadedRun, jf: JudgementFile, n_boot: int = 2000, seed: int = 0) -> VlaScoreResult:
    """The VLA Score of `run` under the judge configuration of `jf`: overall (bootstrap stratified by task)
    and per task (bootstrap over the task's episodes)."""
    df = trajectory_scores(run, jf)
    mode = judgement_mode(run, jf)
    task_ids = list(dict.fromkeys([*run.run.tasks, *df["task"]]))
    tasks = [TaskVlaScore(task=t, **dict(_scores(df[df["task"] == t], mode, False, n_boot, seed))) for t in task_ids]
    return VlaScoreResult(
        label=jf.label,
        run_id=jf.run_id,
        judge=jf.judge,
        judge_version=jf.judge_version,
        judge_model=jf.judge_model,
        mode=mode,
        n_boot=n_boot,
        seed=seed,
        tasks=tasks,
        **dict(_scores(df, mode, True, n_boot, seed)),
    )


def read_judgement_file(path: Path, what: str | None = None) -> JudgementFile:
    """One judgement file, through the record reader; JudgementFileError says what to do about an unreadable one."""
    fix = f"re-run the judge pass that wrote it (`vlascore judge {path.parent.parent}`), or delete the file"
    return read_record(path, JudgementFile, what, error=JudgementFileError, fix=fix)


def read_judgement_files(run_dir: str | Path) -> list[JudgementFile]:
    """Every <run_dir>/judgements/*.json, sorted by label; [] when the run has not been judged."""
    folder = Path(run_dir) / JUDGEMENTS_DIR
    if not folder.is_dir():
        return []
    files = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):  # a writer's temp file
            continue
        jf = read_judgement_file(path, f"judgement file {path}")
        files.append((jf.label, path.name, jf))
    return [jf for _, _, jf in sorted(files, key=lambda t: (t[0], t[1]))]
