"""One episode as the pruning layers see it, whatever it was read from (a vlascore run, a LeRobot dataset)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

FrameLoader = Callable[[], tuple[np.ndarray, np.ndarray]]
"""Returns (frames N x H x W x 3 uint8, the step index of each frame); called only by triggers that look."""


class TrajectoryError(ValueError):
    """An episode or dataset that cannot be read as trajectories; the message says what to fix."""


@dataclass
class Trajectory:
    """Per-step arrays of one episode, in step order."""

    episode_id: str
    task: str
    steps: np.ndarray
    """Step index of each row (0-based, increasing)."""
    position: np.ndarray
    """(N, 3) end-effector position, metres."""
    rotation: np.ndarray
    """(N, 3, 3) end-effector orientation as rotation matrices."""
    gripper_closed: np.ndarray
    """(N,) bool: the binary gripper state G(t) (True = closed)."""
    reasoning: list[str]
    """Reasoning text per step ("" where there is none)."""
    intention: list[str]
    """Stated intention / sub-task per step ("" where there is none)."""
    frames: FrameLoader | None = field(default=None, repr=False)
    """Loads the episode's frames on demand (None: the source has no frames)."""

    def __post_init__(self) -> None:
        n = len(self.steps)
        shapes = {
            "position": (self.position.shape, (n, 3)),
            "rotation": (self.rotation.shape, (n, 3, 3)),
            "gripper_closed": (self.gripper_closed.shape, (n,)),
        }
        for name, (got, want) in shapes.items():
            if got != want:
                raise TrajectoryError(f"episode {self.episode_id!r}: {name} has shape {got}, expected {want}")
        if len(self.reasoning) != n or len(self.intention) != n:
            raise TrajectoryError(f"episode {self.episode_id!r}: texts do not have one entry per step ({n})")
        if not (np.isfinite(self.position).all() and np.isfinite(self.rotation).all()):
            raise TrajectoryError(f"episode {self.episode_id!r}: the end-effector pose has NaN or inf values")

    def __len__(self) -> int:
        return len(self.steps)
