"""VLA Score (Eq. 8) on toy-world runs with hand-written judgement files; every expected number is
computed by hand in the comments."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import ToyExpert, small_suite

from vlascore import runner
from vlascore.adapters import ADAPTERS, PolicyStep
from vlascore.backends import Observation
from vlascore.judging.judgement import JUDGEMENTS_DIR, Judgement, JudgementFile
from vlascore.scoring import (
    JudgementFileError,
    eq8,
    read_judgement_files,
    trajectory_scores,
    vla_score,
)
from vlascore.stats import wilson_interval
from vlascore.store import LoadedRun, StoreError, load_run
from vlascore.suites import Suite, load_suite


class ToySilent(ToyExpert):
    """The toy expert without words: a specialist (A and I judged only) that succeeds on ToyPick."""

    name = "toy-silent"
    reasons = False

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        return PolicyStep(super().act(obs, instruction).action)


ADAPTERS.register("toy-silent", ToySilent)


def two_task_suite() -> Suite:
    """ToyPick seeds 0-2 (the expert succeeds: B = 1) and ToyShort seeds 0-1 (2-step horizon: B = 0)."""
    suite = small_suite(load_suite("toy"), ["ToyPick"], [0, 1, 2])
    short = suite.tasks[0].model_copy(update={"id": "ToyShort", "max_steps": 2, "seeds": [0, 1]})
    return suite.model_copy(update={"tasks": [*suite.tasks, short]})


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for model in ("toy-expert", "toy-silent", "flaky"):
        runner.run(model=model, suite=two_task_suite(), out=root / model)
        out[model] = root / model
    return out


def fresh(src: Path, tmp_path: Path) -> LoadedRun:
    """A private copy of a module-scoped run (tests add judgement files to it)."""
    import shutil

    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    # The run id is the directory name, which the copy keeps.
    return load_run(dst)


def verdict(eid: str, mode: str = "reasoning", status: str = "ok", **scores: int) -> Judgement:
    return Judgement(
        episode_id=eid,
        judge="hand",
        judge_version="1-test",
        mode=mode,
        status=status,  # type: ignore[arg-type]
        scores=scores,
        failure_reason="no JSON" if status == "failed" else None,
    )


def write(run: LoadedRun, judgements: list[Judgement], label: str = "hand", run_id: str | None = None) -> JudgementFile:
    jf = JudgementFile(
        label=label, run_id=run_id or run.run.run_id, judge="hand", judge_version="1-test", judgements=judgements
    )
    path = run.path / JUDGEMENTS_DIR / f"{label}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(jf.model_dump_json(indent=2))
    return jf


# Reasoning policy (toy-expert). Normalised dims, Eq. 8 = ((R + A*I)/2) * RA * B:
#   ToyPick-0  R8 A6  I5  RA10 B1 -> ((.8 + .3)/2) * 1.0 = .55
#   ToyPick-1  R4 A10 I10 RA5  B1 -> ((.4 + 1.)/2) * 0.5 = .35
#   ToyPick-2  R10 A2 I5  RA8  B1 -> ((1. + .1)/2) * 0.8 = .44
#   ToyShort-0 all 10         B0 -> 0 (perfect judge scores, failed episode)
#   ToyShort-1 R6 A4  I8  RA6  B0 -> 0
REASONING = {
    "ToyPick-0": (8, 6, 5, 10),
    "ToyPick-1": (4, 10, 10, 5),
    "ToyPick-2": (10, 2, 5, 8),
    "ToyShort-0": (10, 10, 10, 10),
    "ToyShort-1": (6, 4, 8, 6),
}


def reasoning_verdicts(skip: tuple[str, ...] = (), failed: tuple[str, ...] = ()) -> list[Judgement]:
    out = []
    for eid, (r, a, i, ra) in REASONING.items():
        if eid in skip:
            continue
        if eid in failed:
            out.append(verdict(eid, status="failed"))
        else:
            out.append(verdict(eid, Reasoning=r, Action=a, Intention=i, Alignment=ra))
    return out


def test_eq8_formula_per_trajectory() -> None:
    assert float(eq8("reasoning", 0.6, 0.5, 1, reasoning=0.8, alignment=1.0)) == pytest.approx(0.55)
    assert float(eq8("reasoning", 1.0, 1.0, 0, reasoning=1.0, alignment=1.0)) == 0.0  # B = 0 wins
    assert float(eq8("specialist", 0.8, 0.5, 1)) == pytest.approx(0.4)
    assert float(eq8("specialist", 0.8, 0.5, 1, alignment=0.0)) == pytest.approx(0.4)  # RA := 1 for specialists
    with pytest.raises(ValueError, match="reasoning"):
        eq8("reasoning", 0.5, 0.5, 1)


def test_reasoning_policy_matches_hand_computation(runs: dict[str, Path], tmp_path: Path) -> None:
    run = fresh(runs["toy-expert"], tmp_path)
    assert list(run.episodes["success"]) == [True, True, True, False, False]
    jf = write(run, reasoning_verdicts())
    traj = trajectory_scores(run, jf).set_index("episode_id")
    assert traj.loc["ToyPick-0", ["R", "A", "I", "RA", "B"]].tolist() == pytest.approx([0.8, 0.6, 0.5, 1.0, 1.0])
    assert traj["score"].tolist() == pytest.approx([0.55, 0.35, 0.44, 0.0, 0.0])
    assert traj.loc["ToyShort-0", "score"] == 0.0  # perfect judge scores cannot rescue a failed episode

    res = vla_score(run, jf)
    assert res.mode == "reasoning"
    assert (res.episodes, res.judged, res.failed, res.unjudged, res.errored) == (5, 5, 0, 0, 0)
    assert res.vla_score.value == pytest.approx(26.8)  # (.55 + .35 + .44 + 0 + 0) / 5 x 100
    assert res.reasoning is not None and res.reasoning.value == pytest.approx(76.0)  # (8+4+10+10+6)/5 x 10
    assert res.action.value == pytest.approx(64.0)  # (6+10+2+10+4)/5
    assert res.intention.value == pytest.approx(76.0)  # (5+10+5+10+8)/5
    assert res.alignment is not None and res.alignment.value == pytest.approx(78.0)  # (10+5+8+10+6)/5
    assert res.sim.value == pytest.approx(60.0)  # 3 of 5 succeed
    # The product of the averaged dimensions is a different number: ((.76 + .64*.76)/2) * .78 * .6 = .2916576
    product = ((0.76 + 0.64 * 0.76) / 2) * 0.78 * 0.60
    assert product == pytest.approx(0.2916576)
    assert res.vla_score.value != pytest.approx(product * 100)

    pick, short = res.tasks
    assert (pick.task, pick.judged, short.task, short.judged) == ("ToyPick", 3, "ToyShort", 2)
    assert pick.vla_score.value == pytest.approx(134 / 3)  # (.55 + .35 + .44) / 3 x 100
    assert pick.reasoning is not None and pick.reasoning.value == pytest.approx(220 / 3)  # (8+4+10)/3 x 10
    assert (pick.sim.value, short.sim.value, short.vla_score.value) == (100.0, 0.0, 0.0)
    # A task whose every trajectory scores 0 has a zero-width interval.
    assert (short.vla_score.ci_low, short.vla_score.ci_high) == (0.0, 0.0)


def test_intervals_bracket_the_values_and_are_reproducible(runs: dict[str, Path], tmp_path: Path) -> None:
    run = fresh(runs["toy-expert"], tmp_path)
    jf = write(run, reasoning_verdicts())
    res = vla_score(run, jf)
    for est in (res.reasoning, res.action, res.intention, res.alignment, res.sim, res.vla_score):
        assert est is not None and est.value is not None and est.ci_low is not None and est.ci_high is not None
        assert est.ci_low <= est.value <= est.ci_high
    # Sim. is a success rate: Wilson's interval over the 5 judged episodes (3 successes), as in every success table
    # (a bootstrap stratified by task would resample 3 successes and 2 failures every time: a zero-width interval)
    lo, hi = wilson_interval(3, 5)
    assert (res.sim.ci_low, res.sim.ci_high) == pytest.approx((100 * lo, 100 * hi))
    assert res.vla_score.ci_low < res.vla_score.ci_high
    again = vla_score(run, jf)
    assert again.model_dump() == res.model_dump()
    other_seed = vla_score(run, jf, seed=1)
    assert other_seed.vla_score.value == res.vla_score.value
    assert (res.n_boot, res.seed, other_seed.seed) == (2000, 0, 1)


def test_specialist_policy_matches_hand_computation(runs: dict[str, Path], tmp_path: Path) -> None:
    run = fresh(runs["toy-silent"], tmp_path)
    assert run.run.adapter_info["reasons"] is False
    # Eq. 8 = A * I * B:  P0 A8 I5 -> .4;  P1 A6 I10 -> .6;  P2 A10 I2 -> .2;  S0 A10 I10 B0 -> 0;  S1 A3 I7 -> 0
    dims = {
        "ToyPick-0": (8, 5),
        "ToyPick-1": (6, 10),
        "ToyPick-2": (10, 2),
        "ToyShort-0": (10, 10),
        "ToyShort-1": (3, 7),
    }
    jf = write(run, [verdict(e, "specialist", Action=a, Intention=i) for e, (a, i) in dims.items()])
    traj = trajectory_scores(run, jf)
    assert traj["score"].tolist() == pytest.approx([0.4, 0.6, 0.2, 0.0, 0.0])
    assert traj["RA"].tolist() == [1.0] * 5  # [decision] RA := 1 for specialists
    assert traj["R"].isna().all()

    res = vla_score(run, jf)
    assert res.mode == "specialist"
    assert res.reasoning is None and res.alignment is None  # not asked
    assert all(t.reasoning is None and t.alignment is None for t in res.tasks)
    assert res.vla_score.value == pytest.approx(24.0)  # (.4 + .6 + .2) / 5 x 100
    assert res.action.value == pytest.approx(74.0)  # (8+6+10+10+3)/5 x 10
    assert res.intention.value == pytest.approx(68.0)  # (5+10+2+10+7)/5 x 10
    assert res.sim.value == pytest.approx(60.0)
    product = 0.74 * 0.68 * 0.60  # product of the averages: .30192, not the VLA Score
    assert product * 100 == pytest.approx(30.192)
    assert res.vla_score.value != pytest.approx(product * 100)


def test_b_is_the_simulator_flag_not_the_judge_claim(runs: dict[str, Path], tmp_path: Path) -> None:
    run = fresh(runs["toy-expert"], tmp_path)
    verdicts = reasoning_verdicts()
    for v in verdicts:
        v.success_claim = v.episode_id.startswith("ToyShort")  # the judge gets every outcome backwards
    res = vla_score(run, write(run, verdicts))
    assert res.vla_score.value == pytest.approx(26.8)
    assert res.sim.value == pytest.approx(60.0)


def test_failed_judgement_is_excluded_and_counted(runs: dict[str, Path], tmp_path: Path) -> None:
    run = fresh(runs["toy-expert"], tmp_path)
    jf = write(run, reasoning_verdicts(failed=("ToyShort-1",)))
    assert trajectory_scores(run, jf).set_index("episode_id").loc["ToyShort-1", "judgement"] == "failed"
    res = vla_score(run, jf)
    assert (res.judged, res.failed, res.unjudged, res.errored) == (4, 1, 0, 0)
    assert res.vla_score.value == pytest.approx(33.5)  # 1.34 / 4, not 1.34 / 5 (a failure is not a 0)
    assert res.reasoning is not None and res.reasoning.value == pytest.approx(80.0)  # (8+4+10+10)/4
    assert res.sim.value == pytest.approx(75.0)  # 3 of the 4 judged
    assert (res.tasks[1].judged, res.tasks[1].failed) == (1, 1)


def test_unjudged_and_errored_episodes_are_counted_apart(runs: dict[str, Path], tmp_path: Path) -> None:
    run = fresh(runs["flaky"], tmp_path)
    status = dict(zip(run.episodes["episode_id"], run.episodes["status"], strict=True))
    assert status["ToyPick-1"] == "errored"
    # ToyPick-1 errored (a judgement of it is ignored); ToyShort-1 not judged yet.
    jf = write(run, reasoning_verdicts(skip=("ToyShort-1",)))
    traj = trajectory_scores(run, jf).set_index("episode_id")
    assert traj["judgement"].tolist() == ["ok", "errored", "ok", "ok", "unjudged"]
    assert math.isnan(traj.loc["ToyPick-1", "score"])
    res = vla_score(run, jf)
    assert (res.episodes, res.judged, res.failed, res.unjudged, res.errored) == (5, 3, 0, 1, 1)
    assert res.vla_score.value == pytest.approx(33.0)  # (.55 + .44 + 0) / 3 x 100
    assert res.sim.value == pytest.approx(200 / 3)
    pick, short = res.tasks
    assert (pick.judged, pick.errored, short.judged, short.unjudged) == (2, 1, 1, 1)


def test_nothing_judged_gives_empty_estimates(runs: dict[str, Path], tmp_path: Path) -> None:
    run = fresh(runs["toy-silent"], tmp_path)
    res = vla_score(run, write(run, []))
    assert res.mode == "specialist"  # from the adapter's declaration
    assert (res.judged, res.unjudged) == (0, 5)
    assert res.vla_score.value is None and res.vla_score.ci_low is None


def test_refuses_judgements_of_another_run(runs: dict[str, Path], tmp_path: Path) -> None:
    run = fresh(runs["toy-expert"], tmp_path)
    jf = write(run, reasoning_verdicts(), run_id="someone-else")
    with pytest.raises(JudgementFileError, match="judges run 'someone-else'") as info:
        vla_score(run, jf)
    assert isinstance(info.value, StoreError)
    assert "hand.json" in str(info.value)


def test_refuses_unknown_or_repeated_episodes(runs: dict[str, Path], tmp_path: Path) -> None:
    run = fresh(runs["toy-expert"], tmp_path)
    stray = verdict("ToyPick-99", Reasoning=5, Action=5, Intention=5, Alignment=5)
    with pytest.raises(JudgementFileError, match="not in run .*ToyPick-99"):
        vla_score(run, write(run, [*reasoning_verdicts(), stray]))
    with pytest.raises(JudgementFileError, match="more than once"):
        vla_score(run, write(run, [*reasoning_verdicts(), reasoning_verdicts()[0]]))


def test_refuses_incomplete_or_out_of_range_verdicts(runs: dict[str, Path], tmp_path: Path) -> None:
    run = fresh(runs["toy-expert"], tmp_path)
    missing = [verdict("ToyPick-0", Reasoning=5, Action=5, Intention=5)]  # no Alignment in reasoning mode
    with pytest.raises(JudgementFileError, match="Alignment=None"):
        vla_score(run, write(run, missing))
    too_high = [verdict("ToyPick-0", Reasoning=11, Action=5, Intention=5, Alignment=5)]
    with pytest.raises(JudgementFileError, match="Reasoning=11"):
        vla_score(run, write(run, too_high))
    mixed = [verdict("ToyPick-0", "specialist", Action=5, Intention=5), *reasoning_verdicts(skip=("ToyPick-0",))]
    with pytest.raises(JudgementFileError, match="mixes"):
        vla_score(run, write(run, mixed))


def test_read_judgement_files_sorted_and_corrupt_named(runs: dict[str, Path], tmp_path: Path) -> None:
    run = fresh(runs["toy-expert"], tmp_path)
    assert read_judgement_files(run.path) == []
    write(run, reasoning_verdicts(), label="zeta")
    write(run, reasoning_verdicts(), label="alpha")
    (run.path / JUDGEMENTS_DIR / ".alpha.json.123.tmp").write_text("partial")  # a writer's temp file
    assert [jf.label for jf in read_judgement_files(run.path)] == ["alpha", "zeta"]
    bad = run.path / JUDGEMENTS_DIR / "broken.json"
    bad.write_text('{"label": "broken", "run_id": ')
    with pytest.raises(JudgementFileError, match="broken.json") as info:
        read_judgement_files(run.path)
    assert "re-run the judge pass" in str(info.value) and "delete the file" in str(info.value)


def test_bootstrap_is_fast_enough_for_large_runs() -> None:
    """Not a timing test: 10,000 trajectories go through the same vectorised path without trouble."""
    from vlascore.scoring import bootstrap_cis

    rng = np.random.default_rng(0)
    scores = rng.random(10_000)
    (lo, hi), (slo, shi) = bootstrap_cis([scores, scores > 0.5], strata=np.arange(10_000) % 9)
    assert lo < scores.mean() < hi and slo < (scores > 0.5).mean() < shi
