"""Bootstrap intervals and agreement statistics on worked examples (hand-computed), and against scipy /
sklearn when they are importable."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vlascore.scoring import (
    bootstrap_ci,
    bootstrap_cis,
    exact_agreement,
    mean_abs_diff,
    rank_average,
    spearman,
    weighted_kappa,
)

# -- bootstrap ----------------------------------------------------------------------------------------


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    values = np.random.default_rng(3).random(200)
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)
    assert bootstrap_ci(values, seed=7) != bootstrap_ci(values, seed=8)


def test_bootstrap_contains_the_mean_and_has_the_expected_width() -> None:
    values = np.random.default_rng(0).normal(size=5000)
    lo, hi = bootstrap_ci(values)
    assert lo < values.mean() < hi
    half = 1.959964 * values.std() / math.sqrt(values.size)  # normal approximation of the mean's interval
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)


def test_constant_data_gives_a_zero_width_interval() -> None:
    assert bootstrap_ci([0.3] * 50) == (pytest.approx(0.3), pytest.approx(0.3))
    lo, hi = bootstrap_ci([0.3] * 50, strata=["a"] * 20 + ["b"] * 30)
    assert lo == hi


def test_stratification_preserves_per_task_counts() -> None:
    # The value is the stratum indicator, so a resample's mean is the share of stratum "a" in it:
    # fixed at 20/50 when strata are preserved, random otherwise.
    strata = np.array(["a"] * 20 + ["b"] * 30)
    indicator = (strata == "a").astype(float)
    assert bootstrap_ci(indicator, strata=strata) == (pytest.approx(0.4), pytest.approx(0.4))
    lo, hi = bootstrap_ci(indicator)
    assert lo < 0.4 - 0.05 and hi > 0.4 + 0.05
    # Unsorted, non-string labels work the same way.
    mixed = np.array([1, 2] * 25)
    assert bootstrap_ci((mixed == 1).astype(float), strata=mixed) == (pytest.approx(0.5), pytest.approx(0.5))


def test_bootstrap_cis_share_resamples_and_accept_other_statistics() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.random(300), rng.random(300)
    strata = np.arange(300) % 4
    both = bootstrap_cis([x, y], strata=strata, n_boot=500, seed=2)
    assert both[0] == bootstrap_ci(x, strata=strata, n_boot=500, seed=2)
    lo, hi = bootstrap_ci(x, stat=np.median)
    assert lo < float(np.median(x)) < hi


def test_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([0.1, float("nan")])
    with pytest.raises(ValueError, match="one stratum label per value"):
        bootstrap_ci([0.1, 0.2, 0.3], strata=["a", "b"])
    with pytest.raises(ValueError, match="differ in length"):
        bootstrap_cis([[1.0, 2.0], [1.0]])


# -- Spearman -----------------------------------------------------------------------------------------


def test_spearman_perfect_and_reversed() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_spearman_hand_computed() -> None:
    # No ties: rho = 1 - 6 * sum(d^2) / (n (n^2 - 1)); d = (-1, 1, -1, 1, 0) -> 1 - 24/120 = 0.8
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    # Ties: ranks x = (1, 2.5, 2.5, 4), y = (1, 3, 2, 4); centred products 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
    assert rank_average([1, 2, 2, 3]).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9))


def test_spearman_is_nan_when_undefined() -> None:
    assert math.isnan(spearman([5, 5, 5], [1, 2, 3]))  # a constant judge carries no ranking
    assert math.isnan(spearman([1], [2]))
    with pytest.raises(ValueError, match="equal lengths"):
        spearman([1, 2], [1, 2, 3])


def test_spearman_and_ranks_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    for _ in range(20):
        x, y = rng.integers(0, 11, size=40), rng.integers(0, 11, size=40)  # 0-10 scores: many ties
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
        assert rank_average(x) == pytest.approx(stats.rankdata(x))


# -- weighted kappa -----------------------------------------------------------------------------------

# Worked example on categories 0-2: a = (0, 1, 2, 2), b = (0, 2, 2, 1). Marginals of both raters are
# (.25, .25, .5). Observed disagreement: pairs (1,2) and (2,1), each 1/4.
#   linear:    sum W*O = .5;  sum W*E = 2*(.0625*1 + .125*2 + .125*1) = .875   -> 1 - .5/.875  = 3/7
#   quadratic: sum W*O = .5;  sum W*E = 2*(.0625*1 + .125*4 + .125*1) = 1.375  -> 1 - .5/1.375 = 7/11
#   unweighted: 1 - .5 / (1 - (.0625 + .0625 + .25)) = 1 - .5/.625 = .2
A, B = [0, 1, 2, 2], [0, 2, 2, 1]


def test_weighted_kappa_hand_computed() -> None:
    assert weighted_kappa(A, B, categories=range(3), weights="linear") == pytest.approx(3 / 7)
    assert weighted_kappa(A, B, categories=range(3), weights="quadratic") == pytest.approx(7 / 11)
    assert weighted_kappa(A, B, categories=range(3), weights=None) == pytest.approx(0.2)
    # Unused categories of the 0-10 scale change nothing.
    assert weighted_kappa(A, B) == pytest.approx(7 / 11)
    assert weighted_kappa(A, B, weights="linear") == pytest.approx(3 / 7)


def test_weighted_kappa_perfect_agreement_and_edge_cases() -> None:
    scores = [0, 3, 5, 7, 10, 10]
    assert weighted_kappa(scores, scores) == pytest.approx(1.0)
    assert weighted_kappa(scores, scores, weights="linear") == pytest.approx(1.0)
    assert math.isnan(weighted_kappa([5, 5], [5, 5]))  # no disagreement expected by chance
    assert math.isnan(weighted_kappa([], []))
    with pytest.raises(ValueError, match="not among the categories"):
        weighted_kappa([11], [10])
    with pytest.raises(ValueError, match="weights"):
        weighted_kappa(A, B, weights="cubic")  # type: ignore[arg-type]


def test_weighted_kappa_matches_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(9)
    a = rng.integers(0, 11, size=60).tolist()
    b = np.clip(np.array(a) + rng.integers(-2, 3, size=60), 0, 10).tolist()
    for w in ("linear", "quadratic"):
        expected = metrics.cohen_kappa_score(a, b, labels=list(range(11)), weights=w)
        assert weighted_kappa(a, b, weights=w) == pytest.approx(expected)  # type: ignore[arg-type]


# -- simple agreement ---------------------------------------------------------------------------------


def test_mean_abs_diff_and_exact_agreement() -> None:
    a, b = [5, 6, 7, 8], [5, 8, 6, 8]  # differences 0, 2, 1, 0
    assert mean_abs_diff(a, b) == pytest.approx(0.75)
    assert exact_agreement(a, b) == pytest.approx(0.5)
    assert exact_agreement(a, b, tolerance=1) == pytest.approx(0.75)
    assert exact_agreement(a, b, tolerance=2) == pytest.approx(1.0)
    assert math.isnan(mean_abs_diff([], [])) and math.isnan(exact_agreement([], []))


def test_stratified_bootstrap_means_matches_the_separate_bootstraps() -> None:
    from vlascore.scoring import stratified_bootstrap_means

    rng = np.random.default_rng(5)
    x = rng.normal(size=90)
    strata = np.repeat(["b", "a", "c"], 30)
    overall, per = stratified_bootstrap_means(x, strata, n_boot=500, seed=2)
    # the same draws in the same order (equal up to summation order)
    assert overall == pytest.approx(bootstrap_ci(x, strata, n_boot=500, seed=2), rel=1e-12)
    assert per["a"] == pytest.approx(bootstrap_ci(x[strata == "a"], n_boot=500, seed=2), rel=1e-12)  # drawn first
    assert set(per) == {"a", "b", "c"}
    for key, (lo, hi) in per.items():
        assert lo <= x[strata == key].mean() <= hi
