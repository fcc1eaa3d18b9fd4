"""The ManiSkill 3 Bridge digital twins (simpler-bridge) through the real ManiSkill backend.

Their scenes are downloaded asset packs that CI and this machine cannot fetch, so the backend's code path runs
against a fake twin (gymnasium.make patched) that checks what SimplerEnv's protocol needs: the episode_id reset
option per grid cell, the twin's own camera size and instruction, world-frame poses of the WidowX end-effector
link and of the objects, success at the final step. The real twins run in the last test when their assets exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vlascore import runner
from vlascore.backends import BackendError
from vlascore.backends.assets import ASSET_PACKS, missing_assets, missing_packs
from vlascore.extras import available
from vlascore.scoring import score_run
from vlascore.store import RunStore, load_run
from vlascore.suites import load_suite

pytestmark = pytest.mark.skipif(not available("mani_skill"), reason="needs ManiSkill 3: pip install 'vlascore[sim]'")


class Pose:
    def __init__(self, xyz: list[float]) -> None:
        self.raw_pose = np.array([[*xyz, 1.0, 0.0, 0.0, 0.0]])


class Thing:
    def __init__(self, xyz: list[float]) -> None:
        self.pose = Pose(xyz)


class Objects(dict):
    """The twin's `objs` by name; any other task's objects sit at the origin."""

    def __missing__(self, name: str) -> Thing:
        return Thing([0.0, 0.0, 0.0])


class Robot:
    links_map = {"ee_gripper_link": Thing([0.1, 0.2, 0.3])}

    def get_qpos(self) -> np.ndarray:
        return np.full((1, 8), 0.02)

    def get_qvel(self) -> np.ndarray:
        return np.zeros((1, 8))

    def get_qlimits(self) -> np.ndarray:
        return np.tile([0.015, 0.037], (1, 8, 1))


class Agent:  # the WidowX agent has no `tcp`
    uid = "widowx250s_bridgedataset_flat_table"
    robot = Robot()


class FakeTwin:
    """Succeeds at step 3 only: `final` success differs from `ever` success."""

    built: list[tuple[str, dict[str, Any]]] = []

    def __init__(self, env_id: str, **kwargs: Any) -> None:
        FakeTwin.built.append((env_id, kwargs))
        self.unwrapped = self
        self.agent = Agent()
        self.objs = Objects({"bridge_carrot_generated_modified": Thing([-0.1, 0.0, 0.9])})
        self.resets: list[tuple[int, dict[str, Any]]] = []
        self.actions: list[np.ndarray] = []

    def get_language_instruction(self) -> list[str]:
        return ["put carrot on plate"]

    def _obs(self) -> dict[str, Any]:
        return {"sensor_data": {"3rd_view_camera": {"rgb": np.full((1, 480, 640, 3), 7, dtype=np.uint8)}}}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        self.resets.append((seed, dict(options or {})))
        self.t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        self.actions.append(np.asarray(action))
        self.t += 1
        return (
            self._obs(),
            0.0,
            self.t == 3,
            False,
            {"success": np.array([self.t == 3]), "is_src_obj_grasped": np.array([self.t >= 2])},
        )

    def close(self) -> None:
        pass


@pytest.fixture
def fake_twins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list:
    import gymnasium

    for pack in ASSET_PACKS.values():  # the backend checks for the packs before building
        (tmp_path / "data" / pack).mkdir(parents=True)
        (tmp_path / "data" / pack / "placeholder").write_text("x")
    monkeypatch.setenv("MS_ASSET_DIR", str(tmp_path))
    FakeTwin.built = []
    monkeypatch.setattr(gymnasium, "make", lambda env_id, **kw: FakeTwin(env_id, **kw))
    return FakeTwin.built


def test_a_bridge_run_follows_the_twin_protocol(fake_twins: list, tmp_path: Path) -> None:
    suite = load_suite("simpler-bridge")
    out = tmp_path / "run"
    runner.run(model="random", suite=suite, out=out, tasks=["put_carrot_on_plate"], episodes=3)
    ((env_id, kwargs),) = fake_twins  # one env for the task's 3 episodes
    assert env_id == "PutCarrotOnPlateInScene-v1"
    assert kwargs["obs_mode"] == "rgb+segmentation" and "sensor_configs" not in kwargs  # the twin's 640x480
    assert kwargs["sim_config"] == {"sim_freq": 500, "control_freq": 5} and kwargs["max_episode_steps"] == 60
    assert all(type(v) is int for v in kwargs["sim_config"].values())  # ManiSkill's SimConfig refuses 5.0
    assert kwargs["control_mode"] == "arm_pd_ee_target_delta_pose_align2_gripper_pd_joint_pos"
    run = load_run(out)
    eps = run.episodes
    assert list(eps["episode_id"]) == ["put_carrot_on_plate-0", "put_carrot_on_plate-1", "put_carrot_on_plate-2"]
    # success_mode final: the episodes run the full 60 steps and the flag at step 3 does not count
    assert (eps["num_steps"] == 60).all() and not eps["success"].any() and (eps["status"] == "ok").all()
    assert set(eps["instruction"]) == {"put carrot on plate"}
    steps = run.steps
    first = steps[steps["episode_id"] == "put_carrot_on_plate-0"].iloc[0]
    assert list(first["ee_pose"])[:3] == [0.1, 0.2, 0.3]
    assert list(first["privileged"]["carrot"])[:3] == [-0.1, 0.0, 0.9]
    frames, _ = run.frames("put_carrot_on_plate-0")
    assert frames.shape[1:] == (480, 640, 3)
    # random speaks the task's metric convention: position deltas within 2 cm, gripper within [-1, 1]
    acts = np.stack(steps["action"].to_list())
    assert np.abs(acts[:, :3]).max() <= 0.02 and np.abs(acts[:, 3:6]).max() <= 0.1 and np.abs(acts[:, 6]).max() <= 1
    results = score_run(run)
    assert [c.key for c in results.columns][:2] == ["bridge_ms3/put_spoon_on_towel", "bridge_ms3/put_carrot_on_plate"]
    assert next(c for c in results.columns if c.id == "put_carrot_on_plate").success_rate == 0.0


def test_grid_cells_reach_the_twin_as_episode_ids_and_ever_mode_stops_at_success(
    fake_twins: list, tmp_path: Path
) -> None:
    from vlascore.backends.maniskill import ManiSkillBackend

    suite = load_suite("simpler-bridge").with_success_mode("ever")
    backend = ManiSkillBackend()
    task = suite.task("stack_block")
    backend.make(task)
    for i in (0, 5, 23):
        obs = backend.reset(i)
        assert obs.instruction == "put carrot on plate" and obs.image is not None
    env = backend._env
    # each cell's episode id, in a scene rebuilt per episode (the backend's default: no state carried between them)
    assert [r for r in env.resets] == [(i, {"episode_id": i, "reconfigure": True}) for i in (0, 5, 23)]
    backend.close()
    out = tmp_path / "run"
    runner.run(model="random", suite=suite, out=out, tasks=["put_spoon_on_towel"], episodes=2)
    eps = load_run(out).episodes
    assert (eps["num_steps"] == 3).all() and eps["success"].all() and set(eps["termination"]) == {"success"}


def test_missing_assets_stop_the_run_before_anything_is_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MS_ASSET_DIR", str(tmp_path / "empty"))
    (tmp_path / "empty" / "data" / "tasks" / "bridge_v2_real2sim_dataset").mkdir(parents=True)  # a failed download
    assert missing_packs("PutSpoonOnTableClothInScene-v1") == ["bridge_v2_real2sim", "widowx250s"]
    assert missing_assets("PickCube-v1") == ""
    out = tmp_path / "run"
    with pytest.raises(BackendError) as info:
        runner.run(model="random", suite=load_suite("simpler-bridge"), out=out, episodes=1)
    text = str(info.value)
    assert "python -m mani_skill.utils.download_asset bridge_v2_real2sim -y" in text
    assert "python -m mani_skill.utils.download_asset widowx250s -y" in text and "MS_ASSET_DIR" in text
    assert not RunStore(out).exists  # nothing recorded: fix the assets and run the same command


REAL_MISSING = missing_assets("PutCarrotOnPlateInScene-v1")


@pytest.mark.slow
@pytest.mark.skipif(bool(REAL_MISSING), reason=f"the real Bridge twins are not installed: {REAL_MISSING}")
def test_real_bridge_twin_runs_an_episode(tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner.run(model="random", suite=load_suite("simpler-bridge"), out=out, tasks=["put_carrot_on_plate"], episodes=1)
    ep = load_run(out).episodes.iloc[0]
    assert ep["status"] == "ok" and ep["num_steps"] == 60, ep["failure_reason"]


def test_tasks_that_differ_only_in_task_settings_get_their_own_env(fake_twins: list, tmp_path: Path) -> None:
    bridge = load_suite("simpler-bridge")
    carrot = bridge.task("put_carrot_on_plate")
    short = carrot.model_copy(update={"id": "carrot_short", "max_steps": 10})
    suite = bridge.model_copy(update={"tasks": [carrot, short], "columns": [], "averages": []})
    runner.run(model="random", suite=suite, out=tmp_path / "run", episodes=2)
    assert [kw["max_episode_steps"] for _, kw in fake_twins] == [60, 10]  # same env id and cell, another horizon
    eps = load_run(tmp_path / "run").episodes
    assert dict(zip(eps["episode_id"], eps["num_steps"], strict=True))["carrot_short-1"] == 10
