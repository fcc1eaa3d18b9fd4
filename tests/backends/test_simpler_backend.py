"""The `simpler` backend against a fake ManiSkill2_real2sim: build kwargs, env reuse, reset options, instructions,
success, images, the missing-package error and a full run; plus one real build when SimplerEnv is installed.

The fake registers gymnasium envs that record what they are built and reset with, model ManiSkill2's seeding
(main RNG seeded 2022 at build; a reset without a seed draws the episode seed from it) and return observations
shaped like ManiSkill2_real2sim's rgbd ones.
"""

from __future__ import annotations

import copy
import sys
import types
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec

import vlascore
from vlascore import runner
from vlascore.backends import BACKENDS, BackendError
from vlascore.backends.simpler import FRESH_ENV_EPISODE_SEED, SIMPLER_INSTALL, SimplerBackend, resize_nearest
from vlascore.episode_grid import euler_sxyz_to_quat, quat_multiply
from vlascore.extras import available
from vlascore.suites import ActionSpace, Suite, TaskSpec, load_suite_file

GOOGLE_MODE = (
    "arm_pd_ee_delta_pose_align_interpolate_by_planner_gripper_pd_joint_target_delta_pos_interpolate_by_planner"
)
GOOGLE_SPACE = ActionSpace(
    mode="ee_delta", rotation="axis_angle", dim=7, normalized=False, gripper_open=-1, gripper="relative"
)
OVERLAY = "real_inpainting/google_coke_can_real_eval_1.png"
BRIDGE_OVERLAY = "real_inpainting/bridge_real_eval_1.png"
H, W = 6, 8  # the fake cameras' size (not square, so a transposed resize shows)

SUITE_YAML = f"""
name: simpler-fake
protocol_version: "1"
backend: simpler
defaults:
  control_mode: {GOOGLE_MODE}
  action_space: {{mode: ee_delta, rotation: axis_angle, dim: 7, normalized: false, gripper_open: -1,
                 gripper: relative}}
  camera: overhead_camera
  resolution: null
  sim_freq: 513
  control_freq: 3
  success_mode: final
tasks:
  - id: coke
    env_id: FakeGraspCan-v0
    instruction: pick up the can
    max_steps: 5
    objects: {{can: obj}}
    env_kwargs:
      robot: google_robot_static
      scene_name: google_pick_coke_can_1_v4
      rgb_overlay_path: {OVERLAY}
      fake_success_at: [2, 3]
      fake_switch_at: 2
    grid:
      reset: {{robot_init_options: {{init_xy: [0.35, 0.20]}}}}
      axes:
        - name: orientation
          values:
            - {{label: horizontal, make: {{lr_switch: true}}}}
            - {{label: upright, make: {{upright: true}}}}
        - name: robot_rot
          rpy: {{key: robot_init_options.init_rot_quat, center: [0, 0, 0, 1], y: [0, -0.09, 2]}}
        - name: obj
          xy: {{key: obj_init_options.init_xy, x: [-0.35, -0.12, 2], y: [-0.02, -0.02, 1]}}
  - id: carrot
    env_id: FakeBridge-v0
    instruction: put carrot on plate
    control_mode: arm_pd_ee_target_delta_pose_align2_gripper_pd_joint_pos
    action_space: {{mode: ee_delta, rotation: axis_angle, dim: 7, normalized: false, gripper_open: 1}}
    camera: 3rd_view_camera
    resolution: [4, 3]
    sim_freq: 500
    control_freq: 5
    max_steps: 4
    env_kwargs: {{robot: widowx, scene_name: bridge_table_1_v1, rgb_overlay_path: {BRIDGE_OVERLAY}}}
    grid:
      axes:
        - name: episode
          range: {{key: obj_init_options.episode_id, start: 0, count: 3}}
"""


class FakePose:
    def __init__(self, p: list[float], q: list[float]) -> None:
        self.p, self.q = np.array(p, dtype=np.float32), np.array(q, dtype=np.float32)


class FakeArticulation:
    def __init__(self, env: FakeSimplerEnv) -> None:
        self.env = env

    def get_qpos(self) -> np.ndarray:
        return np.full(11, 0.01 * self.env.t, dtype=np.float32)

    def get_qvel(self) -> np.ndarray:
        return np.zeros(11, dtype=np.float32)


class FakeAgent:
    def __init__(self, env: FakeSimplerEnv) -> None:
        self.robot = FakeArticulation(env)

    def get_gripper_closedness(self) -> float:
        return 0.25


class FakeSimplerEnv(gym.Env):
    """Records its build kwargs, resets and actions; succeeds at the steps in `fake_success_at`; its instruction
    changes after `fake_switch_at` steps."""

    metadata: dict[str, Any] = {"render_modes": []}
    built: list[FakeSimplerEnv] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = copy.deepcopy(kwargs)
        self.success_at = set(kwargs.get("fake_success_at", []))
        self.switch_at = kwargs.get("fake_switch_at")
        robot = kwargs.get("robot", "google_robot_static")
        self.camera = "3rd_view_camera" if "widowx" in robot else "overhead_camera"
        self.observation_space = gym.spaces.Box(0, 255, (H, W, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1, 1, (7,), np.float64)
        self.agent = FakeAgent(self)
        self.t = 0
        self.closed = False
        self.main_rng = np.random.RandomState(2022)  # as ManiSkill2's BaseEnv.__init__, then a reset with seed 2022
        self.reset(seed=2022, options={"reconfigure": True})
        self.resets: list[dict[str, Any]] = []
        self.actions: list[np.ndarray] = []
        FakeSimplerEnv.built.append(self)

    @property
    def tcp(self) -> Any:
        return types.SimpleNamespace(pose=FakePose([0.1, 0.2, 0.3 + 0.01 * self.t], [0, 0, 0, 1]))

    @property
    def obj(self) -> Any:
        return types.SimpleNamespace(pose=FakePose([-0.3, 0.1, 0.9], [1, 0, 0, 0]))

    def _obs(self) -> dict[str, Any]:
        rgb = np.full((H, W, 3), self.t, dtype=np.uint8)
        rgb[:, :, 0] = np.arange(W, dtype=np.uint8)  # column index in red: shows how a resize samples
        image = {self.camera: {"rgb": rgb, "depth": np.zeros((H, W, 1), np.float32)}}
        return {"agent": {"qpos": self.agent.robot.get_qpos()}, "extra": {}, "camera_param": {}, "image": image}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        options = options if options is not None else {}
        episode_seed = seed if seed is not None else int(self.main_rng.randint(2**32))
        self.main_rng = np.random.RandomState(episode_seed)  # the custom scenes re-seed the main RNG with it
        if hasattr(self, "resets"):
            self.resets.append({"seed": seed, "episode_seed": episode_seed, "options": copy.deepcopy(options)})
        options.setdefault("robot_init_options", {}).setdefault("qpos", np.zeros(11))  # as the drawer envs do
        self.t = 0
        return self._obs(), {"scene_name": self.kwargs.get("scene_name")}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.actions.append(np.asarray(action))
        self.t += 1
        success = self.t in self.success_at
        return self._obs(), 0.5, success, False, {"success": success, "is_grasped": self.t >= 2}

    def get_language_instruction(self) -> str:
        return "place it down" if self.switch_at is not None and self.t >= self.switch_at else "pick coke can"

    def close(self) -> None:
        self.closed = True


def _make_fake(**kwargs: Any) -> FakeSimplerEnv:
    return FakeSimplerEnv(**kwargs)


@pytest.fixture
def fake_simpler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake mani_skill2_real2sim in SimplerEnv's editable layout; returns its data directory."""
    root = tmp_path / "SimplerEnv" / "ManiSkill2_real2sim"
    (root / "mani_skill2_real2sim").mkdir(parents=True)
    (root / "mani_skill2_real2sim" / "__init__.py").write_text("")
    data = root / "data"
    for rel in (OVERLAY, BRIDGE_OVERLAY):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(b"png")
    pkg = types.ModuleType("mani_skill2_real2sim")
    pkg.__file__ = str(root / "mani_skill2_real2sim" / "__init__.py")
    envs = types.ModuleType("mani_skill2_real2sim.envs")
    monkeypatch.setitem(sys.modules, "mani_skill2_real2sim", pkg)
    monkeypatch.setitem(sys.modules, "mani_skill2_real2sim.envs", envs)
    monkeypatch.delenv("MS2_REAL2SIM_ASSET_DIR", raising=False)
    for env_id in ("FakeGraspCan-v0", "FakeBridge-v0"):
        monkeypatch.setitem(gym.registry, env_id, EnvSpec(id=env_id, entry_point=_make_fake, disable_env_checker=True))
    monkeypatch.setattr(FakeSimplerEnv, "built", [])
    return data


@pytest.fixture
def suite(tmp_path: Path) -> Suite:
    path = tmp_path / "simpler-fake.yaml"
    path.write_text(SUITE_YAML)
    return load_suite_file(path)


def _time_limit(env: gym.Env) -> int | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env._max_episode_steps
        env = env.env
    return None


def test_registered_and_described(fake_simpler: Path) -> None:
    assert BACKENDS.get("simpler") is SimplerBackend
    assert SimplerBackend().describe() == {
        "data_dir": str(fake_simpler.resolve()),
        "rebuild_each_episode": False,
        "max_envs": 4,
    }
    assert SimplerBackend(data_dir="/x", rebuild_each_episode=True, max_envs=1).describe() == {
        "data_dir": "/x",
        "rebuild_each_episode": True,
        "max_envs": 1,
    }
    with pytest.raises(ValueError, match="max_envs"):
        SimplerBackend(max_envs=0)


def test_build_kwargs_follow_simpler_env(fake_simpler: Path, suite: Suite) -> None:
    backend = SimplerBackend()
    backend.make(suite.task("coke"))
    (env,) = FakeSimplerEnv.built
    assert env.kwargs == {
        "obs_mode": "rgbd",
        "robot": "google_robot_static",
        "sim_freq": 513,
        "control_freq": 3,
        "control_mode": GOOGLE_MODE,
        "camera_cfgs": {"add_segmentation": True},
        "scene_name": "google_pick_coke_can_1_v4",
        "rgb_overlay_path": str(fake_simpler.resolve() / OVERLAY),
        "rgb_overlay_cameras": ["overhead_camera"],
        "lr_switch": True,
        "fake_success_at": [2, 3],
        "fake_switch_at": 2,
    }
    assert type(env.kwargs["control_freq"]) is int  # ManiSkill2 ranges over sim_freq // control_freq
    assert _time_limit(backend._env) == 5
    backend.make(suite.task("carrot"))
    bridge = FakeSimplerEnv.built[-1]
    assert bridge.kwargs["rgb_overlay_cameras"] == ["3rd_view_camera"] and bridge.kwargs["robot"] == "widowx"
    assert (bridge.kwargs["sim_freq"], bridge.kwargs["control_freq"]) == (500, 5)
    assert bridge.kwargs["control_mode"] == "arm_pd_ee_target_delta_pose_align2_gripper_pd_joint_pos"
    assert _time_limit(backend._env) == 4
    backend.close()
    assert all(e.closed for e in FakeSimplerEnv.built)


def test_overlay_paths_resolve_against_data_dir(
    fake_simpler: Path, suite: Suite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = suite.task("coke")
    other = tmp_path / "elsewhere"
    (other / "real_inpainting").mkdir(parents=True)
    (other / OVERLAY).write_bytes(b"png")
    given = SimplerBackend(data_dir=str(other)).env_kwargs(task, task.cell(0))
    assert given["rgb_overlay_path"] == str(other / OVERLAY)
    monkeypatch.setenv("MS2_REAL2SIM_ASSET_DIR", str(other))  # the package's own asset-dir variable
    assert SimplerBackend().env_kwargs(task, task.cell(0))["rgb_overlay_path"] == str(other / OVERLAY)
    absolute = task.model_copy(update={"env_kwargs": {**task.env_kwargs, "rgb_overlay_path": str(other / OVERLAY)}})
    assert SimplerBackend(data_dir="/nowhere").env_kwargs(absolute)["rgb_overlay_path"] == str(other / OVERLAY)
    no_overlay = task.model_copy(update={"env_kwargs": {"robot": "google_robot_static"}})
    kwargs = SimplerBackend().env_kwargs(no_overlay)
    assert "rgb_overlay_path" not in kwargs and "rgb_overlay_cameras" not in kwargs
    with pytest.raises(BackendError, match=r"google_coke_can_real_eval_1.png.*does not exist.*data_dir"):
        SimplerBackend(data_dir=str(tmp_path / "empty")).make(task)
    no_robot = task.model_copy(update={"env_kwargs": {"rgb_overlay_path": OVERLAY}})
    with pytest.raises(BackendError, match="needs `robot`"):
        SimplerBackend().env_kwargs(no_robot)


def test_one_env_per_build_setting_and_the_rebuild_option(fake_simpler: Path, suite: Suite) -> None:
    task = suite.task("coke")
    backend = SimplerBackend()
    backend.make(task)
    for i in task.seeds:
        backend.reset(i)
        backend.step(np.zeros(7))
    horizontal, upright = FakeSimplerEnv.built  # the orientation is a build setting: two envs, four episodes each
    assert horizontal.kwargs["lr_switch"] and upright.kwargs["upright"]
    assert len(horizontal.resets) == len(upright.resets) == 4
    # A reused env is reset with the episode seed a fresh env would draw, so every episode's RNG is SimplerEnv's.
    assert {r["seed"] for r in horizontal.resets + upright.resets} == {FRESH_ENV_EPISODE_SEED}
    cached_seeds = [r["episode_seed"] for r in horizontal.resets + upright.resets]
    backend.close()

    FakeSimplerEnv.built.clear()
    rebuild = SimplerBackend(rebuild_each_episode=True)
    assert rebuild.describe()["rebuild_each_episode"] is True
    rebuild.make(task)
    for i in task.seeds:
        rebuild.reset(i)
        rebuild.step(np.zeros(7))
    built = FakeSimplerEnv.built
    assert len(built) == len(task.seeds)  # a fresh env per episode; make()'s env serves the first one
    assert all(len(e.resets) == 1 and e.resets[0]["seed"] is None for e in built)  # no seed, as SimplerEnv
    assert all(e.closed for e in built[:-1]) and not built[-1].closed
    assert sorted(r["episode_seed"] for e in built for r in e.resets) == sorted(cached_seeds)
    rebuild.close()
    assert built[-1].closed


def test_least_recently_used_envs_beyond_max_envs_are_closed(fake_simpler: Path, suite: Suite) -> None:
    task = suite.task("coke")  # cells 0-3 build with lr_switch, 4-7 with upright
    for max_envs, builds in ((1, 4), (2, 2)):
        FakeSimplerEnv.built.clear()
        backend = SimplerBackend(max_envs=max_envs)
        backend.make(task)
        for i in (0, 4, 1, 5):
            backend.reset(i)
        assert len(FakeSimplerEnv.built) == builds
        assert sum(not e.closed for e in FakeSimplerEnv.built) == max_envs
        backend.close()
        assert all(e.closed for e in FakeSimplerEnv.built)


def test_reset_options_per_grid_cell(fake_simpler: Path, suite: Suite) -> None:
    task = suite.task("coke")
    backend = SimplerBackend()
    backend.make(task)
    for i in task.seeds:
        backend.reset(i)
    resets = [r["options"] for e in FakeSimplerEnv.built for r in e.resets]
    # cells 0-3: horizontal, cells 4-7: upright; within each, robot yaw (0, -0.09) x object x (-0.35, -0.12)
    quats = [quat_multiply(euler_sxyz_to_quat(0, 0, y), [0, 0, 0, 1]) for y in (0.0, -0.09)]
    expected = [(q, x) for q in quats for x in (-0.35, -0.12)] * 2
    assert len(resets) == 8
    for options, (quat, x) in zip(resets, expected, strict=True):
        robot, obj = options["robot_init_options"], options["obj_init_options"]
        assert set(options) == {"robot_init_options", "obj_init_options"} and set(robot) == {"init_xy", "init_rot_quat"}
        assert isinstance(robot["init_xy"], np.ndarray) and isinstance(robot["init_rot_quat"], np.ndarray)
        assert isinstance(obj["init_xy"], np.ndarray)
        np.testing.assert_allclose(robot["init_xy"], [0.35, 0.20])
        np.testing.assert_allclose(robot["init_rot_quat"], quat)
        np.testing.assert_allclose(obj["init_xy"], [x, -0.02])
    np.testing.assert_allclose(expected[2][0], [0.044985, 0, 0, 0.998988], atol=1e-6)  # the research notes' value
    assert "qpos" not in task.cell(0).reset["robot_init_options"]  # the env's setdefault did not leak into the spec
    bridge = suite.task("carrot")
    backend.make(bridge)
    for i in bridge.seeds:
        backend.reset(i)
    assert [r["options"] for r in FakeSimplerEnv.built[-1].resets] == [
        {"obj_init_options": {"episode_id": i}} for i in range(3)
    ]
    backend.close()


def test_instruction_success_and_state_pass_through(fake_simpler: Path, suite: Suite) -> None:
    task = suite.task("coke")
    backend = SimplerBackend()
    backend.make(task)
    obs = backend.reset(0)
    assert obs.instruction == "pick coke can" and obs.step == 0
    results = [backend.step(np.full(7, 0.1)) for _ in range(4)]
    assert [r.observation.instruction for r in results] == [
        "pick coke can",
        "place it down",
        "place it down",
        "place it down",
    ]
    assert [r.success for r in results] == [False, True, True, False]
    assert [r.terminated for r in results] == [False, True, True, False]
    assert [r.observation.privileged.is_grasped for r in results] == [False, True, True, True]
    assert results[0].reward == 0.5
    last = results[-1].observation
    assert last.step == 4 and last.proprio["qpos"].shape == (11,) and last.proprio["qvel"].dtype == np.float64
    np.testing.assert_allclose(last.proprio["qpos"], 0.04, rtol=1e-6)
    np.testing.assert_allclose(last.proprio["ee_pose"], [0.1, 0.2, 0.34, 0, 0, 0, 1], rtol=1e-6)
    np.testing.assert_allclose(last.privileged.ee_pose, last.proprio["ee_pose"])
    np.testing.assert_allclose(last.privileged.objects["can"], [-0.3, 0.1, 0.9, 1, 0, 0, 0], rtol=1e-6)
    assert last.privileged.gripper == pytest.approx(0.75)  # 1 - the agent's gripper closedness
    np.testing.assert_allclose(FakeSimplerEnv.built[0].actions[0], np.full(7, 0.1))
    backend.close()


def test_image_keeps_the_sim_size_or_is_resized(fake_simpler: Path, suite: Suite) -> None:
    backend = SimplerBackend()
    backend.make(suite.task("coke"))  # resolution: null -> the camera's own size
    obs = backend.reset(0)
    assert obs.image is not None and obs.image.shape == (H, W, 3) and obs.image.dtype == np.uint8
    backend.make(suite.task("carrot"))  # resolution [4, 3] is (width, height)
    image = backend.reset(0).image
    assert image is not None and image.shape == (3, 4, 3)
    assert list(image[0, :, 0]) == [1, 3, 5, 7]  # nearest pixel centres of the 8 columns
    np.testing.assert_array_equal(
        resize_nearest(np.arange(4).reshape(2, 2, 1), (4, 4))[..., 0],
        [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]],
    )
    wrong = suite.task("coke").model_copy(update={"camera": "base_camera"})
    backend.make(wrong)
    with pytest.raises(BackendError, match="camera 'base_camera' is not in the observation; the env has overhead"):
        backend.reset(0)
    backend.close()


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch, suite: Suite) -> None:
    for module in ("mani_skill2_real2sim", "mani_skill2_real2sim.envs"):  # imports fail, as when it is not installed
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delenv("MS2_REAL2SIM_ASSET_DIR", raising=False)
    task = suite.task("coke").model_copy(update={"env_kwargs": {"robot": "google_robot_static"}})
    with pytest.raises(BackendError) as info:
        SimplerBackend().make(task)
    text = str(info.value)
    assert "mani_skill2_real2sim (SimplerEnv), which is not installed (it is not on PyPI)" in text
    for step in (
        "git clone https://github.com/simpler-env/SimplerEnv --recurse-submodules",
        "pip install -e SimplerEnv/ManiSkill2_real2sim; pip install -e SimplerEnv",
        "pip install 'vlascore[models]' there (without the sim extra",
        "sapien==2.2.2",
    ):
        assert step in text
    assert SimplerBackend().describe() == {"data_dir": None, "rebuild_each_episode": False, "max_envs": 4}


def test_runner_end_to_end_with_the_random_adapter(fake_simpler: Path, suite: Suite, tmp_path: Path) -> None:
    # `random` speaks each task's convention: metric jitter on the Google Robot's axis-angle / relative gripper
    assert suite.task("coke").action_space == GOOGLE_SPACE
    out = tmp_path / "run"
    summary = runner.run(model="random", suite=suite, tasks=["coke"], out=out)
    assert (summary.ran, summary.errored) == (8, 0)
    run = vlascore.load_run(out)
    eps = run.episodes
    assert list(eps["episode_id"]) == [f"coke-{i}" for i in range(8)]
    assert (eps["status"] == "ok").all() and (eps["instruction"] == "pick coke can").all()
    # success_mode final: every episode runs to the horizon; success is the last step's (False at step 5)
    assert (eps["num_steps"] == 5).all() and (eps["termination"] == "max_steps").all() and not eps["success"].any()
    steps = run.steps[run.steps["episode_id"] == "coke-0"]
    assert list(steps["success"]) == [False, True, True, False, False]
    assert run.run.backend == "simpler"
    assert run.run.backend_config == SimplerBackend().describe()
    assert run.run.backend_config["data_dir"] == str(fake_simpler.resolve())
    frames, frame_steps = run.frames("coke-0")
    assert frames.shape == (6, H, W, 3) and list(frame_steps) == list(range(6))
    assert len(FakeSimplerEnv.built) == 2 and all(e.closed for e in FakeSimplerEnv.built)
    actions = FakeSimplerEnv.built[0].actions
    acts = np.stack(actions)
    assert len(actions) == 20 and np.abs(acts[:, :3]).max() <= 0.02 and np.abs(acts[:, 3:6]).max() <= 0.1
    assert np.abs(acts[:, 6]).max() <= 1.0


@pytest.mark.slow
@pytest.mark.skipif(
    not available("mani_skill2_real2sim"),
    reason=f"mani_skill2_real2sim (SimplerEnv) is not installed: {SIMPLER_INSTALL}",
)
def test_real_pick_coke_can_builds_and_steps() -> None:
    task = TaskSpec(
        id="coke",
        env_id="GraspSingleOpenedCokeCanInScene-v0",
        instruction="pick coke can",
        control_mode=GOOGLE_MODE,
        action_space=GOOGLE_SPACE,
        camera="overhead_camera",
        resolution=None,
        max_steps=80,
        sim_freq=513,
        control_freq=3,
        seeds=[0],
        objects={"can": "obj"},
        success_mode="final",
        env_kwargs={
            "robot": "google_robot_static",
            "scene_name": "google_pick_coke_can_1_v4",
            "rgb_overlay_path": OVERLAY,
            "lr_switch": True,
        },
        grid=[
            {
                "reset": {
                    "robot_init_options": {"init_xy": [0.35, 0.20], "init_rot_quat": [0, 0, 0, 1]},
                    "obj_init_options": {"init_xy": [-0.35, -0.02]},
                }
            }
        ],
    )
    backend = SimplerBackend()
    try:
        backend.make(task)
        obs = backend.reset(0)
        assert obs.instruction == "pick coke can"
        assert obs.image is not None and obs.image.ndim == 3 and obs.image.dtype == np.uint8
        result = backend.step(np.zeros(7))
        assert result.observation.step == 1 and result.observation.proprio["qpos"].shape == (11,)
        privileged = result.observation.privileged
        assert privileged.objects["can"].shape == (7,) and 0.0 <= privileged.gripper <= 1.0
    finally:
        backend.close()
