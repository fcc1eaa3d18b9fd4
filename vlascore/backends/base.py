"""The simulator contract: make once, then reset(seed) / step(action) per episode.

Kept deliberately small (Gymnasium-like) so a new simulator is one class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlascore.suites import TaskSpec


class BackendError(RuntimeError):
    """The simulator cannot be set up (missing driver, assets or device); the message says how to fix it."""


@dataclass
class PrivilegedState:
    """Ground truth the simulator knows and a real robot would not: for scripted experts and judges."""

    ee_pose: np.ndarray
    """TCP pose, x y z qw qx qy qz (world frame)."""
    gripper: float
    """Opening in [0 closed, 1 open]."""
    objects: dict[str, np.ndarray] = field(default_factory=dict)
    """Role (from the task's `objects:`) -> pose x y z qw qx qy qz (world frame)."""
    is_grasped: bool = False
    """Whether the simulator reports the task object as grasped."""
    boxes: dict[str, np.ndarray] = field(default_factory=dict)
    """Role -> axis-aligned bounding box xmin ymin zmin xmax ymax zmax (world frame) of its geometry, where the
    backend knows it (LIBERO): scripted experts size their grasps with it. Not recorded in traces."""


@dataclass
class Observation:
    """What a policy receives each step."""

    image: np.ndarray | None
    """Camera image, HxWx3 uint8 (None for image-free tasks)."""
    proprio: dict[str, np.ndarray]
    """Robot state a real robot also has: `qpos`, `qvel`, `ee_pose`."""
    privileged: PrivilegedState
    """Simulator ground truth; only adapters that declare `uses_privileged_state` should read it."""
    step: int = 0
    """Control-step index in the episode."""
    instruction: str | None = None
    """The simulator's own instruction for this episode or subtask (SimplerEnv's get_language_instruction());
    None: the task's instruction."""
    extra_images: dict[str, np.ndarray] = field(default_factory=dict)
    """Other cameras' images (HxWx3 uint8) by camera name, e.g. LIBERO's wrist camera `robot0_eye_in_hand`, for
    policies that take several views. Not recorded in traces."""


@dataclass
class StepResult:
    observation: Observation
    reward: float
    success: bool
    terminated: bool
    info: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """A simulator that runs the tasks of one suite; one env per task, reused across episodes.

    A vectorised backend (`vectorised = True`, built with `num_envs=N > 1`) steps N environments of the current
    task at once: `reset_envs` starts episodes in chosen slots, `step_envs` steps every slot with one batched call.
    """

    name: str = ""
    vectorised: bool = False
    """Whether the backend accepts `num_envs > 1` (`vlascore run --num-envs`)."""
    num_envs: int = 1
    """Environments stepped together; 1: one at a time through reset() and step()."""

    @abstractmethod
    def make(self, task: TaskSpec) -> None:
        """Build (or switch to an already built) environment for `task`."""

    @abstractmethod
    def reset(self, seed: int) -> Observation:
        """Start an episode of the current task with `seed`; same seed -> same initial state."""

    @abstractmethod
    def step(self, action: np.ndarray) -> StepResult:
        """Apply one action vector of the task's action space."""

    def reset_envs(self, seeds: dict[int, int]) -> dict[int, Observation]:
        """Vectorised backends: start an episode in each slot of `seeds` (slot -> seed), leaving the other slots as
        they are; the same seed gives the same initial state as reset(seed)."""
        raise NotImplementedError(f"backend {self.name!r} is not vectorised")

    def step_envs(self, actions: np.ndarray) -> list[StepResult]:
        """Vectorised backends: apply row i of `actions` (num_envs x dim) to slot i, all slots in one step. Slots
        with no episode running are stepped too (any action); their results are ignored."""
        raise NotImplementedError(f"backend {self.name!r} is not vectorised")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release simulator resources."""

    def describe(self) -> dict[str, Any]:
        """Backend options worth storing with the run."""
        return {}


def normalise_quat_pose(pose: Any) -> np.ndarray:
    """Any 7-vector-like pose (torch or numpy, batched with one row or not) as a float64 array."""
    arr = np.asarray(pose.cpu().numpy() if hasattr(pose, "cpu") else pose, dtype=np.float64)
    return arr.reshape(-1)[:7].copy()
