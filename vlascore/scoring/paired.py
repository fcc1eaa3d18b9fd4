"""Paired comparison of two runs on the episodes they share (same task and seed), with significance tests.

Two policies run on the same seeds face the same initial scenes, so their difference is best measured pair by
pair: it removes the scene-to-scene variance that an unpaired comparison of two rates would carry.

- Success: McNemar's exact test (a two-sided binomial test on the discordant pairs: A succeeded where B failed,
  and the reverse); the interval of the difference in success rate is a paired bootstrap.
- VLA Score (per trajectory, Eq. 8) under one judge configuration both runs were judged with: a sign-flip
  permutation test of the mean paired difference (exact enumeration up to EXACT_MAX pairs, otherwise
  `n_resamples` seeded random flips, with the (k + 1) / (R + 1) estimate that never reports p = 0); the interval
  is a paired bootstrap.

**[decision]** Bootstraps resample pairs within tasks (as the VLA Score's intervals do), 2000 resamples, seed 0.
Errored episodes and failed or missing judgements drop their pair. When a report makes several comparisons,
the p-values of the overall tests are also given Holm-adjusted (family-wise error over the whole report); the
per-task tests are unadjusted and exploratory.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict

from vlascore.judging.judgement import JudgementFile
from vlascore.scoring.power import mcnemar_sample_size, paired_sample_size
from vlascore.scoring.vla import judgement_mode, trajectory_scores
from vlascore.stats import stratified_bootstrap_means
from vlascore.store import LoadedRun

PAIRED_SCHEMA_VERSION = 1
EXACT_MAX = 16
"""Up to this many non-zero differences the sign-flip test enumerates all 2^n flips."""
ALPHA = 0.05
"""Significance level of the `significant` flags (on the Holm-adjusted p where there is one)."""
PLANNED_POWER = 0.8
"""The power `needed` is computed for."""
Test = Literal["mcnemar-exact", "sign-flip"]


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts; 1 when there are none.

    p = min(1, 2 * P(X <= min(a_only, b_only))), X ~ Binomial(a_only + b_only, 1/2), in exact integer arithmetic.
    """
    if a_only < 0 or b_only < 0:
        raise ValueError("discordant counts must be >= 0")
    n, k = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


def sign_flip_test(diffs: ArrayLike, n_resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value of the mean of paired differences under random sign flips (H0: symmetric about 0).

    Exact over all 2^n sign patterns of the non-zero differences when n <= EXACT_MAX; otherwise a seeded Monte Carlo
    estimate (k + 1) / (R + 1). 1 when every difference is zero (or there are none).
    """
    d = np.asarray(diffs, dtype=float).reshape(-1)
    if not np.isfinite(d).all():
        raise ValueError("differences must be finite")
    d = d[d != 0]
    if d.size == 0:
        return 1.0
    observed = abs(d.sum())
    tol = 1e-9 * max(1.0, float(np.abs(d).sum()))  # sums equal up to rounding count as "as extreme"
    if d.size <= EXACT_MAX:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
        return float((np.abs(signs @ d) >= observed - tol).mean())
    # Random signs from random bytes, 8 per byte; sum(s_i d_i) with s_i = 2 b_i - 1 is b @ 2d - sum(d), one gemv.
    rng = np.random.default_rng(seed)
    hits, done, block = 0, 0, max(1, (1 << 22) // d.size)
    twice, total, width = 2 * d, float(d.sum()), -(-d.size // 8)
    while done < n_resamples:
        rows = min(block, n_resamples - done)
        bits = np.unpackbits(rng.integers(0, 256, size=(rows, width), dtype=np.uint8), axis=1, count=d.size)
        hits += int((np.abs(bits.astype(np.float64) @ twice - total) >= observed - tol).sum())
        done += rows
    return (hits + 1) / (n_resamples + 1)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (monotone, capped at 1)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


class PairedDifference(BaseModel):
    """One metric compared pair by pair: A - B on the shared episodes (percentage points)."""

    model_config = ConfigDict(extra="forbid")
    metric: str
    """`success`, or `vla:<judge label>` (the VLA Score under one judge configuration)."""
    task: str | None = None
    """Task id of a per-task row; None for the whole suite."""
    n: int
    """Pairs compared."""
    a: float
    """Mean of A over the pairs x 100."""
    b: float
    """Mean of B over the pairs x 100."""
    diff: float
    """a - b (percentage points)."""
    ci_low: float
    """Lower bound of the paired bootstrap 95% interval of diff."""
    ci_high: float
    """Upper bound of the paired bootstrap 95% interval of diff."""
    test: Test
    """`mcnemar-exact` (success) or `sign-flip` (a permutation test of the mean paired VLA Score difference)."""
    p_value: float
    """Two-sided p-value of the test (unadjusted)."""
    p_adjusted: float | None = None
    """Holm-adjusted p-value over every overall comparison of the report (None for per-task rows)."""
    a_only: int | None = None
    """Success: pairs where only A succeeded (discordant)."""
    b_only: int | None = None
    """Success: pairs where only B succeeded (discordant)."""
    sd: float | None = None
    """VLA Score: standard deviation of the per-pair differences x 100 (what planning a comparison needs)."""
    needed: int | None = None
    """Pairs the test needs to detect a difference of the size seen here with 80% power at alpha 0.05 (from the
    observed discordance, or the observed mean and sd of the differences; scoring/power.py); None when no
    difference was seen, or it would take more than 100,000 pairs."""

    @property
    def enough(self) -> bool | None:
        """Whether the comparison had the pairs `needed` (None when nothing is needed: no difference seen)."""
        return None if self.needed is None else self.n >= self.needed

    @property
    def significant(self) -> bool:
        p = self.p_adjusted if self.p_adjusted is not None else self.p_value
        return p < ALPHA


class PairedComparison(BaseModel):
    """Run A against run B on their shared (task, seed) episodes."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = PAIRED_SCHEMA_VERSION
    """Version of this record's format."""
    a: str
    """Label of run A."""
    b: str
    """Label of run B."""
    shared: int
    """Episodes (task, seed) completed in both runs."""
    only_a: int
    """Completed episodes of A that B lacks (or errored in B)."""
    only_b: int
    """Completed episodes of B that A lacks (or errored in A)."""
    comparable: bool
    """False when the runs used different suite specs: then nothing is compared."""
    notes: list[str] = []
    """Why something was not compared, or what to keep in mind (different Eq. 8 modes)."""
    overall: list[PairedDifference] = []
    """Success, then one row per judge configuration both runs have."""
    tasks: list[PairedDifference] = []
    """The same metrics per task (unadjusted p-values)."""


def _judge_key(jf: JudgementFile) -> tuple[str, str, str | None]:
    return (jf.judge, jf.judge_version, jf.judge_model)


def _difference(
    metric: str, task: str | None, a: np.ndarray, b: np.ndarray, ci: tuple[float, float], seed: int
) -> PairedDifference:
    d = a - b
    common: dict[str, Any] = {
        "metric": metric,
        "task": task,
        "n": len(d),
        "a": 100 * float(a.mean()),
        "b": 100 * float(b.mean()),
        "diff": 100 * float(d.mean()),
        "ci_low": 100 * ci[0],
        "ci_high": 100 * ci[1],
    }
    if metric == "success":
        a_only, b_only = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
        needed = mcnemar_sample_size(a_only / len(d), b_only / len(d), ALPHA, PLANNED_POWER)
        return PairedDifference(
            **common,
            test="mcnemar-exact",
            p_value=mcnemar_exact(a_only, b_only),
            a_only=a_only,
            b_only=b_only,
            needed=needed,
        )
    sd = float(d.std(ddof=1)) if len(d) > 1 else 0.0
    needed = paired_sample_size(float(d.mean()), sd, ALPHA, PLANNED_POWER) if len(d) > 1 else None
    return PairedDifference(
        **common, test="sign-flip", p_value=sign_flip_test(d, seed=seed), sd=100 * sd, needed=needed
    )


def _rows(metric: str, pairs: pd.DataFrame, n_boot: int, seed: int) -> tuple[PairedDifference, list[PairedDifference]]:
    """(overall, per task) rows from a frame with columns task, a, b; one stratified bootstrap gives every
    interval (per task: the means of that task's draws)."""
    a, b, tasks = pairs["a"].to_numpy(float), pairs["b"].to_numpy(float), pairs["task"].to_numpy()
    overall_ci, task_ci = stratified_bootstrap_means(a - b, tasks, n_boot, seed)
    overall = _difference(metric, None, a, b, overall_ci, seed)
    per_task = [
        _difference(metric, str(task), g["a"].to_numpy(float), g["b"].to_numpy(float), task_ci[task], seed)
        for task, g in pairs.groupby("task", sort=False)
    ]
    return overall, per_task


Tables = dict[str, pd.DataFrame]
"""Judgement file label -> its trajectory_scores table."""


def compare_runs(
    a: LoadedRun,
    b: LoadedRun,
    labels: tuple[str, str],
    judgements: tuple[list[JudgementFile], list[JudgementFile]],
    n_boot: int = 2000,
    seed: int = 0,
    tables: tuple[Tables, Tables] | None = None,
) -> PairedComparison:
    """Compare A with B on the episodes both completed; `judgements` are each run's judgement files (`tables`:
    their trajectory_scores, when the caller has them already)."""
    cmp = PairedComparison(a=labels[0], b=labels[1], shared=0, only_a=0, only_b=0, comparable=True)
    if a.run.suite_fingerprint != b.run.suite_fingerprint:
        cmp.comparable = False
        cmp.notes.append("different suite specs (fingerprints differ): the episodes are not the same scenes")
        return cmp
    cols = ["episode_id", "task", "success"]
    ea = a.episodes.loc[a.episodes["status"] == "ok", cols]
    eb = b.episodes.loc[b.episodes["status"] == "ok", cols]
    both = ea.merge(eb, on=["episode_id", "task"], suffixes=("_a", "_b"))
    cmp.shared, cmp.only_a, cmp.only_b = len(both), len(ea) - len(both), len(eb) - len(both)
    if both.empty:
        cmp.notes.append("no episode (task, seed) was completed by both runs")
        return cmp
    success = pd.DataFrame(
        {"task": both["task"], "a": both["success_a"].astype(float), "b": both["success_b"].astype(float)}
    )
    row, per_task = _rows("success", success, n_boot, seed)
    cmp.overall.append(row)
    cmp.tasks.extend(per_task)
    theirs = {_judge_key(jf): jf for jf in judgements[1]}
    for jf in judgements[0]:
        other = theirs.get(_judge_key(jf))
        if other is None:
            continue
        sa = tables[0][jf.label] if tables else trajectory_scores(a, jf)
        sb = tables[1][other.label] if tables else trajectory_scores(b, other)
        ok = sa.loc[sa["judgement"] == "ok", ["episode_id", "task", "score"]].merge(
            sb.loc[sb["judgement"] == "ok", ["episode_id", "score"]], on="episode_id", suffixes=("_a", "_b")
        )
        if ok.empty:
            cmp.notes.append(f"{jf.label}: no episode has a valid verdict in both runs")
            continue
        modes = (judgement_mode(a, jf), judgement_mode(b, other))
        if modes[0] != modes[1]:
            cmp.notes.append(
                f"{jf.label}: A is scored as a {modes[0]} policy and B as a {modes[1]} one (Eq. 8 "
                "differs: specialists have no R or RA term)"
            )
        row, per_task = _rows(f"vla:{jf.label}", ok.rename(columns={"score_a": "a", "score_b": "b"}), n_boot, seed)
        cmp.overall.append(row)
        cmp.tasks.extend(per_task)
    mine = {_judge_key(jf) for jf in judgements[0]}
    unmatched = sorted(
        {jf.label for jf in judgements[0] if _judge_key(jf) not in theirs}
        | {jf.label for jf in judgements[1] if _judge_key(jf) not in mine}
    )
    if unmatched:
        cmp.notes.append(
            "not compared (judged in one run only, or with another judge version): " + ", ".join(unmatched)
        )
    return cmp


def adjust(comparisons: Sequence[PairedComparison]) -> None:
    """Fill `p_adjusted` of every overall row with Holm's adjustment over all of them (in place)."""
    rows = [r for c in comparisons for r in c.overall]
    for row, p in zip(rows, holm([r.p_value for r in rows]), strict=True):
        row.p_adjusted = p
