"""LIBERO fine-tunes' conventions on tiny offline checkpoints: OpenVLA's LIBERO fine-tunes name their statistics
libero_<suite>_no_noops, predict LIBERO's own controller commands (axis-angle, in [-1, 1]) and a 0/1 gripper
openness that OpenVLA's LIBERO evaluation binarises and flips to LIBERO's -1 open / +1 closed; nothing is converted
on a LIBERO task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_openvla import EMPTY, centre, obs, openvla_tokenizer, tiny_openvla, unnormalise

from vlascore.adapters import adapt_to_tasks
from vlascore.adapters.openvla import OpenVLAAdapter
from vlascore.adapters.token_policy import GripperPost, robot_for
from vlascore.suites import load_suite

pytest.importorskip("transformers")

# statistics shaped like those of openvla/openvla-7b-finetuned-libero-spatial: LIBERO's actions are the OSC_POSE
# commands of its demonstrations, inside [-1, 1]; the gripper entry (0 closed .. 1 open) is not normalised
LIBERO = {
    "q01": [-0.74, -0.66, -0.94, -0.11, -0.16, -0.19, 0.0],
    "q99": [0.93, 0.86, 0.94, 0.13, 0.17, 0.29, 1.0],
    "mask": [True] * 6 + [False],
}
TOKENIZER = openvla_tokenizer()
VOCAB = len(TOKENIZER) + 256


def planted(tmp_path: Path, bins: list[int]) -> Path:
    stats = {"libero_spatial_no_noops": {"action": LIBERO}}
    return tiny_openvla(tmp_path / "ckpt", after=EMPTY, reply=[VOCAB - 1 - b for b in bins], norm_stats=stats)


@pytest.mark.parametrize(("gripper_bin", "command"), [(3, 1.0), (250, -1.0)])
def test_an_openvla_libero_fine_tune_speaks_liberos_convention(
    tmp_path: Path, gripper_bin: int, command: float
) -> None:
    bins = [10, 50, 100, 128, 200, 254, gripper_bin]
    # -M unnorm_key=libero_spatial finds libero_spatial_no_noops, as OpenVLA's LIBERO script does
    a = OpenVLAAdapter(path=str(planted(tmp_path, bins)), device="cpu", unnorm_key="libero_spatial")
    assert (a.unnorm_key, a.robot) == ("libero_spatial_no_noops", "libero")
    step = a.act(obs(), "pick up the black bowl next to the plate and place it on the plate")
    np.testing.assert_allclose(step.action[:6], unnormalise(LIBERO, [centre(b) for b in bins])[:6], atol=1e-12)
    assert step.action[6] == command  # openness > 0.5 -> -1 (LIBERO opens at -1), else +1 (closes)
    task = load_suite("libero-spatial").tasks[0]
    space = a.action_space
    assert (space.mode, space.rotation, space.normalized, space.gripper_open) == ("ee_delta", "axis_angle", True, -1)
    wrapped = adapt_to_tasks(a, [task])  # only the binary gripper differs from the task's, which takes any value
    assert wrapped.act(obs(), "x").action.tolist() == step.action.tolist()
    assert not wrapped.info().get("conversions", {}).get(task.id, {}).get("steps")


def test_liberos_gripper_rule_and_robot() -> None:
    gripper = GripperPost("libero", 1)
    assert [gripper(v) for v in (0.0, 0.4, 0.6, 1.0)] == [1.0, 1.0, -1.0, -1.0]
    assert (gripper.gripper_open, gripper.gripper_binary, gripper.gripper_mode) == (-1, True, "absolute")
    for key in ("libero_spatial_no_noops", "libero_object", "libero_10_no_noops", "LIBERO_goal"):
        assert robot_for(key) == "libero"
    assert robot_for("bridge_orig") == "widowx"
