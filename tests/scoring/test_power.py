"""Sample-size planning (vlascore/scoring/power.py, `vlascore plan`) against independent computations: scipy's exact
binomial test enumerated over every outcome, statsmodels' power of the t-test and Wilson interval."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy import stats
from statsmodels.stats.power import TTestPower
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from vlascore.cli import app
from vlascore.scoring import power as pw
from vlascore.scoring.paired import mcnemar_exact
from vlascore.store import load_run


def enumerated_mcnemar_power(n: int, p10: float, p01: float, alpha: float) -> float:
    """Sum over every (A-only, B-only, concordant) outcome of n pairs of its multinomial probability times whether
    scipy's exact binomial test on the discordant pairs rejects."""
    total = 0.0
    for a in range(n + 1):
        for b in range(n + 1 - a):
            if a + b == 0:
                continue
            prob = stats.multinomial.pmf([a, b, n - a - b], n, [p10, p01, 1 - p10 - p01])
            total += prob * (stats.binomtest(a, a + b, 0.5).pvalue <= alpha)
    return total


@pytest.mark.parametrize(("n", "p10", "p01"), [(8, 0.3, 0.05), (15, 0.2, 0.1), (25, 0.15, 0.3), (12, 0.0, 0.4)])
def test_exact_mcnemar_power_equals_enumeration_with_scipy(n: int, p10: float, p01: float) -> None:
    assert pw.mcnemar_power(n, p10, p01) == pytest.approx(enumerated_mcnemar_power(n, p10, p01, 0.05), abs=1e-9)


def test_the_power_uses_the_test_vlascore_runs() -> None:
    # the rejection region is the one mcnemar_exact's p-value gives (p <= alpha), for every split of d pairs
    for d in range(1, 40):
        for x in range(d + 1):
            assert (mcnemar_exact(x, d - x) <= 0.05) == (stats.binomtest(x, d, 0.5).pvalue <= 0.05)


@pytest.mark.parametrize(("a", "b"), [(0.6, 0.75), (0.2, 0.5), (0.9, 0.7), (0.45, 0.55)])
def test_the_sample_size_is_the_first_n_with_enough_power(a: float, b: float) -> None:
    p10, p01 = pw.independent_discordance(a, b)
    n = pw.mcnemar_sample_size(p10, p01)
    assert n is not None
    assert pw.mcnemar_power(n, p10, p01) >= 0.8 > pw.mcnemar_power(n - 1, p10, p01)
    # Connor's normal approximation is close to the exact answer
    za, zb = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    psi, delta = p10 + p01, abs(p10 - p01)
    connor = ((za * math.sqrt(psi) + zb * math.sqrt(psi - delta**2)) / delta) ** 2
    assert abs(n - connor) / connor < 0.15


def test_nothing_to_plan_for_equal_rates_or_tiny_differences() -> None:
    assert pw.mcnemar_sample_size(*pw.independent_discordance(0.5, 0.5)) is None
    assert pw.mcnemar_sample_size(0.2, 0.2 + 1e-4) is None  # beyond MAX_EPISODES
    with pytest.raises(ValueError, match="p10 \\+ p01 <= 1"):
        pw.mcnemar_power(10, 0.7, 0.6)


@pytest.mark.parametrize(("n", "effect"), [(10, 0.5), (30, 0.3), (80, 0.2), (5, 1.2)])
def test_paired_t_power_equals_statsmodels(n: int, effect: float) -> None:
    assert pw.paired_t_power(n, effect) == pytest.approx(TTestPower().power(effect, n, 0.05), abs=1e-6)


@pytest.mark.parametrize(("mean", "sd"), [(0.05, 0.2), (0.1, 0.25), (-0.2, 0.3), (0.02, 0.15)])
def test_paired_sample_size_equals_statsmodels(mean: float, sd: float) -> None:
    expected = math.ceil(TTestPower().solve_power(effect_size=abs(mean) / sd, alpha=0.05, power=0.8))
    assert pw.paired_sample_size(mean, sd) == expected


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.85, 1.0])
@pytest.mark.parametrize("n", [1, 7, 50, 400])
def test_wilson_width_equals_statsmodels(rate: float, n: int) -> None:
    lo, hi = proportion_confint(round(rate * n), n, alpha=0.05, method="wilson")
    assert pw.wilson_width(round(rate * n) / n, n) == pytest.approx(hi - lo, abs=1e-4)


def test_episodes_for_width_is_the_fewest() -> None:
    n = pw.episodes_for_width(0.5, 0.1)
    assert n is not None and pw.wilson_width(0.5, n) <= 0.1 < pw.wilson_width(0.5, n - 1)


def test_cli_plans_from_rates_intervals_and_two_runs(tmp_path: Path) -> None:
    cli = CliRunner()
    res = cli.invoke(app, ["plan", "--rates", "0.6,0.75", "-s", "tabletop", "--json"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)["rates"]
    assert plan["pairs"] == pw.mcnemar_sample_size(0.6 * 0.25, 0.75 * 0.4) and plan["tasks"] == 5
    text = cli.invoke(app, ["plan", "--rates", "0.6,0.75", "-s", "tabletop"]).output
    assert f"{plan['pairs']} ({math.ceil(plan['pairs'] / 5)} per task x 5) shared episodes" in " ".join(text.split())
    res = cli.invoke(app, ["plan", "--rate", "0.7", "--episodes", "20,50", "--width", "0.1", "--json"])
    intervals = json.loads(res.output)["intervals"]
    assert [r["episodes"] for r in intervals["rows"]] == [20, 50]
    assert intervals["episodes_for_width"] == pw.episodes_for_width(0.7, 0.1)
    bad = cli.invoke(app, ["plan", "--rates", "0.6"])
    assert bad.exit_code == 2 and "2 comma-separated" in bad.output

    for model in ("toy-expert", "random"):
        ran = cli.invoke(
            app, ["run", "-m", model, "-s", "toy", "-n", "12", "-o", str(tmp_path / model), "--no-progress"]
        )
        assert ran.exit_code == 0, ran.output
    res = cli.invoke(app, ["plan", str(tmp_path / "toy-expert"), str(tmp_path / "random"), "--json"])
    assert res.exit_code == 0, res.output
    success = json.loads(res.output)["runs"][0]
    assert success["metric"] == "success" and success["pairs"] == 12
    a = load_run(tmp_path / "toy-expert").episodes.set_index("episode_id")["success"]
    b = load_run(tmp_path / "random").episodes.set_index("episode_id")["success"].reindex(a.index)
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    assert a_only > b_only  # the expert wins: a difference to plan for
    assert success["needed"] == pw.mcnemar_sample_size(a_only / 12, b_only / 12)
    assert success["enough"] == (12 >= success["needed"])
