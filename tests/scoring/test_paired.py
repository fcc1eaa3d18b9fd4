"""Paired comparison on shared seeds: the tests' p-values by hand, Holm's adjustment, and run matching."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import small_suite

from vlascore import runner
from vlascore.judging.engine import judge_run
from vlascore.scoring import compare_runs, holm, mcnemar_exact, read_judgement_files, sign_flip_test
from vlascore.store import load_run
from vlascore.suites import load_suite


def test_mcnemar_exact_by_hand() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 1) == pytest.approx(2 * (1 + 6) / 2**6)  # 2 * P(X <= 1), X ~ Bin(6, 1/2)
    assert mcnemar_exact(12, 0) == pytest.approx(2 / 2**12)
    assert mcnemar_exact(3, 3) == 1.0  # capped at 1
    assert mcnemar_exact(700, 650) == pytest.approx(mcnemar_exact(650, 700))  # big n stays exact and symmetric
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_sign_flip_exact_enumeration_by_hand() -> None:
    # The 8 sign patterns of (1, 2, 3) sum to +-6, +-4, +-2, 0, 0: two are as extreme as the observed 6.
    assert sign_flip_test([1, 2, 3]) == pytest.approx(2 / 8)
    assert sign_flip_test([0, 0, 1, 2, 3]) == pytest.approx(2 / 8)  # zero differences carry no sign
    assert sign_flip_test([0.0, 0.0]) == 1.0 and sign_flip_test([]) == 1.0
    # (1, 1, -1, 1): patterns whose |sum| >= 2: those with 3 or 4 equal signs: 2 * (1 + 4) = 10 of 16.
    assert sign_flip_test([1, 1, -1, 1]) == pytest.approx(10 / 16)


def test_sign_flip_monte_carlo_is_seeded_and_never_zero() -> None:
    d = np.full(40, 0.5)  # exact p = 2 / 2^40: no random flip pattern of 10,000 gets there
    assert sign_flip_test(d, n_resamples=10_000) == pytest.approx(1 / 10_001)
    noisy = np.random.default_rng(3).normal(0.1, 1.0, size=60)
    assert sign_flip_test(noisy, seed=1) == sign_flip_test(noisy, seed=1)
    assert 0 < sign_flip_test(noisy) <= 1


def test_holm_adjustment_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.03), max(0.06, 1 * 0.04); back in input order
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and holm([]) == []


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("paired")
    out = {}
    suite = small_suite(load_suite("toy"), ["ToyPick"], list(range(14)))
    for model, episodes in (("toy-expert", 10), ("random", 10), ("random-long", 14)):
        path = base / model
        runner.run(model=model.removesuffix("-long"), suite=suite, out=path, episodes=episodes)
        judge_run(path, "grounded")
        out[model] = path
    return out


def _compare(a: Path, b: Path):  # type: ignore[no-untyped-def]
    ra, rb = load_run(a), load_run(b)
    return compare_runs(ra, rb, ("A", "B"), (read_judgement_files(a), read_judgement_files(b)))


def test_expert_vs_random_is_significant_pair_by_pair(toy_runs: dict[str, Path]) -> None:
    cmp = _compare(toy_runs["toy-expert"], toy_runs["random"])
    assert cmp.comparable and cmp.shared == 10 and cmp.only_a == cmp.only_b == 0
    success, vla = cmp.overall
    ea, eb = load_run(toy_runs["toy-expert"]).episodes, load_run(toy_runs["random"]).episodes
    a_only = int((ea["success"].to_numpy() & ~eb["success"].to_numpy()).sum())
    b_only = int((~ea["success"].to_numpy() & eb["success"].to_numpy()).sum())
    assert (success.a_only, success.b_only) == (a_only, b_only) and a_only >= 8
    assert success.p_value == pytest.approx(mcnemar_exact(a_only, b_only))
    assert success.diff == pytest.approx(100 * (ea["success"].mean() - eb["success"].mean()))
    assert success.ci_low <= success.diff <= success.ci_high
    assert vla.metric == "vla:grounded" and vla.test == "sign-flip" and vla.n == 10
    assert vla.p_value < 0.05 and vla.diff > 0
    assert any("specialist" in n for n in cmp.notes)  # the random policy is scored as a specialist
    assert [t.task for t in cmp.tasks] == ["ToyPick", "ToyPick"]


def test_only_shared_seeds_are_paired(toy_runs: dict[str, Path]) -> None:
    cmp = _compare(toy_runs["random"], toy_runs["random-long"])  # seeds 0-9 vs 0-13 of the same suite
    assert (cmp.shared, cmp.only_a, cmp.only_b) == (10, 0, 4)
    success = cmp.overall[0]
    assert success.n == 10 and success.diff == 0 and success.p_value == 1.0  # same policy, same seeds, same outcome
    assert math.isclose(success.ci_low, 0) and math.isclose(success.ci_high, 0)


def test_different_suite_specs_are_not_compared(toy_runs: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    runner.run(model="random", suite=small_suite(load_suite("toy"), ["ToyPick"], [0, 1], max_steps=7), out=other)
    cmp = _compare(toy_runs["random"], other)
    assert not cmp.comparable and cmp.overall == [] and "fingerprints differ" in cmp.notes[0]
