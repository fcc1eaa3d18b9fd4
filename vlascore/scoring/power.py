"""How many episodes a comparison needs: power and sample size for the paired tests vlascore runs
(`scoring/paired.py`), and the width of a success rate's interval for N episodes.

- Success, compared with McNemar's exact test on shared episodes: exact power, summed over the number of
  discordant pairs and how they split. What the test sees is the chance of each discordant outcome: p10 (A
  succeeds where B fails) and p01 (the reverse). Given only two success rates, the policies' outcomes are taken
  as independent: p10 = pA (1 - pB), p01 = pB (1 - pA). Policies that succeed on the same easy scenes disagree
  less often, and then need fewer pairs: from two runs, the observed discordance is used instead.
- VLA Score, compared with the sign-flip test of the mean paired difference: planned as the paired t-test it
  approximates (noncentral t), from the mean difference and the standard deviation of the differences.
- Interval width: the Wilson 95% interval the score tables show, at an assumed rate.

The sample size is the smallest n whose power reaches the target (exact power is not monotone in n for a
discrete test, so a few larger n can dip just below it again; that is the convention of power tables).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vlascore.stats import Z95, wilson_interval

MAX_EPISODES = 100_000
"""Sample sizes beyond this are reported as out of reach (the difference is too small to plan for)."""


def _scipy_stats() -> Any:
    from scipy import stats  # a core dependency, imported on use: planning is rare and scipy loads slowly

    return stats


def _check_discordance(p10: float, p01: float) -> None:
    if not (0 <= p10 <= 1 and 0 <= p01 <= 1 and p10 + p01 <= 1):
        raise ValueError(f"discordance probabilities must be in [0, 1] with p10 + p01 <= 1, got {p10}, {p01}")


def independent_discordance(rate_a: float, rate_b: float) -> tuple[float, float]:
    """(p10, p01) of two policies whose episode outcomes are independent, from their success rates."""
    for rate in (rate_a, rate_b):
        if not 0 <= rate <= 1:
            raise ValueError(f"success rates must be in [0, 1], got {rate}")
    return rate_a * (1 - rate_b), rate_b * (1 - rate_a)


def mcnemar_power(n: int, p10: float, p01: float, alpha: float = 0.05) -> float:
    """Exact power of the two-sided exact McNemar test (as `paired.mcnemar_exact` computes it) with `n` pairs."""
    _check_discordance(p10, p01)
    psi = p10 + p01
    if n <= 0 or psi == 0:
        return 0.0
    stats = _scipy_stats()
    d = np.arange(1, n + 1)
    # the test rejects a split (x, d - x) when 2 P(Bin(d, 1/2) <= min(x, d - x)) <= alpha: min <= k_d
    k = stats.binom.ppf(alpha / 2, d, 0.5).astype(int)
    k = np.where(2 * stats.binom.cdf(k, d, 0.5) <= alpha * (1 + 1e-12), k, k - 1)
    q = p10 / psi
    lower = np.where(k >= 0, stats.binom.cdf(k, d, q), 0.0)
    upper = np.where(k >= 0, stats.binom.sf(d - k - 1, d, q), 0.0)
    reject = np.where(d - k > k, lower + upper, 1.0)  # the two tails never overlap when k < d / 2
    return float(min(1.0, (stats.binom.pmf(d, n, psi) * reject).sum()))


def mcnemar_sample_size(p10: float, p01: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """The fewest pairs whose exact McNemar power reaches `power`; None when p10 == p01 (nothing to detect) or
    when it would take more than MAX_EPISODES."""
    _check_discordance(p10, p01)
    delta, psi = abs(p10 - p01), p10 + p01
    if delta == 0:
        return None
    stats = _scipy_stats()
    za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    # Connor's (1987) normal approximation to start from; the exact power decides.
    guess = ((za * np.sqrt(psi) + zb * np.sqrt(max(psi - delta**2, 0.0))) / delta) ** 2
    if guess > MAX_EPISODES:
        return None
    n = max(1, int(guess * 0.8))
    while n > 1 and mcnemar_power(n, p10, p01, alpha) >= power:  # start below the answer
        n = max(1, int(n * 0.8))
    while mcnemar_power(n, p10, p01, alpha) < power:  # then the first n that reaches it (not monotone: no bisection)
        n += 1
        if n > MAX_EPISODES:
            return None
    return n


def paired_t_power(n: int, effect: float, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test with `n` pairs at standardised effect `effect` (mean difference / sd
    of the differences)."""
    if n < 2:
        return 0.0
    stats = _scipy_stats()
    df, nc = n - 1, abs(effect) * np.sqrt(n)
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def paired_sample_size(mean_diff: float, sd_diff: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Pairs a paired t-test needs to detect `mean_diff` when the differences have sd `sd_diff`; None when there is
    no difference or it would take more than MAX_EPISODES."""
    if sd_diff < 0 or not np.isfinite(sd_diff) or not np.isfinite(mean_diff):
        raise ValueError(f"need a finite mean difference and standard deviation >= 0, got {mean_diff}, {sd_diff}")
    if mean_diff == 0:
        return None
    if sd_diff == 0:
        return 2
    effect = abs(mean_diff) / sd_diff
    stats = _scipy_stats()
    n = max(2, int(((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) / effect) ** 2))
    if n > MAX_EPISODES:
        return None
    while n > 2 and paired_t_power(n - 1, effect, alpha) >= power:
        n -= 1
    while paired_t_power(n, effect, alpha) < power:
        n += 1
    return n


def wilson_width(rate: float, n: int, z: float = Z95) -> float:
    """Width of the Wilson interval at success rate `rate` with `n` episodes."""
    if not 0 <= rate <= 1:
        raise ValueError(f"the success rate must be in [0, 1], got {rate}")
    lo, hi = wilson_interval(rate * n, n, z)
    return hi - lo


def episodes_for_width(rate: float, width: float, z: float = Z95) -> int | None:
    """The fewest episodes whose Wilson interval at `rate` is at most `width` wide (None: beyond MAX_EPISODES)."""
    if not 0 < width < 1:
        raise ValueError(f"the interval width must be in (0, 1), got {width}")
    if wilson_width(rate, MAX_EPISODES, z) > width:
        return None
    lo, hi = 1, MAX_EPISODES
    while lo < hi:  # the width shrinks as n grows
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if wilson_width(rate, mid, z) > width else (lo, mid)
    return lo
