"""`toy`: a pure-numpy point-mass pick-and-place world (env id `ToyPick-v0`).

No physics engine and no rendering library: it exists so the runner, store, scoring and adapters can be
exercised in milliseconds (tests, demos, CI without Vulkan). It follows the same contract and action
convention (7-D end-effector delta, gripper +1 open) as the ManiSkill tabletop tasks.

Two options stand in for a real simulator when testing how runs scale: `step_seconds` (`-B step_seconds=0.01`)
sleeps that long in every step call, as a GPU simulator's step costs a fixed time; `num_envs` (`--num-envs N`)
makes it vectorised: N worlds (each a ToyBackend of its own) stepped by one call, which sleeps once, as one batched
GPU step does.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from vlascore.backends.base import Backend, Observation, PrivilegedState, StepResult
from vlascore.suites import TaskSpec

_IDENTITY_QUAT = np.array([1.0, 0.0, 0.0, 0.0])
_WORKSPACE = 0.3  # half-width of the table in metres
_POS_SCALE = 0.05  # metres per unit of normalised position action
_GRASP_RADIUS = 0.03
_GOAL_RADIUS = 0.025


class ToyBackend(Backend):
    name = "toy"
    vectorised = True

    def __init__(self, step_seconds: float = 0.0, num_envs: int = 1) -> None:
        if step_seconds < 0 or int(num_envs) < 1:
            raise ValueError(f"toy backend: step_seconds must be >= 0 and num_envs >= 1 ({step_seconds}, {num_envs})")
        self.step_seconds = float(step_seconds)
        self.num_envs = int(num_envs)
        self._task: TaskSpec | None = None
        self._worlds: list[ToyBackend] = []
        """Vectorised: one scalar world per slot (of this class, so subclasses' behaviour carries over)."""

    def describe(self) -> dict[str, Any]:
        return {"step_seconds": self.step_seconds} if self.step_seconds else {}

    def make(self, task: TaskSpec) -> None:
        if task.env_id != "ToyPick-v0":
            raise ValueError(f"the toy backend only provides ToyPick-v0, not {task.env_id!r}")
        self._task = task
        if self.num_envs > 1:
            self._worlds = [type(self)() for _ in range(self.num_envs)]
            for world in self._worlds:
                world.make(task)
                world.reset(0)  # every slot can be stepped, also before its first episode

    def reset_envs(self, seeds: dict[int, int]) -> dict[int, Observation]:
        if not self._worlds:
            raise RuntimeError("call make(task) on a toy backend built with num_envs > 1 before reset_envs()")
        return {slot: self._worlds[slot].reset(seed) for slot, seed in seeds.items()}

    def step_envs(self, actions: np.ndarray) -> list[StepResult]:
        if self.step_seconds:
            time.sleep(self.step_seconds)
        rows = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, -1)
        return [world.step(row) for world, row in zip(self._worlds, rows, strict=True)]

    def reset(self, seed: int) -> Observation:
        if self._task is None:
            raise RuntimeError("call make(task) before reset()")
        rng = np.random.default_rng(seed)
        self.ee = np.array([0.0, 0.0, 0.2])
        self.cube = np.append(rng.uniform(-0.2, 0.2, 2), 0.02)
        self.goal = np.append(rng.uniform(-0.2, 0.2, 2), rng.uniform(0.05, 0.25))
        self.gripper = 1.0
        self.grasped = False
        self.t = 0
        return self._obs()

    def _render(self) -> np.ndarray:
        width, height = (self._task.resolution if self._task else None) or (32, 32)
        img = np.full((height, width, 3), 40, dtype=np.uint8)

        def dot(p: np.ndarray, color: tuple[int, int, int]) -> None:
            x = int((p[0] + _WORKSPACE) / (2 * _WORKSPACE) * (width - 1))
            y = int((p[1] + _WORKSPACE) / (2 * _WORKSPACE) * (height - 1))
            img[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2] = color

        dot(self.goal, (0, 200, 0))
        dot(self.cube, (200, 0, 0))
        dot(self.ee, (220, 220, 220))
        return img

    def _obs(self) -> Observation:
        ee_pose = np.concatenate([self.ee, _IDENTITY_QUAT])
        priv = PrivilegedState(
            ee_pose=ee_pose,
            gripper=self.gripper,
            objects={
                "cube": np.concatenate([self.cube, _IDENTITY_QUAT]),
                "goal": np.concatenate([self.goal, _IDENTITY_QUAT]),
            },
            is_grasped=self.grasped,
        )
        proprio = {"qpos": np.array([*self.ee, self.gripper]), "qvel": np.zeros(4), "ee_pose": ee_pose}
        return Observation(image=self._render(), proprio=proprio, privileged=priv, step=self.t)

    def step(self, action: np.ndarray) -> StepResult:
        if self.step_seconds:
            time.sleep(self.step_seconds)
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        self.ee = np.clip(self.ee + a[:3] * _POS_SCALE, [-_WORKSPACE, -_WORKSPACE, 0.0], [_WORKSPACE, _WORKSPACE, 0.4])
        self.gripper = float(np.clip(self.gripper + 0.5 * a[6], 0.0, 1.0))
        if self.gripper < 0.5 and np.linalg.norm(self.ee - self.cube) < _GRASP_RADIUS:
            self.grasped = True
        elif self.gripper >= 0.5:
            self.grasped = False
        if self.grasped:
            self.cube = self.ee.copy()
        else:
            self.cube[2] = 0.02  # dropped objects fall to the table
        self.t += 1
        dist = float(np.linalg.norm(self.cube - self.goal))
        success = dist < _GOAL_RADIUS
        return StepResult(observation=self._obs(), reward=1.0 - np.tanh(5 * dist), success=success, terminated=success)
