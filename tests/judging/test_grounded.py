"""The grounded judge: its formulas on hand-built traces, then end to end on toy runs (expert vs random vs a
policy whose words do not match its motion), the injection probe, and its errors."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ToyExpert, jctx, small_suite
from typer.testing import CliRunner

from vlascore import runner
from vlascore.adapters import ADAPTERS
from vlascore.cli import app
from vlascore.judging import JudgeError, load_judge
from vlascore.judging.engine import judge_run, judgements_path
from vlascore.judging.grounded import judge_grounded, statement
from vlascore.judging.inputs import JudgeInput
from vlascore.records import EpisodeRecord
from vlascore.suites import TaskSpec, load_suite

PICK = "pick up the red cube and move it to the green goal"


def make_input(
    tcp: list[tuple[float, float, float]],
    *,
    success: bool,
    obj: tuple[float, float, float],
    goal: tuple[float, float, float],
    grip: list[float] | None = None,
    reasoning: list[str | None] | None = None,
    intention: list[str | None] | None = None,
    max_steps: int = 10,
    category: str = "Pick",
) -> JudgeInput:
    """A hand-built episode: the TCP path, a fixed object and goal, per-step texts."""
    n = len(tcp)
    q = [1.0, 0.0, 0.0, 0.0]
    steps = pd.DataFrame(
        {
            "step": range(n),
            "action": [[0.0] * 7] * n,
            "ee_pose": [[*p, *q] for p in tcp],
            "gripper": grip or [1.0] * n,
            "privileged": [{"cube": [*obj, *q], "goal": [*goal, *q]}] * n,
            "reasoning": reasoning or [None] * n,
            "intention": intention or [None] * n,
        }
    )
    task = TaskSpec(
        id="T",
        env_id="T-v0",
        instruction=PICK,
        category=category,
        seeds=[0],
        max_steps=max_steps,
        objects={"cube": "cube", "goal": "goal_site"},
    )
    episode = EpisodeRecord(
        episode_id="T-0",
        task="T",
        seed=0,
        instruction=PICK,
        success=success,
        num_steps=n,
        termination="success" if success else "max_steps",
        status="ok",
        started_at="",
        duration_s=0.0,
        policy_time_s=0.0,
        sim_time_s=0.0,
    )
    return JudgeInput(
        run_id="r",
        episode=episode,
        task=task,
        reasons=True,
        load_steps=lambda: steps,
        load_frames=lambda: (np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, int)),
    )


# A TCP sliding at constant speed onto the cube (reached at the last step) and never closing the gripper;
# the goal is 0.2 m above the cube. Values by hand below.
LINE = [(0.1 * k, 0.0, 0.1) for k in range(5)]
CUBE, GOAL = (0.4, 0.0, 0.1), (0.4, 0.0, 0.3)
TEXTS = {
    "reasoning": ["Plan: grasp the red cube, reach it, then lift.", None, None, "Plan... now: move closer", None],
    "intention": ["reach the cube", "lift it", "release the cube then reach", None, "anything (last step)"],
}


def test_action_and_intention_formulas_by_hand() -> None:
    spec = load_judge("grounded")
    scores, thought, flags = judge_grounded(make_input(LINE, success=False, obj=CUBE, goal=GOAL), spec, "specialist")
    # Intention: reach is reached at step 4, grasp has no distance to approach. Progress before step 4 is the
    # fraction of the way to the cube (from 0.4 m to the 0.02 m `near` radius): 0, 0.1/0.38, 0.2/0.38, 0.3/0.38.
    curve = [0.0, 0.1 / 0.38 / 4, 0.2 / 0.38 / 4, 0.3 / 0.38 / 4, 1 / 4]
    timeliness = (sum(curve) + 5 * 0.25) / 10  # the horizon is 10 steps; the last value holds after the end
    assert scores["Intention"] == math.floor(10 * (0.75 * 0.25 + 0.25 * timeliness) + 0.5) == 2
    # Action: constant velocity has zero jerk (smoothness 1). Direct path: TCP->cube 0.4 m + the cube's
    # distance beyond the goal tolerance 0.2 - 0.025 = 0.175 m. Path efficiency min(1, 0.575 * 0.25 / 0.4);
    # steps efficiency min(1, (0.575 / 0.04 + 4) / 5) = 1. Precision exp(-0.175 / 0.02).
    efficiency = math.sqrt(0.575 * 0.25 / 0.4)
    expected = 0.35 * 1.0 + 0.35 * efficiency + 0.30 * math.exp(-0.175 / 0.02)
    assert scores["Action"] == math.floor(10 * expected + 0.5) == 6
    assert set(scores) == {"Action", "Intention"}  # a specialist is not asked R or RA
    assert "reach@4" in thought and "1/4" in thought and "17.5 cm outside the goal tolerance" in thought
    # B = 0 and the grasp subgoal never reached; smoothness 1 and efficiency 0.60 are above their thresholds.
    assert flags == ["missed_goal", "missed_grasp"]


def test_success_flag_credits_every_subgoal_and_full_precision() -> None:
    spec = load_judge("grounded")
    scores, thought, flags = judge_grounded(make_input(LINE, success=True, obj=CUBE, goal=GOAL), spec, "specialist")
    curve = [0.0, 0.1 / 0.38 / 4, 0.2 / 0.38 / 4, 0.3 / 0.38 / 4, 1.0]
    assert scores["Intention"] == math.floor(10 * (0.75 + 0.25 * (sum(curve) + 5) / 10) + 0.5) == 9
    # Full progress also lifts path efficiency to min(1, 0.575 / 0.4) = 1; precision 1.
    assert scores["Action"] == 10
    assert "4/4" in thought and "simulator success" in thought
    assert flags == []


def test_reasoning_and_alignment_by_hand() -> None:
    spec = load_judge("grounded")
    inp = make_input(LINE, success=False, obj=CUBE, goal=GOAL, **TEXTS)
    scores, thought, flags = judge_grounded(inp, spec, "reasoning")
    # Object terms of the instruction: red, cube, green, goal; the plan names red and cube. Subgoals matched in
    # order: reach ("reach"), then grasp has no mention after it, lift ("lift"), goal none: 2 of 4.
    assert scores["Reasoning"] == 5  # 10 * (0.4 * 2/4 + 0.6 * 2/4)
    # Statements of steps 0-3 (the last step has no next state): "reach the cube" (TCP approaches: yes),
    # "lift it" (TCP height unchanged, not carrying: no), "release ..." (first word decides; gripper open: yes),
    # the last sentence of step 3's reasoning, "now: move closer" (approaches: yes) -> 3 of 4.
    assert scores["Alignment"] == 8  # 10 * 3/4 = 7.5, rounded half up
    assert "2/4 object terms (red, cube)" in thought and "3/4 steps" in thought and "'lift it' x1" in thought
    assert flags == ["missed_goal", "missed_grasp", "incomplete_plan"]  # RA's 3/4 is above misaligned_below (0.5)


def test_no_text_is_missing_evidence() -> None:
    scores, thought, flags = judge_grounded(
        make_input(LINE, success=True, obj=CUBE, goal=GOAL), load_judge("grounded"), "reasoning"
    )
    assert scores["Reasoning"] == 0 and scores["Alignment"] == 0
    assert "no reasoning text" in thought and "no step states an intention" in thought
    assert flags == ["no_reasoning"]  # nothing stated, so nothing to be misaligned with


def test_a_policy_that_stands_still_gets_no_credit_for_smoothness() -> None:
    still = [(0.0, 0.0, 0.1)] * 6
    scores, thought, flags = judge_grounded(
        make_input(still, success=False, obj=CUBE, goal=GOAL), load_judge("grounded"), "specialist"
    )
    assert scores["Action"] == 0 and scores["Intention"] == 0
    assert "smoothness 0.00" in thought
    assert flags == ["missed_goal", "missed_grasp", "inefficient_path"]  # no motion is not jerky motion


def test_statement_prefers_the_intention_then_the_last_sentence() -> None:
    assert statement("Grasp the cube", "Plan: reach. Now: lift") == "grasp the cube"
    assert statement(None, "Plan: reach it. Now: lift it.") == "now: lift it"
    assert statement(float("nan"), None) == ""


class ToyRandom(ToyExpert):
    """Seeded uniform actions; declares no reasoning (a specialist)."""

    name = "toy-random"
    reasons = False

    def reset(self, context) -> None:  # type: ignore[no-untyped-def]
        self.rng = np.random.default_rng(context.seed)

    def act(self, obs, instruction):  # type: ignore[no-untyped-def]
        step = super().act(obs, instruction)
        step.action = self.rng.uniform(-1, 1, 7)
        step.reasoning = step.intention = None
        return step


class ToyLiar(ToyRandom):
    """Random actions narrated like the expert: the same words, motion that does not follow them."""

    name = "toy-liar"
    reasons = True

    def act(self, obs, instruction):  # type: ignore[no-untyped-def]
        said = ToyExpert.act(self, obs, instruction)
        said.action = self.rng.uniform(-1, 1, 7)
        return said


ADAPTERS.register("toy-random", ToyRandom)
ADAPTERS.register("toy-liar", ToyLiar)


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("grounded")
    suite = small_suite(load_suite("toy"), ["ToyPick"], list(range(8)))
    out = {}
    for model in ("toy-expert", "toy-random", "toy-liar"):
        runner.run(model=model, suite=suite, out=base / model)
        judge_run(base / model, "grounded", jctx(concurrency=2))
        out[model] = base / model
    return out


def _means(run: Path) -> dict[str, float]:
    from vlascore.judging.judgement import JudgementFile

    jf = JudgementFile.model_validate_json(judgements_path(run, "grounded").read_text())
    keys = jf.judgements[0].scores
    return {k: float(np.mean([j.scores[k] for j in jf.judgements])) for k in keys}


def test_expert_beats_random_and_the_liar_on_toy_runs(toy_runs: dict[str, Path]) -> None:
    expert, rand, liar = (_means(toy_runs[m]) for m in ("toy-expert", "toy-random", "toy-liar"))
    assert set(rand) == {"Action", "Intention"} and set(expert) == set(liar) == {
        "Reasoning",
        "Action",
        "Intention",
        "Alignment",
    }
    for dim in ("Action", "Intention"):
        assert expert[dim] >= rand[dim] + 3, (dim, expert, rand)
    # The liar narrates like the expert, but its motion does not follow its words.
    assert expert["Alignment"] >= liar["Alignment"] + 3, (expert, liar)
    assert expert["Intention"] >= 9 and expert["Alignment"] >= 9


def test_injection_probe_does_not_move_the_grounded_judge(toy_runs: dict[str, Path]) -> None:
    from vlascore.judging.audit import audit_run

    report = audit_run(toy_runs["toy-expert"], "grounded", repeats=2, against=None, max_episodes=8)
    assert len(report.injection) == 3 * 4 and report.calls == 0 and report.failed == 0
    assert all(i.mean_shift == 0 and i.moved == 0 for i in report.injection)
    assert all(r.mean_abs_diff == 0 and r.exact_agreement == 1 for r in report.retest)


def test_editing_the_judge_changes_its_version_and_keeps_the_old_verdicts(
    toy_runs: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(toy_runs["toy-expert"], run)
    old = judge_run(run, "grounded")
    spec = yaml.safe_load(Path(load_judge("grounded").source).read_text())
    spec["params"]["weights"]["action"]["precision"] = 0.5
    edited = tmp_path / "grounded-edited.yaml"
    edited.write_text(yaml.safe_dump(spec))
    new = judge_run(run, str(edited))
    assert new.judge == "grounded" and new.judge_version != old.judge_version
    assert all(j.judge_version == new.judge_version for j in new.judgements)
    (archived,) = (run / "judgements" / "superseded").glob("grounded.*.json")
    assert old.judge_version in archived.read_text()


def test_a_task_the_judge_has_no_subgoals_for_is_a_clear_error(tmp_path: Path) -> None:
    toy = load_suite("toy")
    odd = toy.model_copy(update={"tasks": [toy.tasks[0].model_copy(update={"category": "Juggle", "seeds": [0]})]})
    runner.run(model="toy-expert", suite=odd, out=tmp_path / "run")
    with pytest.raises(JudgeError, match="no subgoal table .* 'Juggle'"):
        judge_run(tmp_path / "run", "grounded")
    res = CliRunner().invoke(app, ["judge", str(tmp_path / "run"), "--no-progress"])
    assert res.exit_code == 2 and "no subgoal table" in res.output
    assert not (tmp_path / "run" / "judgements").exists()


def test_cli_judge_list_shows_the_grounded_judge() -> None:
    res = CliRunner().invoke(app, ["judge", "list"])
    assert res.exit_code == 0 and "grounded" in res.output and load_judge("grounded").effective_version in res.output


def test_the_grounded_judge_refuses_simplerenv_tasks_it_cannot_judge_up_front() -> None:
    from vlascore.judging.grounded import GroundedJudge

    spec = load_judge("grounded")
    vm = load_suite("simpler-google-vm")
    with pytest.raises(JudgeError, match="names 1 object role.*-j vla-score"):
        GroundedJudge(spec, "reasoning", [vm.task("pick_coke_can_horizontal")])
    with pytest.raises(JudgeError, match="category 'Move'"):
        GroundedJudge(spec, "reasoning", [vm.task("move_near")])
    widowx = load_suite("simpler-widowx")
    GroundedJudge(spec, "reasoning", list(widowx.tasks))  # object and target: judged with tabletop thresholds
