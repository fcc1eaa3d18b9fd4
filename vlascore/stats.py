"""Interval estimates and agreement statistics, in numpy only (scipy is not a core dependency).

- `wilson_interval`: binomial proportion (success rates).
- `bootstrap_ci` / `bootstrap_cis`: percentile bootstrap, resampling within strata (tasks) so every
  resample keeps the per-task episode counts; a suite's mix of tasks is fixed by design, not sampled.
- `spearman`, `weighted_kappa`, `mean_abs_diff`, `exact_agreement`: judge-vs-judge (or judge-vs-human)
  agreement on 0-10 scores, used to validate judges instead of assuming them (docs/vla_score.md §5).

Conventions: every function returns plain floats; a statistic that is undefined on the data (a constant
side for Spearman, no expected disagreement for kappa, no pairs) is `nan`, never an exception, so a table
of agreements can be built without special cases. Mismatched lengths and unknown categories raise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

Z95 = 1.959963984540054
# Resample indices are drawn in blocks of at most this many entries (int32: 16 MiB), so 2000 resamples
# of 10,000 episodes never hold the whole (n_boot x n) matrix at once.
_BLOCK_ELEMENTS = 1 << 22

Stat = Callable[..., np.ndarray]


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when n == 0."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


# -- bootstrap ----------------------------------------------------------------------------------------


def _strata_groups(n: int, strata: ArrayLike | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, starts, sizes): row indices grouped by stratum, and each group's offset and size in `order`."""
    if strata is None:
        return np.arange(n), np.array([0]), np.array([n])
    labels = np.asarray(strata)
    if labels.shape != (n,):
        raise ValueError(f"strata has {labels.size} labels for {n} values; give one stratum label per value")
    _, codes = np.unique(labels, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return order, starts, sizes


def _resamples(
    n: int, order: np.ndarray, starts: np.ndarray, sizes: np.ndarray, n_boot: int, seed: int
) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows of the n_boot resamples, their (rows x n) row indices), in blocks; the columns of each block are grouped
    by stratum (`order`, `starts`, `sizes` from _strata_groups) and each stratum is drawn from itself."""
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // n)
    for lo in range(0, n_boot, block):
        rows = min(block, n_boot - lo)
        idx = np.empty((rows, n), dtype=np.intp)
        for start, size in zip(starts.tolist(), sizes.tolist(), strict=True):
            draws = rng.integers(0, size, size=(rows, size), dtype=np.int32)
            idx[:, start : start + size] = order[start + draws]
        yield slice(lo, lo + rows), idx


def _bootstrap_stats(matrix: np.ndarray, strata: ArrayLike | None, n_boot: int, seed: int, stat: Stat) -> np.ndarray:
    """`stat` of every resample of the columns of `matrix` (k x n, one row per column) -> (n_boot x k)."""
    k, n = matrix.shape
    out = np.empty((n_boot, k))
    for rows, idx in _resamples(n, *_strata_groups(n, strata), n_boot, seed):
        for j in range(k):  # one contiguous gather per column: faster than a (rows x n x k) one
            out[rows, j] = stat(matrix[j][idx], axis=1)
    return out


def bootstrap_cis(
    columns: Sequence[ArrayLike],
    strata: ArrayLike | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    stat: Stat = np.mean,
    level: float = 0.95,
) -> list[tuple[float, float]]:
    """Percentile bootstrap intervals of several equally long columns from the same resamples.

    Rows are resampled with replacement within each stratum (so per-stratum counts are those of the data),
    the same row indices for every column: one joint bootstrap, as cheap as one. `stat` is a numpy-style
    reduction taking `axis` (np.mean, np.median...). Deterministic for a given seed.
    """
    if not columns:
        return []
    arrays = [np.asarray(c, dtype=float).reshape(-1) for c in columns]
    if len({a.size for a in arrays}) > 1:
        raise ValueError(f"bootstrap columns differ in length: {[a.size for a in arrays]}")
    matrix = np.vstack(arrays)
    if matrix.shape[1] == 0:
        raise ValueError("bootstrap needs at least one value")
    if not np.isfinite(matrix).all():
        raise ValueError("bootstrap values must be finite (drop missing values before resampling)")
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    stats = _bootstrap_stats(matrix, strata, n_boot, seed, stat)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(stats, [tail, 100 - tail], axis=0)
    return [(float(a), float(b)) for a, b in zip(lo, hi, strict=True)]


def bootstrap_ci(
    values: ArrayLike,
    strata: ArrayLike | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    stat: Stat = np.mean,
) -> tuple[float, float]:
    """Percentile 95% bootstrap interval of `stat(values)`, resampling within `strata` when given.

    Vectorised (2000 resamples of 10,000 values take well under a second) and deterministic for a seed;
    constant data gives a zero-width interval.
    """
    return bootstrap_cis([values], strata, n_boot, seed, stat)[0]


def stratified_bootstrap_means(
    values: ArrayLike, strata: ArrayLike, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[tuple[float, float], dict[Any, tuple[float, float]]]:
    """Percentile intervals of the overall mean and of every stratum's mean, from one stratified bootstrap.

    Each resample draws every stratum's rows with replacement from that stratum (as `bootstrap_ci(values,
    strata)` does), so the overall interval is that of `bootstrap_ci` and each stratum's mean over its own draws
    is a plain bootstrap of that stratum: a table with per-task rows costs one resample instead of one per task.
    """
    x = np.asarray(values, dtype=float).reshape(-1)
    if x.size == 0:
        raise ValueError("bootstrap needs at least one value")
    if not np.isfinite(x).all():
        raise ValueError("bootstrap values must be finite (drop missing values before resampling)")
    labels = np.asarray(strata)
    order, starts, sizes = _strata_groups(x.size, labels)
    sums = np.empty((n_boot, len(sizes)))
    for rows, idx in _resamples(x.size, order, starts, sizes, n_boot, seed):
        sums[rows] = np.add.reduceat(x[idx], starts, axis=1)  # each stratum's draws are one run of columns
    tail = 100 * (1 - level) / 2
    overall = np.percentile(sums.sum(axis=1) / x.size, [tail, 100 - tail])
    per = np.percentile(sums / sizes, [tail, 100 - tail], axis=0)
    keys = [
        labels[order[start]].item() if hasattr(labels[order[start]], "item") else labels[order[start]]
        for start in starts.tolist()
    ]
    return (float(overall[0]), float(overall[1])), {
        key: (float(a), float(b)) for key, a, b in zip(keys, per[0], per[1], strict=True)
    }


# -- agreement ----------------------------------------------------------------------------------------


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=float).reshape(-1), np.asarray(b, dtype=float).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"paired statistics need equal lengths, got {x.size} and {y.size}")
    return x, y


def rank_average(values: ArrayLike) -> np.ndarray:
    """1-based ranks, ties sharing the average of the ranks they span (scipy's rankdata 'average')."""
    a = np.asarray(values, dtype=float).reshape(-1)
    sorter = np.argsort(a, kind="mergesort")
    inverse = np.empty(a.size, dtype=np.intp)
    inverse[sorter] = np.arange(a.size)
    ordered = a[sorter]
    new_value = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    dense = np.cumsum(new_value)[inverse]
    bounds = np.concatenate([np.nonzero(new_value)[0], [a.size]])
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rank correlation: Pearson's r of the average ranks (ties handled as in scipy).

    `nan` when fewer than 2 pairs or when either side is constant: the rank correlation is undefined
    there (scipy also returns nan), and a judge that gives every episode the same score carries no
    ranking information, which an agreement table should show rather than hide as 0.
    """
    a, b = _pair(x, y)
    if a.size < 2:
        return math.nan
    ra, rb = rank_average(a), rank_average(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float(ra @ ra) * float(rb @ rb))
    if denom == 0:
        return math.nan
    return float(np.clip((ra @ rb) / denom, -1.0, 1.0))


def weighted_kappa(
    a: Iterable[int],
    b: Iterable[int],
    categories: Iterable[int] = range(11),
    weights: Literal["quadratic", "linear"] | None = "quadratic",
) -> float:
    """Cohen's weighted kappa between two raters on ordered categories (default: the 0-10 judge scale).

    kappa = 1 - sum(W * O) / sum(W * E), with O the observed joint proportions, E the product of the two
    raters' marginals and W the disagreement weights on category positions: |i - j| ("linear"),
    (i - j)^2 ("quadratic") or i != j (None: plain Cohen's kappa); matches sklearn's cohen_kappa_score
    with labels=categories. `nan` when no pairs or when no disagreement is expected by chance (both
    raters always used the same single category).
    """
    cats = list(categories)
    position = {c: i for i, c in enumerate(cats)}
    xs, ys = list(a), list(b)
    if len(xs) != len(ys):
        raise ValueError(f"paired statistics need equal lengths, got {len(xs)} and {len(ys)}")
    unknown = sorted({v for v in (*xs, *ys) if v not in position}, key=str)
    if unknown:
        raise ValueError(f"values {unknown} are not among the categories {cats}; pass categories=...")
    if not xs:
        return math.nan
    k = len(cats)
    observed = np.zeros((k, k))
    np.add.at(observed, ([position[v] for v in xs], [position[v] for v in ys]), 1.0)
    observed /= len(xs)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    distance = np.abs(np.subtract.outer(np.arange(k), np.arange(k))).astype(float)
    if weights == "quadratic":
        w = distance**2
    elif weights == "linear":
        w = distance
    elif weights is None:
        w = (distance > 0).astype(float)
    else:
        raise ValueError(f"weights must be 'quadratic', 'linear' or None, not {weights!r}")
    denom = float((w * expected).sum())
    if denom == 0:
        return math.nan
    return 1.0 - float((w * observed).sum()) / denom


def mean_abs_diff(a: ArrayLike, b: ArrayLike) -> float:
    """Mean absolute difference of paired scores (in score units); `nan` when no pairs."""
    x, y = _pair(a, b)
    return float(np.abs(x - y).mean()) if x.size else math.nan


def exact_agreement(a: ArrayLike, b: ArrayLike, tolerance: float = 0) -> float:
    """Fraction of pairs whose scores differ by at most `tolerance` (0: identical); `nan` when no pairs."""
    x, y = _pair(a, b)
    return float((np.abs(x - y) <= tolerance).mean()) if x.size else math.nan
