"""The scripted expert's LIBERO plans and controller on synthetic states (no simulator): which tasks it plans, how it
sizes a grasp from a bounding box, and that its phases follow the state in LIBERO's action convention."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vlascore.adapters.base import EpisodeContext
from vlascore.adapters.libero_expert import CATEGORIES, grasp, hand_yaw, stages_for
from vlascore.adapters.scripted import ScriptedAdapter
from vlascore.backends.base import Observation, PrivilegedState
from vlascore.suites import load_suite

DOWN = np.array([0.0, 1.0, 0.0, 0.0])  # LIBERO's hand pointing down, yaw 0 (w x y z)
UNPLANNED = {"open_middle_drawer", "bowl_in_top_drawer", "turn_on_stove"}


def test_every_libero_task_has_a_plan_or_a_refusal_that_names_why() -> None:
    for task in load_suite("libero").tasks:
        if task.id in UNPLANNED:
            with pytest.raises(ValueError, match=f"no scripted expert for LIBERO task '{task.id}'.*it plans"):
                stages_for(task)
        else:
            assert task.category in CATEGORIES and stages_for(task)


def test_a_narrow_object_is_held_across_its_narrow_side_and_a_bowl_by_its_rim() -> None:
    box = np.array([0.0, 0.0, 0.0, 0.08, 0.04, 0.02])  # 8 x 4 cm, 2 cm tall (butter)
    offset, yaw = grasp(box, np.array([0.0, 0.5, 0.3]), current_yaw=0.0)
    assert np.allclose(offset[:2], 0) and offset[2] == pytest.approx(0.0)  # over the centre, mid-height
    assert yaw == pytest.approx(0.0)  # fingers along world y: across the 4 cm side
    offset, yaw = grasp(box[[1, 0, 2, 4, 3, 5]], np.array([0.0, 0.5, 0.3]), current_yaw=0.1)
    assert abs(abs(yaw) - math.pi / 2) < 1e-9  # the same box turned: fingers along x
    bowl = np.array([-0.05, -0.05, 0.9, 0.05, 0.05, 0.95])
    offset, yaw = grasp(bowl, np.array([-0.3, 0.0, 1.2]), current_yaw=0.0)
    assert offset[0] == pytest.approx(-0.038) and offset[1] == pytest.approx(0.0)  # the rim facing the hand
    assert offset[2] == pytest.approx(0.025 - 0.015)  # 1.5 cm below the rim
    assert abs(abs(yaw) - math.pi / 2) < 1e-9  # fingers radial: across the wall


def _obs(
    ee: list[float], gripper: float, objects: dict[str, list[float]], boxes: dict[str, list[float]]
) -> Observation:
    priv = PrivilegedState(
        ee_pose=np.concatenate([ee, DOWN]),
        gripper=gripper,
        objects={k: np.array([*v, 1, 0, 0, 0]) for k, v in objects.items()},
        boxes={k: np.array(v) for k, v in boxes.items()},
    )
    return Observation(image=None, proprio={}, privileged=priv)


def test_the_expert_picks_and_places_in_liberos_convention() -> None:
    task = load_suite("libero-object").task("butter")
    adapter = ScriptedAdapter()
    adapter.reset(EpisodeContext(task=task, seed=0, episode_id="butter-0"))
    assert adapter.action_space == task.action_space and adapter.info()["speaks_task_convention"] is True
    objects = {"butter": [0.1, -0.2, 0.009], "basket": [0.0, 0.25, 0.067]}
    boxes = {"butter": [0.062, -0.22, 0.0, 0.138, -0.18, 0.018], "basket": [-0.06, 0.19, 0.0, 0.06, 0.31, 0.137]}
    far = adapter.act(_obs([-0.15, 0.0, 0.25], 1.0, objects, boxes), task.instruction)
    assert far.intention == "reach above the butter" and far.action[-1] == -1.0  # LIBERO opens at -1
    assert far.action[0] > 0 and far.action[1] < 0  # toward the butter
    assert (far.reasoning or "").startswith(f"Plan: to {task.instruction}: reach above the butter")
    above = adapter.act(_obs([0.1, -0.2, 0.078], 1.0, objects, boxes), task.instruction)  # 6 cm over its top
    assert above.intention == "descend to the butter" and above.action[2] < 0 and above.action[-1] == -1.0
    grip = [0.1, -0.2, 0.009]  # at the grasp point, mid-height: the gripper closes (+1)
    step = adapter.act(_obs(grip, 1.0, objects, boxes), task.instruction)
    assert step.intention == "grasp the butter" and step.action[-1] == 1.0
    for _ in range(12):
        step = adapter.act(_obs(grip, 0.5, objects, boxes), task.instruction)
    assert step.intention == "lift the butter" and step.action[2] > 0 and step.action[-1] == 1.0
    assert np.all(np.abs(step.action) <= 1.0)


def test_hand_yaw_reads_liberos_downward_hand() -> None:
    assert hand_yaw(DOWN) == pytest.approx(0.0)
    turned = np.array([0.0, math.cos(0.3), math.sin(0.3), 0.0])  # down, then 0.6 rad about z
    assert hand_yaw(turned) == pytest.approx(0.6)
