"""ManiSkill3 backend: the embedded default. Runs on CPU (PhysX CPU sim + Vulkan lavapipe rendering).

One gymnasium env is built per task and reused for every episode of that task: building costs seconds,
reset(seed) costs milliseconds.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from vlascore.backends.base import Backend, BackendError, Observation, PrivilegedState, StepResult, normalise_quat_pose
from vlascore.extras import require
from vlascore.suites import TaskSpec

VULKAN_HINT = (
    "SAPIEN could not find a Vulkan rendering device: run `vlascore doctor`; on Debian 12 install "
    "mesa-vulkan-drivers (Mesa >= 24.3) from bookworm-backports, e.g. `bash scripts/setup.sh`."
)


def _np(x: Any) -> np.ndarray:
    return np.asarray(x.cpu().numpy() if hasattr(x, "cpu") else x)


class ManiSkillBackend(Backend):
    name = "maniskill"

    def __init__(self, sim_backend: str = "cpu", render_backend: str | None = None, num_envs: int = 1) -> None:
        if sim_backend not in ("cpu", "gpu"):
            raise ValueError(f"--sim-backend must be cpu or gpu, not {sim_backend!r}")
        if num_envs != 1:
            raise ValueError(
                "num_envs > 1 is not supported by this runner yet; ManiSkill's CPU sim runs one env per process"
            )
        self.sim_backend = sim_backend
        self.render_backend = render_backend or ("gpu" if sim_backend == "gpu" else "cpu")
        self.num_envs = num_envs
        self._envs: dict[str, Any] = {}
        self._env: Any = None
        self._task: TaskSpec | None = None
        self._gripper_limits: tuple[float, ...] | None = None
        os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
        os.makedirs(os.environ["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)

    def describe(self) -> dict[str, Any]:
        return {"sim_backend": self.sim_backend, "render_backend": self.render_backend, "num_envs": self.num_envs}

    def env_kwargs(self, task: TaskSpec) -> dict[str, Any]:
        """Keyword arguments for ManiSkill's gym.make() of `task`."""
        width, height = task.resolution
        return dict(
            obs_mode="rgb",
            control_mode=task.control_mode,
            sim_backend=self.sim_backend,
            render_backend=self.render_backend,
            num_envs=self.num_envs,
            sensor_configs={"width": width, "height": height},
            max_episode_steps=task.max_steps,
            **task.env_kwargs,
        )

    def make(self, task: TaskSpec) -> None:
        self._task = task
        key = task.model_dump_json()
        if key not in self._envs:
            gym = require("gymnasium", purpose="the ManiSkill backend")
            require("mani_skill.envs", purpose="the ManiSkill backend")
            # ManiSkill warns on every env build about actor poses it then sets itself; keep run output readable.
            require("mani_skill.utils.logging_utils").logger.setLevel(logging.ERROR)
            try:
                self._envs[key] = gym.make(task.env_id, **self.env_kwargs(task))
            except Exception as exc:  # noqa: BLE001 - any build failure becomes one actionable error
                text = str(exc)
                hint = VULKAN_HINT if ("rendering device" in text or "vulkan" in text.lower()) else ""
                if self.sim_backend == "gpu" and not hint:
                    hint = "the GPU sim backend needs a CUDA device and a CUDA build of torch; use --sim-backend cpu"
                raise BackendError(
                    f"cannot build ManiSkill env {task.env_id!r}: {type(exc).__name__}: {text}. {hint}".strip()
                ) from exc
        self._env = self._envs[key]
        self._gripper_limits = None  # per env: re-read after switching tasks

    def _observation(self, obs: dict[str, Any], step: int, info: dict[str, Any] | None = None) -> Observation:
        assert self._task is not None
        env = self._env.unwrapped
        agent = env.agent
        image = None
        sensors = obs.get("sensor_data", {})
        if self._task.camera in sensors:
            image = _np(sensors[self._task.camera]["rgb"])[0].astype(np.uint8)
        qpos = _np(agent.robot.get_qpos())[0].astype(np.float64)
        qvel = _np(agent.robot.get_qvel())[0].astype(np.float64)
        ee_pose = normalise_quat_pose(agent.tcp.pose.raw_pose)
        # Parallel-jaw grippers are the last joints; normalise the opening by that joint's (constant) limits.
        if self._gripper_limits is None:
            self._gripper_limits = tuple(float(v) for v in _np(agent.robot.get_qlimits())[0][-1])
        lo, hi = self._gripper_limits
        gripper = float(np.clip((qpos[-1] - lo) / (hi - lo), 0.0, 1.0)) if hi > lo else 0.0
        objects = {
            role: normalise_quat_pose(getattr(env, attr).pose.raw_pose) for role, attr in self._task.objects.items()
        }
        # Tasks name the flag differently (is_grasped, is_cubeA_grasped, is_obj_grasped): take the first.
        key = next((k for k in (info or {}) if k.startswith("is_") and k.endswith("grasped")), None)
        grasped = bool(_np(info[key]).reshape(-1)[0]) if info and key else False
        return Observation(
            image=image,
            proprio={"qpos": qpos, "qvel": qvel, "ee_pose": ee_pose},
            privileged=PrivilegedState(ee_pose=ee_pose, gripper=gripper, objects=objects, is_grasped=grasped),
            step=step,
        )

    def reset(self, seed: int) -> Observation:
        if self._env is None:
            raise RuntimeError("call make(task) before reset()")
        obs, info = self._env.reset(seed=seed)
        self._step = 0
        return self._observation(obs, 0, info)

    def step(self, action: np.ndarray) -> StepResult:
        obs, reward, terminated, _truncated, info = self._env.step(np.asarray(action, dtype=np.float32))
        self._step += 1
        success = bool(_np(info.get("success", False)).reshape(-1)[0])
        return StepResult(
            observation=self._observation(obs, self._step, info),
            reward=float(_np(reward).reshape(-1)[0]),
            success=success,
            terminated=bool(_np(terminated).reshape(-1)[0]),
        )

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()
        self._env = None
