"""Scoring of a run: success rates (success.py), the VLA Score of Eq. 8 (vla.py), and the interval and
agreement statistics both use (stats.py). Everything public is importable from `vlascore.scoring`."""

from vlascore.scoring.stats import (
    Z95,
    bootstrap_ci,
    bootstrap_cis,
    exact_agreement,
    mean_abs_diff,
    rank_average,
    spearman,
    weighted_kappa,
    wilson_interval,
)
from vlascore.scoring.success import (
    RESULTS_FILE,
    RESULTS_SCHEMA_VERSION,
    RunResults,
    TaskResult,
    score_and_write,
    score_run,
)
from vlascore.scoring.vla import (
    VLA_SCHEMA_VERSION,
    Estimate,
    JudgementFileError,
    TaskVlaScore,
    VlaScoreResult,
    VlaScores,
    eq8,
    judgement_mode,
    read_judgement_files,
    trajectory_scores,
    vla_score,
)

__all__ = [
    "RESULTS_FILE",
    "RESULTS_SCHEMA_VERSION",
    "VLA_SCHEMA_VERSION",
    "Z95",
    "Estimate",
    "JudgementFileError",
    "RunResults",
    "TaskResult",
    "TaskVlaScore",
    "VlaScoreResult",
    "VlaScores",
    "bootstrap_ci",
    "bootstrap_cis",
    "eq8",
    "exact_agreement",
    "judgement_mode",
    "mean_abs_diff",
    "rank_average",
    "read_judgement_files",
    "score_and_write",
    "score_run",
    "spearman",
    "trajectory_scores",
    "vla_score",
    "weighted_kappa",
    "wilson_interval",
]
