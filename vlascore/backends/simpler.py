"""`simpler`: SimplerEnv's Google Robot and WidowX tasks on ManiSkill2_real2sim (SAPIEN 2), run as its evaluator runs
them (simpler_env/evaluation/maniskill2_evaluator.py).

Build: `gym.make(env_id, obs_mode="rgbd", camera_cfgs={"add_segmentation": True}, ...)` with the task's control mode,
frequencies and horizon and the grid cell's `make` settings (robot, scene, overlay image, URDF variant...); an
overlay is composited on the overhead camera (Google Robot) or the 3rd-view camera (WidowX), as SimplerEnv's
env builder chooses. Reset: `env.reset(options=cell.reset)`. The policy image is `obs["image"][camera]["rgb"]` and
the instruction is the env's `get_language_instruction()`, re-read after every step (the drawer-apple task moves to
its second subtask by itself once 100 steps have run; vlascore never calls `advance_to_next_subtask`).

Differences from SimplerEnv, and why:
- SimplerEnv builds a new env for every episode; building costs seconds, so one env is built per distinct build
  setting (the env id and every gym.make keyword: `episode_grid.env_key`) and reused; the `max_envs` most
  recently used stay open (a SimplerEnv grid runs each setting's cells one after another, and a suite has hundreds
  of settings, too many to keep). A fresh env's first episode draws its RNG seed from the fixed main seed 2022
  that every env sets at build, so a reused env is reset with that same seed (`FRESH_ENV_EPISODE_SEED`) and each
  episode's random draws (e.g. distractor placement) match a fresh env's. Physics solver state carried between
  episodes can still differ; `rebuild_each_episode=True` builds a fresh env per episode and resets it without a
  seed, as SimplerEnv does.
- A task without a grid resets with its episode seed (vlascore's contract: same seed, same initial state).

SimplerEnv needs sapien==2.2.2 and ManiSkill3 needs sapien 3, so this backend runs in its own environment
(`SIMPLER_INSTALL`); `vlascore doctor` reports which of the two an environment can run.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from vlascore.backends.base import Backend, BackendError, Observation, PrivilegedState, StepResult, normalise_quat_pose
from vlascore.backends.maniskill import _np, env_instruction, lookup
from vlascore.episode_grid import EpisodeCell, env_key
from vlascore.suites import TaskSpec

PACKAGE = "mani_skill2_real2sim"
SIMPLER_INSTALL = (
    "install SimplerEnv in its own environment (Python 3.10 or 3.11; it needs sapien==2.2.2, which cannot share an "
    "environment with ManiSkill3's sapien 3): git clone https://github.com/simpler-env/SimplerEnv --recurse-submodules;"
    " pip install numpy==1.24.4; pip install -e SimplerEnv/ManiSkill2_real2sim; pip install -e SimplerEnv; then "
    "pip install 'vlascore[models]' there (without the sim extra, which brings ManiSkill3 and sapien 3)"
)
# SAPIEN 2.2.2 failed with vk::...ErrorExtensionNotPresent on Mesa 25.0's lavapipe (which SAPIEN 3 renders on).
VULKAN_HINT = (
    " SAPIEN 2 could not create its Vulkan renderer: SimplerEnv needs a GPU with a Vulkan driver (its README asks for"
    " an NVIDIA GPU; CPU lavapipe does not work). Run `vlascore doctor` to see the Vulkan device."
)
# SimplerEnv's env builder: the camera the real-image overlay is composited on, by robot name.
OVERLAY_CAMERAS = (("google_robot_static", "overhead_camera"), ("widowx", "3rd_view_camera"))
# Reset options given as numpy arrays: SimplerEnv passes init_xy and init_rot_quat so, and the drawer envs' own qpos
# default is one (the envs do arithmetic on them).
ARRAY_OPTIONS = ("init_xy", "init_rot_quat", "qpos")
# ManiSkill2's BaseEnv seeds its main RNG with 2022 at build and a reset without a seed draws the episode seed from it:
# this is the episode seed of every freshly built env's first episode, i.e. of every SimplerEnv episode.
FRESH_ENV_EPISODE_SEED = int(np.random.RandomState(2022).randint(2**32))


def package_data_dir() -> Path | None:
    """ManiSkill2_real2sim's data directory as the package finds it: $MS2_REAL2SIM_ASSET_DIR, else the `data`
    directory next to the package (SimplerEnv's editable install); None when the package is not installed."""
    if os.getenv("MS2_REAL2SIM_ASSET_DIR"):
        return Path(os.environ["MS2_REAL2SIM_ASSET_DIR"])
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):  # ValueError: in sys.modules without a spec
        spec = None
    origin = spec.origin if spec is not None else getattr(sys.modules.get(PACKAGE), "__file__", None)
    return Path(origin).resolve().parent.parent / "data" if origin else None


def resize_nearest(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an HxWxC image to (width, height), sampling at pixel centres."""
    width, height = size
    h, w = image.shape[:2]
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(int), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(int), w - 1)
    return np.ascontiguousarray(image[rows][:, cols])


def reset_options(options: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a cell's reset options (envs add keys to them) with SimplerEnv's array-valued ones as arrays."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, dict):
            out[key] = reset_options(value)
        elif key in ARRAY_OPTIONS and isinstance(value, list | tuple):
            out[key] = np.array(value, dtype=np.float64)
        else:
            out[key] = value
    return out


def pose7(pose: Any) -> np.ndarray:
    """A SAPIEN 2 Pose (`p`, `q` as w x y z) or any 7-vector-like pose as x y z qw qx qy qz."""
    if hasattr(pose, "p") and hasattr(pose, "q"):
        return np.concatenate([np.asarray(pose.p, dtype=np.float64), np.asarray(pose.q, dtype=np.float64)])
    return normalise_quat_pose(getattr(pose, "raw_pose", pose))


def _ee_link(env: Any) -> Any:
    """The TCP link: CustomSceneEnv's `tcp` (the agent config's `ee_link_name`), else that link looked up by name."""
    if getattr(env, "tcp", None) is not None:
        return env.tcp
    name = getattr(getattr(env.agent, "config", None), "ee_link_name", None)
    for link in env.agent.robot.get_links() if name else ():
        if link.name == name:
            return link
    raise BackendError(f"{type(env).__name__} has no `tcp` and its agent no `config.ee_link_name` link")


class SimplerBackend(Backend):
    name = "simpler"

    def __init__(self, data_dir: str | None = None, rebuild_each_episode: bool = False, max_envs: int = 4) -> None:
        if max_envs < 1:
            raise ValueError(f"max_envs must be >= 1, got {max_envs}")
        self.data_dir = data_dir
        """Where relative `rgb_overlay_path`s are found; None: ManiSkill2_real2sim's own data directory."""
        self.rebuild_each_episode = bool(rebuild_each_episode)
        """Build a fresh env for every episode, as SimplerEnv does, instead of reusing one per build setting."""
        self.max_envs = int(max_envs)
        """Built envs kept open for reuse; the least recently used beyond this many are closed."""
        self._envs: OrderedDict[str, Any] = OrderedDict()
        self._env: Any = None
        self._key = ""
        self._used = False  # whether the current env has run an episode (with rebuild_each_episode: rebuild it)
        self._task: TaskSpec | None = None
        self._step = 0
        self._instruction: str | None = None

    def describe(self) -> dict[str, Any]:
        data = Path(self.data_dir) if self.data_dir else package_data_dir()
        return {
            "data_dir": str(data) if data else None,
            "rebuild_each_episode": self.rebuild_each_episode,
            "max_envs": self.max_envs,
        }

    def env_kwargs(self, task: TaskSpec, cell: EpisodeCell | None = None) -> dict[str, Any]:
        """Keyword arguments of gym.make() for `task` (its grid cell `cell`), as SimplerEnv's evaluator builds them."""
        kwargs: dict[str, Any] = dict(
            obs_mode="rgbd",
            control_mode=task.control_mode,
            max_episode_steps=task.max_steps,
            camera_cfgs={"add_segmentation": True},
        )
        if task.sim_freq is not None:
            kwargs["sim_freq"] = task.sim_freq
        if task.control_freq is not None:  # ManiSkill2 ranges over sim_freq // control_freq: keep it an int
            cf = task.control_freq
            kwargs["control_freq"] = int(cf) if float(cf).is_integer() else cf
        kwargs.update(cell.make if cell is not None else task.env_kwargs)
        overlay = kwargs.get("rgb_overlay_path")
        if overlay is not None:
            kwargs["rgb_overlay_path"] = str(self._overlay_file(str(overlay)))
            if "rgb_overlay_cameras" not in kwargs:
                robot = kwargs.get("robot")
                if robot is None:
                    raise BackendError(
                        f"task {task.id!r}: an rgb_overlay_path needs `robot` in its build settings "
                        "(the robot decides the camera the overlay goes on)"
                    )
                cams = [cam for name, cam in OVERLAY_CAMERAS if name in str(robot)]
                if cams:  # SimplerEnv sets none for other robots (the env then overlays no camera)
                    kwargs["rgb_overlay_cameras"] = cams[:1]
        return kwargs

    def _overlay_file(self, path: str) -> Path:
        file = Path(path).expanduser()
        if not file.is_absolute():
            root = Path(self.data_dir).expanduser() if self.data_dir else package_data_dir()
            if root is None:
                raise BackendError(
                    f"cannot resolve rgb_overlay_path {path!r}: {PACKAGE} is not installed and no data_dir was given"
                )
            file = root / file
        if not file.is_file():
            raise BackendError(
                f"rgb_overlay_path {path!r}: {file} does not exist. The overlay images are in "
                "ManiSkill2_real2sim's data/real_inpainting (SimplerEnv's submodule); pass data_dir, "
                "or set MS2_REAL2SIM_ASSET_DIR, to where that data directory is"
            )
        return file

    def _import(self) -> Any:
        """gymnasium, after ManiSkill2_real2sim has registered its envs with it."""
        try:
            importlib.import_module(f"{PACKAGE}.envs")
        except ImportError as exc:
            installed = False
            try:
                installed = importlib.util.find_spec(PACKAGE) is not None
            except (ImportError, ValueError):
                pass
            if installed:
                raise BackendError(
                    f"{PACKAGE} is installed but does not import ({type(exc).__name__}: {exc}); it "
                    f"needs sapien==2.2.2 and gymnasium<1.0 next to it. Run `vlascore doctor`; "
                    f"{SIMPLER_INSTALL}"
                ) from exc
            raise BackendError(
                f"the simpler backend needs {PACKAGE} (SimplerEnv), which is not installed (it is not "
                f"on PyPI): {SIMPLER_INSTALL}"
            ) from exc
        return importlib.import_module("gymnasium")

    def make(self, task: TaskSpec) -> None:
        self._task = task
        cell = task.cell(task.seeds[0]) if task.grid else None
        self._use_env(task, cell)  # the first episode's env: a setup failure shows before any episode runs

    def _use_env(self, task: TaskSpec, cell: EpisodeCell | None) -> None:
        env_id = cell.env_id if cell is not None else task.env_id
        kwargs = self.env_kwargs(task, cell)
        key = env_key(env_id, kwargs)
        if self.rebuild_each_episode and key == self._key and self._used:
            self._envs.pop(key).close()
        if key not in self._envs:
            keep = 0 if self.rebuild_each_episode else self.max_envs - 1  # rebuilding: one env at a time, as SimplerEnv
            while len(self._envs) > keep:
                self._envs.popitem(last=False)[1].close()
            gym = self._import()
            try:
                self._envs[key] = gym.make(env_id, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any build failure becomes one actionable error
                text = str(exc).lower()
                hint = VULKAN_HINT if "vulkan" in text or "vk::" in text else ""
                raise BackendError(
                    f"cannot build SimplerEnv env {env_id!r}: {type(exc).__name__}: {exc}.{hint}"
                ) from exc
            self._used = False
        self._envs.move_to_end(key)
        self._env, self._key = self._envs[key], key

    def reset(self, seed: int) -> Observation:
        if self._task is None:
            raise RuntimeError("call make(task) before reset()")
        cell = self._task.cell(seed)
        self._use_env(self._task, cell)
        options = reset_options(cell.reset) if cell is not None else {}
        if cell is None:
            episode_seed: int | None = seed
        else:  # SimplerEnv passes no seed to a fresh env; a reused env gets the seed a fresh one would draw
            episode_seed = None if self.rebuild_each_episode else FRESH_ENV_EPISODE_SEED
        obs, info = self._env.reset(seed=episode_seed, options=options)
        self._used = True
        self._step = 0
        self._instruction = env_instruction(self._env.unwrapped)
        return self._observation(obs, 0, info)

    def step(self, action: np.ndarray) -> StepResult:
        obs, reward, terminated, _truncated, info = self._env.step(np.asarray(action, dtype=np.float64))
        self._step += 1
        self._instruction = env_instruction(self._env.unwrapped) or self._instruction
        return StepResult(
            observation=self._observation(obs, self._step, info),
            reward=float(_np(reward).reshape(-1)[0]),
            success=bool(_np(info.get("success", False)).reshape(-1)[0]),
            terminated=bool(_np(terminated).reshape(-1)[0]),
        )

    def _observation(self, obs: dict[str, Any], step: int, info: dict[str, Any] | None) -> Observation:
        assert self._task is not None
        env = self._env.unwrapped
        images = obs.get("image", {})
        camera = self._task.camera
        if camera not in images:
            raise BackendError(
                f"task {self._task.id!r}: camera {camera!r} is not in the observation; the env has "
                f"{', '.join(images) or 'no cameras'}"
            )
        image = np.ascontiguousarray(_np(images[camera]["rgb"])[..., :3], dtype=np.uint8)
        if self._task.resolution is not None and image.shape[1::-1] != tuple(self._task.resolution):
            image = resize_nearest(image, self._task.resolution)
        robot = env.agent.robot
        qpos = _np(robot.get_qpos()).astype(np.float64).reshape(-1)
        qvel = _np(robot.get_qvel()).astype(np.float64).reshape(-1)
        ee_pose = pose7(_ee_link(env).pose)
        objects = {role: pose7(lookup(env, attr).pose) for role, attr in self._task.objects.items()}
        # Tasks name the flag differently (is_grasped, is_src_obj_grasped): take the first.
        key = next((k for k in (info or {}) if k.startswith("is_") and k.endswith("grasped")), None)
        grasped = bool(_np(info[key]).reshape(-1)[0]) if info and key else False
        return Observation(
            image=image,
            proprio={"qpos": qpos, "qvel": qvel, "ee_pose": ee_pose},
            privileged=PrivilegedState(
                ee_pose=ee_pose, gripper=self._gripper(env.agent, qpos), objects=objects, is_grasped=grasped
            ),
            step=step,
            instruction=self._instruction,
        )

    @staticmethod
    def _gripper(agent: Any, qpos: np.ndarray) -> float:
        """Opening in [0 closed, 1 open]."""
        closedness = getattr(agent, "get_gripper_closedness", None)
        if closedness is not None:  # both agents define it from their finger joints and limits
            return float(np.clip(1.0 - float(closedness()), 0.0, 1.0))
        # Otherwise the last joint is the gripper's, as in ManiSkill3 (not true of the Google Robot: head joints last).
        lo, hi = (float(v) for v in _np(agent.robot.get_qlimits())[-1])
        return float(np.clip((qpos[-1] - lo) / (hi - lo), 0.0, 1.0)) if hi > lo else 0.0

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()
        self._env, self._key = None, ""
