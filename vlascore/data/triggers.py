"""The scene layer of dual-layer pruning: "reasoning triggers", one registry of detectors.

The paper retrains an event-boundary detector (DDM-Net) on a few hand-labelled trajectories. vlascore ships no
DDM-Net; it ships three triggers behind one interface (a subclass of `SceneTrigger` returning one bool per step):

- `frame-diff`: needs no training. A stand-in for an event-boundary detector, not DDM-Net: it marks the frames where
  the difference between consecutive frames (the motion a fixed camera sees) has a local minimum, i.e. where the
  arm settles between two movements, and the steps within `radius` of them.
- `intention`: the steps within `radius` of a change in the policy's own stated intention (sub-task) text.
- `learned`: a small torch model trained on your labels (`vlascore data train-trigger`; vlascore/data/learned.py).

Third-party triggers register through the `vlascore.triggers` entry-point group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from vlascore.data.frames import motion, small_grey
from vlascore.data.trajectory import Trajectory, TrajectoryError
from vlascore.registry import OptionError, Registry, UnknownPluginError, construct


class TriggerError(TrajectoryError):
    """A trigger that cannot be built with the options given, or cannot run on a source; says what to do."""


class SceneTrigger(ABC):
    """Marks the steps of an episode where reasoning is worth keeping, from what the scene shows."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    """One line for `vlascore data triggers`."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        """The options as given (`-T key=value`), stored with the pruning record."""

    @abstractmethod
    def scene_labels(self, traj: Trajectory) -> np.ndarray:
        """(N,) bool, one per step of `traj`."""

    def needs(self) -> frozenset[str]:
        """What it reads besides the steps: "frames", "intention" or "reasoning" (a source without it is refused
        before any episode is labelled)."""
        return frozenset()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "options": dict(self.options)}


TRIGGERS: Registry[type[SceneTrigger]] = Registry("scene trigger", "vlascore.triggers", base=SceneTrigger)
TRIGGERS.register("frame-diff", "vlascore.data.triggers:FrameDiffTrigger")
TRIGGERS.register("intention", "vlascore.data.triggers:IntentionTrigger")
TRIGGERS.register("learned", "vlascore.data.learned:LearnedTrigger")


def make_trigger(name: str, options: dict[str, Any] | None = None) -> SceneTrigger:
    """The registered trigger `name` built with `options`, or TriggerError naming the options it takes."""
    try:
        cls = TRIGGERS.get(name)
    except UnknownPluginError as exc:
        raise TriggerError(str(exc)) from None
    try:  # -T key=value text takes the types the trigger declares, as -M and -B do (vlascore.registry.construct)
        return construct(cls, dict(options or {}), f"trigger {name!r}")
    except OptionError as exc:
        raise TriggerError(str(exc)) from None


def option_number(name: str, value: Any, kind: type, low: float, high: float | None = None) -> Any:
    try:
        out = kind(value)
    except (TypeError, ValueError):
        raise TriggerError(f"trigger option {name}={value!r} must be a {kind.__name__}") from None
    if isinstance(value, bool) or out < low or (high is not None and out > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise TriggerError(f"trigger option {name}={value!r} must be {bound}")
    return out


def band(events: np.ndarray, n: int, radius: int) -> np.ndarray:
    """(n,) bool: True within `radius` steps (indices) of any event index."""
    out = np.zeros(n, dtype=bool)
    for e in np.asarray(events, dtype=np.int64).tolist():
        out[max(0, e - radius) : min(n, e + radius + 1)] = True
    return out


def step_rows(traj: Trajectory, steps: np.ndarray) -> np.ndarray:
    """Row indices of `traj` for step numbers `steps` (a frame after the last step maps to the last row)."""
    rows = np.searchsorted(traj.steps, steps)
    return np.clip(rows, 0, len(traj) - 1)


class FrameDiffTrigger(SceneTrigger):
    name = "frame-diff"
    summary = "no training: pauses in the camera's frame difference (a stand-in, not DDM-Net)"

    def needs(self) -> frozenset[str]:
        return frozenset({"frames"})

    def __init__(self, window: int = 1, radius: int = 1, side: int = 64) -> None:
        super().__init__(window=window, radius=radius, side=side)
        self.window = option_number("window", window, int, 1, 50)
        """A boundary is the lowest motion energy within this many frames on either side."""
        self.radius = option_number("radius", radius, int, 0, 50)
        """Steps marked on either side of a boundary."""
        self.side = option_number("side", side, int, 4, 512)
        """Frames are shrunk to at most this many pixels a side before differencing."""

    def energy(self, frames: np.ndarray) -> np.ndarray:
        """(M,) mean absolute grey difference of each frame from the previous one (inf for the first)."""
        e = np.abs(motion(small_grey(frames, self.side))).mean(axis=(1, 2)).astype(np.float64)
        if len(e):
            e[0] = np.inf
        return e

    def boundaries(self, frames: np.ndarray) -> np.ndarray:
        """Frame indices where the motion energy has a local minimum: lower than the frame before, and no higher
        than any other within `window` frames. Manipulation phases end where the arm settles (the target reached,
        the gripper closing), which a fixed camera sees as a dip in frame difference."""
        e = self.energy(frames)
        w = self.window
        # Frame 1's difference has no predecessor to dip below.
        peaks = [k for k in range(2, len(e) - 1) if e[k] < e[k - 1] and e[k] <= e[max(1, k - w) : k + w + 1].min()]
        return np.asarray(peaks, dtype=np.int64)

    def scene_labels(self, traj: Trajectory) -> np.ndarray:
        if traj.frames is None:
            raise TriggerError(f"episode {traj.episode_id!r} has no frames: the frame-diff trigger needs them")
        frames, frame_steps = traj.frames()
        events = step_rows(traj, np.asarray(frame_steps)[self.boundaries(frames)])
        return band(events, len(traj), self.radius)


class IntentionTrigger(SceneTrigger):
    name = "intention"
    summary = "where the policy's stated intention (sub-task) text changes"

    def __init__(self, radius: int = 1, field: str = "intention") -> None:
        super().__init__(radius=radius, field=field)
        self.radius = option_number("radius", radius, int, 0, 50)
        if field not in ("intention", "reasoning"):
            raise TriggerError(f"trigger option field={field!r} must be intention or reasoning")
        self.field = field

    def needs(self) -> frozenset[str]:
        return frozenset({self.field})

    def changes(self, traj: Trajectory) -> np.ndarray:
        """Row indices where the text differs from the previous step's (whitespace and case ignored)."""
        texts = [" ".join(t.split()).casefold() for t in getattr(traj, self.field)]
        return np.asarray([i for i in range(1, len(texts)) if texts[i] != texts[i - 1]], dtype=np.int64)

    def scene_labels(self, traj: Trajectory) -> np.ndarray:
        return band(self.changes(traj), len(traj), self.radius)
