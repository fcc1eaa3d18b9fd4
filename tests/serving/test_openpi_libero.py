"""`-M protocol=openpi -M preset=libero`: the observation map openpi's LIBERO example sends (agentview and wrist images,
the 8-number state eef_pos + axis-angle + finger joints, the prompt) and LIBERO's action convention, against the fake
openpi server of test_openpi.py; chunks run whole, as OpenVLA-OFT's LIBERO evaluation runs its 8-action chunks.
The simulator is a stand-in that produces LIBERO-shaped observations (the real scenes run in tests/backends)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_openpi import FakeOpenpiServer, chunk

import vlascore
from vlascore import runner
from vlascore.backends import BACKENDS, Backend, Observation, PrivilegedState, StepResult
from vlascore.serving.openpi import OpenpiOptions
from vlascore.suites import Suite, TaskSpec, load_suite

WRIST = "robot0_eye_in_hand"


class LiberoShaped(Backend):
    """Observations with the libero backend's keys; the state moves with each action so calls differ."""

    name = "libero-shaped"

    def make(self, task: TaskSpec) -> None:
        self.task = task

    def _obs(self) -> Observation:
        pos = np.array([0.1, 0.2, 1.0]) + 0.001 * self.t
        fingers = np.array([0.04, -0.04])
        image = np.full((16, 16, 3), self.t % 255, np.uint8)
        return Observation(
            image=image,
            proprio={
                "qpos": np.zeros(9),
                "ee_pose": np.array([*pos, 0, 1, 0, 0]),
                "eef_pos": pos,
                "eef_axis_angle": np.array([np.pi, 0.0, 0.0]),
                "gripper_qpos": fingers,
            },
            privileged=PrivilegedState(ee_pose=np.array([*pos, 0, 1, 0, 0]), gripper=1.0),
            extra_images={WRIST: 255 - image},
        )

    def reset(self, seed: int) -> Observation:
        self.t = 0
        return self._obs()

    def step(self, action: np.ndarray) -> StepResult:
        self.t += 1
        return StepResult(self._obs(), 0.0, False, False)


BACKENDS.register("libero-shaped", LiberoShaped)


@pytest.fixture
def suite() -> Suite:
    real = load_suite("libero-object")
    task = real.tasks[0].model_copy(update={"seeds": [0, 1], "max_steps": 16})
    return real.model_copy(update={"backend": "libero-shaped", "tasks": [task], "columns": []})


def test_the_libero_preset_sends_openpis_libero_keys_and_runs_whole_chunks(tmp_path: Path, suite: Suite) -> None:
    with FakeOpenpiServer(length=8) as fake:
        args = {"url": fake.url, "protocol": "openpi", "preset": "libero", "chunk_size": 8}
        runner.run(model="remote", model_args=args, suite=suite, out=tmp_path / "r")
    run = vlascore.load_run(tmp_path / "r")
    assert (run.episodes["status"] == "ok").all() and list(run.episodes["num_steps"]) == [16, 16]
    assert len(fake.observations) == 4  # 16 steps / 8 actions per call, per episode: no replanning inside a chunk
    expected = [chunk(call, 8)[i] for call in range(4) for i in range(8)]
    np.testing.assert_allclose(np.array(run.steps["action"].tolist()), np.array(expected), atol=1e-6)
    first = fake.observations[0]
    assert set(first) == {"observation/image", "observation/wrist_image", "observation/state", "prompt"}
    assert first["observation/image"].shape == (16, 16, 3) and first["observation/image"].dtype == np.uint8
    assert (first["observation/wrist_image"] == 255).all() and (first["observation/image"] == 0).all()
    np.testing.assert_allclose(first["observation/state"], [0.1, 0.2, 1.0, np.pi, 0, 0, 0.04, -0.04])
    assert first["prompt"] == suite.tasks[0].instruction
    info = run.run.adapter_info
    assert info["action_space"]["rotation"] == "axis_angle" and info["action_space"]["gripper_open"] == -1
    assert "conversions" not in info and run.run.adapter_config["preset"] == "libero"


def test_explicit_options_override_the_preset_and_a_missing_camera_says_how_to_fix_it() -> None:
    opts = OpenpiOptions.parse({"preset": "libero", "state": "eef_pos", "chunk_size": 10, "execute": 5})
    assert opts.state == ("eef_pos",) and opts.camera_keys == (f"{WRIST}:observation/wrist_image",)
    assert (opts.chunk_size, opts.execute, opts.action_space.rotation) == (10, 5, "axis_angle")
    bare = Observation(image=np.zeros((4, 4, 3), np.uint8), proprio={"eef_pos": np.zeros(3)}, privileged=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not render.*drop -B wrist=false"):
        opts.observation(bare, "x")
    with pytest.raises(ValueError, match="preset='libro' is not one of libero"):
        OpenpiOptions.parse({"preset": "libro"})
    with pytest.raises(ValueError, match="camera:key pairs"):
        OpenpiOptions.parse({"camera_keys": "wrist"})
