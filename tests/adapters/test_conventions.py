"""Action-convention conversion: rotation maths against independent references, and planned conversions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import ToyExpert

import vlascore
from vlascore import runner
from vlascore.adapters import ADAPTERS, ConventionError, PolicyStep
from vlascore.adapters.conventions import convert_rotation, from_matrix, plan_conversion, to_matrix
from vlascore.backends import Observation
from vlascore.suites import ActionSpace, Suite, TaskSpec

RNG = np.random.default_rng(7)
ANGLES = RNG.uniform(-1.2, 1.2, size=(20, 3))  # away from gimbal lock, so Euler angles are unique
TABLETOP = ActionSpace()  # pd_ee_delta_pose: normalised, euler_xyz, open = +1


def task(space: ActionSpace = TABLETOP, control_mode: str = "pd_ee_delta_pose") -> TaskSpec:
    return TaskSpec(
        id="T", env_id="T-v1", instruction="do it", seeds=[0], control_mode=control_mode, action_space=space
    )


def test_euler_xyz_is_maniskills_controller_convention() -> None:
    torch = pytest.importorskip("torch")
    rc = pytest.importorskip("mani_skill.utils.geometry.rotation_conversions")
    ours = to_matrix(ANGLES, "euler_xyz")
    theirs = rc.euler_angles_to_matrix(torch.tensor(ANGLES), "XYZ").numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    np.testing.assert_allclose(from_matrix(ours, "euler_xyz"), ANGLES, atol=1e-9)


def test_rpy_axis_angle_and_quaternion_match_transforms3d() -> None:
    t3d = pytest.importorskip("transforms3d")
    for r, p, y in ANGLES:
        ref = t3d.euler.euler2mat(r, p, y, "sxyz")
        np.testing.assert_allclose(to_matrix(np.array([r, p, y]), "euler_rpy"), ref, atol=1e-12)
        quat = t3d.quaternions.mat2quat(ref)
        quat = quat if quat[0] >= 0 else -quat
        np.testing.assert_allclose(from_matrix(ref, "quaternion"), quat, atol=1e-9)
        axis, angle = t3d.axangles.mat2axangle(ref)
        np.testing.assert_allclose(to_matrix(axis * angle, "axis_angle"), ref, atol=1e-9)
    np.testing.assert_allclose(from_matrix(to_matrix(ANGLES, "euler_rpy"), "euler_rpy"), ANGLES, atol=1e-9)


@pytest.mark.parametrize("kind", ["euler_xyz", "euler_rpy", "axis_angle", "quaternion", "rot6d"])
def test_every_representation_round_trips(kind: str) -> None:
    mats = to_matrix(ANGLES, "euler_rpy")
    back = to_matrix(from_matrix(mats, kind), kind)
    np.testing.assert_allclose(back, mats, atol=1e-9)
    assert np.allclose(convert_rotation(from_matrix(mats, kind), kind, "euler_rpy"), ANGLES, atol=1e-9)


def test_same_convention_needs_no_conversion() -> None:
    assert plan_conversion(TABLETOP, task()) is None


def test_metric_axis_angle_with_closing_positive_gripper_to_tabletop() -> None:
    src = ActionSpace(rotation="axis_angle", normalized=False, gripper_open=-1)
    conv = plan_conversion(src, task())
    assert conv is not None
    out = conv(np.array([[0.05, -0.02, 0.0, 0.0, 0.0, 0.03, 1.0]]))
    # 0.1 m per unit; ManiSkill's controller turns by -0.1 rad per unit; +1 closed -> -1 (open is +1)
    np.testing.assert_allclose(out, [[0.5, -0.2, 0.0, 0.0, 0.0, -0.3, -1.0]], atol=1e-12)
    assert any("axis_angle -> euler_xyz" in s for s in conv.steps) and any("sign" in s for s in conv.steps)


def test_binarising_gripper() -> None:
    conv = plan_conversion(ActionSpace(), task(ActionSpace(gripper_binary=True)))
    assert conv is not None
    out = conv(np.array([[0, 0, 0, 0, 0, 0, 0.3], [0, 0, 0, 0, 0, 0, -0.2]]))
    assert out[:, -1].tolist() == [1.0, -1.0]


def test_absolute_targets_become_chained_deltas() -> None:
    src = ActionSpace(mode="ee_absolute", rotation="quaternion", dim=8, normalized=False)
    conv = plan_conversion(src, task())
    assert conv is not None and conv.needs_pose
    pose = np.array([0.1, 0.0, 0.2, 1.0, 0.0, 0.0, 0.0])
    yaw = from_matrix(to_matrix(np.array([0.0, 0.0, 0.05]), "euler_xyz"), "quaternion")
    targets = np.array([[0.11, 0.0, 0.2, *pose[3:], 1.0], [0.13, 0.01, 0.2, *yaw, 1.0]])
    out = conv(targets, pose)
    np.testing.assert_allclose(out[0], [0.1, 0, 0, 0, 0, 0, 1], atol=1e-9)  # 1 cm / 0.1 m per unit
    np.testing.assert_allclose(out[1], [0.2, 0.1, 0, 0, 0, -0.5, 1], atol=1e-9)  # relative to the first target
    with pytest.raises(ConventionError, match="end-effector pose"):
        conv(targets)


def test_delta_to_absolute_and_back_is_identity() -> None:
    pose = np.array([0.0, 0.1, 0.3, *from_matrix(to_matrix(np.array([0.3, -0.2, 0.1]), "euler_xyz"), "quaternion")])
    to_abs = plan_conversion(ActionSpace(normalized=False), task(ActionSpace(mode="ee_absolute", normalized=False)))
    back = plan_conversion(ActionSpace(mode="ee_absolute", normalized=False), task(ActionSpace(normalized=False)))
    assert to_abs is not None and back is not None
    deltas = np.array([[0.01, 0.0, -0.02, 0.02, 0.0, -0.03, 1.0], [0.0, 0.01, 0.0, 0.0, 0.04, 0.0, -1.0]])
    np.testing.assert_allclose(back(to_abs(deltas, pose), pose), deltas, atol=1e-9)


@pytest.mark.parametrize(
    ("src", "tsk", "why"),
    [
        (ActionSpace(mode="joint_delta", dim=8), task(), "kinematics"),
        (ActionSpace(rotation="quaternion", dim=7), task(), "3 position \\+ 4 rotation \\+ 1 gripper = 8"),
        (ActionSpace(normalized=False), task(control_mode="pd_ee_target_delta_pose"), "scale of control mode"),
        (ActionSpace(rotation="quaternion", dim=8), task(), "normalised quaternion rotation has no per-axis scale"),
    ],
)
def test_unconvertible_conventions_say_why(src: ActionSpace, tsk: TaskSpec, why: str) -> None:
    with pytest.raises(ConventionError, match=why):
        plan_conversion(src, tsk)


class MetricToyExpert(ToyExpert):
    """ToyExpert speaking metres, axis-angle and a closing-positive gripper: the runner must convert back."""

    name = "metric-toy-expert"
    action_space = ActionSpace(rotation="axis_angle", normalized=False, gripper_open=-1)

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        step = super().act(obs, instruction)
        a = np.asarray(step.action, dtype=np.float64)
        return PolicyStep(np.array([*(a[:3] * 0.05), 0, 0, 0, -a[6]]), step.reasoning, step.intention)


def test_runner_converts_and_records_the_conversion(tmp_path: Path, toy_suite: Suite) -> None:
    ADAPTERS.register("metric-toy-expert", MetricToyExpert)
    runner.run(model="toy-expert", suite=toy_suite, out=tmp_path / "native", episodes=3)
    runner.run(model="metric-toy-expert", suite=toy_suite, out=tmp_path / "metric", episodes=3)
    native, metric = vlascore.load_run(tmp_path / "native"), vlascore.load_run(tmp_path / "metric")
    assert metric.episodes["success"].all()
    np.testing.assert_allclose(np.stack(metric.steps["action"]), np.stack(native.steps["action"]), atol=1e-12)
    conv = metric.run.adapter_info["conversions"]["ToyPick"]
    assert conv["from"]["rotation"] == "axis_angle" and any("sign" in s for s in conv["steps"])
    assert "conversions" not in native.run.adapter_info


def test_simplerenv_google_robot_takes_axis_angle_and_a_relative_gripper() -> None:
    from vlascore.adapters.token_policy import GripperPost
    from vlascore.suites import ActionSpace, load_suite

    task = load_suite("simpler-google-vm").task("pick_coke_can_horizontal")
    google = GripperPost("google", 15)
    src = ActionSpace(
        mode="ee_delta",
        rotation="euler_rpy",
        dim=7,
        normalized=False,
        gripper_open=google.gripper_open,
        gripper_binary=google.gripper_binary,
        gripper=google.gripper_mode,
    )
    conv = plan_conversion(src, task)
    assert conv is not None and conv.steps == ["rotation euler_rpy -> axis_angle"]
    rpy = np.array([[0.01, -0.02, 0.3, 0.0, 0.0, 0.05, 1.0]])
    out = conv(rpy)
    assert np.allclose(out[0, :3], rpy[0, :3]) and out[0, 6] == 1.0  # metres and the gripper change untouched
    assert np.allclose(convert_rotation(out[:, 3:6], "axis_angle", "euler_rpy"), rpy[:, 3:6])
    absolute = src.model_copy(update={"gripper": "absolute", "gripper_open": 1})
    with pytest.raises(ConventionError, match="relative commands and the adapter emits absolute.*-M robot=google"):
        plan_conversion(absolute, task)
    widowx = load_suite("simpler-bridge").task("put_carrot_on_plate")  # ManiSkill 3: intrinsic XYZ Euler angles
    bridge = ActionSpace(
        mode="ee_delta", rotation="euler_rpy", dim=7, normalized=False, gripper_open=1, gripper_binary=True
    )
    conv = plan_conversion(bridge, widowx)
    assert conv is not None and conv.steps == ["rotation euler_rpy -> euler_xyz"]
