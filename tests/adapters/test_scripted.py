"""The scripted expert's controller logic on synthetic states (no simulator needed)."""

from __future__ import annotations

import numpy as np
import pytest

from vlascore.adapters.base import EpisodeContext
from vlascore.adapters.scripted import PLANS, ScriptedAdapter, wrap_quarter, yaw_of
from vlascore.backends.base import Observation, PrivilegedState
from vlascore.suites import load_suite

DOWN = np.array([0.0, 1.0, 0.0, 0.0])  # TCP pointing down, yaw 0
IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def _obs(ee: list[float], gripper: float = 1.0, **objects: np.ndarray) -> Observation:
    priv = PrivilegedState(ee_pose=np.concatenate([ee, DOWN]), gripper=gripper, objects=objects)
    return Observation(image=None, proprio={}, privileged=priv)


def _adapter(task_id: str) -> ScriptedAdapter:
    task = load_suite("tabletop").task(task_id)
    adapter = ScriptedAdapter()
    adapter.reset(EpisodeContext(task=task, seed=0, episode_id=f"{task_id}-0"))
    return adapter


def test_every_tabletop_and_toy_task_has_a_plan() -> None:
    tasks = [*load_suite("tabletop").tasks, *load_suite("toy").tasks]
    assert {t.id for t in tasks} <= set(PLANS)


def test_unknown_task_is_refused_with_the_supported_list() -> None:
    task = load_suite("toy").task("ToyPick").model_copy(update={"id": "OpenDrawer"})
    with pytest.raises(ValueError, match="no scripted expert for task 'OpenDrawer'; supported: "):
        ScriptedAdapter().reset(EpisodeContext(task=task, seed=0, episode_id="OpenDrawer-0"))


def test_pick_cube_phases_advance_with_the_state() -> None:
    adapter = _adapter("PickCube")
    cube = np.concatenate([[0.05, 0.0, 0.02], _yaw_quat(0.0)])
    goal = np.concatenate([[0.0, 0.1, 0.25], IDENTITY])
    far = adapter.act(_obs([0.0, 0.0, 0.2], cube=cube, goal=goal), "pick")
    assert far.intention == "reach above the cube"
    assert far.action[0] > 0 and far.action[6] == 1.0  # moves toward the cube, gripper open
    assert "Plan: reach above the red cube" in (far.reasoning or "")
    above = adapter.act(_obs([0.05, 0.0, 0.10], cube=cube, goal=goal), "pick")
    assert above.intention == "descend to the cube" and above.action[2] < 0
    at = adapter.act(_obs([0.05, 0.0, 0.02], cube=cube, goal=goal), "pick")
    assert at.intention == "grasp the cube" and at.action[6] == -1.0
    for _ in range(6):
        step = adapter.act(_obs([0.05, 0.0, 0.02], gripper=0.4, cube=cube, goal=goal), "pick")
    assert step.intention == "lift to the goal" and step.action[2] > 0 and step.action[6] == -1.0


def test_gripper_turns_toward_the_cube_yaw_within_a_quarter_turn() -> None:
    adapter = _adapter("PickCube")
    goal = np.concatenate([[0.0, 0.1, 0.25], IDENTITY])
    for cube_yaw, sign in ((0.3, -1), (-0.3, 1), (np.pi / 2 + 0.3, -1)):  # +z command lowers the TCP yaw
        cube = np.concatenate([[0.05, 0.0, 0.02], _yaw_quat(cube_yaw)])
        step = adapter.act(_obs([0.0, 0.0, 0.2], cube=cube, goal=goal), "pick")
        assert np.sign(step.action[5]) == sign


@pytest.mark.parametrize("task_id", [t.id for t in load_suite("tabletop").tasks])
def test_actions_stay_in_the_normalised_box(task_id: str) -> None:
    adapter = _adapter(task_id)
    rng = np.random.default_rng(0)
    roles = load_suite("tabletop").task(task_id).objects
    for _ in range(50):
        objects = {r: np.concatenate([rng.uniform(-1, 1, 3), _yaw_quat(rng.uniform(-3, 3))]) for r in roles}
        step = adapter.act(_obs(list(rng.uniform(-1, 1, 3)), **objects), "x")
        assert step.action.shape == (7,) and np.all(np.abs(step.action) <= 1.0)
        assert step.intention and step.reasoning


def test_push_direction_points_from_the_cube_to_the_goal() -> None:
    adapter = _adapter("PullCube")  # the goal is toward the robot (-x): the gripper goes to the far (+x) side
    cube = np.concatenate([[0.0, 0.0, 0.02], IDENTITY])
    goal = np.concatenate([[-0.2, 0.0, 0.0], IDENTITY])
    step = adapter.act(_obs([0.0, 0.0, 0.2], cube=cube, goal=goal), "pull")
    assert step.intention == "move behind the cube" and step.action[0] > 0


def test_yaw_helpers() -> None:
    assert yaw_of(_yaw_quat(0.7)) == pytest.approx(0.7)
    assert wrap_quarter(np.pi / 2 + 0.1) == pytest.approx(0.1)
    assert wrap_quarter(-np.pi / 4 - 0.1) == pytest.approx(np.pi / 4 - 0.1)
