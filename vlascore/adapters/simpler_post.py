"""Post-processing of chunk-predicting policies as SimplerEnv's CogACT-lineage wrappers do it (CogACT, SpatialVLA,
InstructVLA): temporal ensembling of action chunks and their gripper rule.

Ensembling: these wrappers predict n actions at every step but execute one, a weighted mean of the current step's
predictions from the last `horizon` chunks (the newest chunk's first action, the one before's second, ...). Two
weightings are in use: exponential in the chunk's age (SimplerEnv's ActionEnsembler, SpatialVLA; a negative
temperature favours recent chunks) and exponential in the cosine similarity to the newest prediction (the
AdaptiveEnsembler of CogACT and InstructVLA).

Gripper: as `token_policy.GripperPost` (WidowX: +1 / -1 at 0.5; generic: 2g - 1) except for the Google Robot's
sticky relative command, where these wrappers latch the reference openness and move it only when a change fires,
so the slow drift of an ensembled openness still triggers one (OpenVLA's wrapper compares with the previous call).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from vlascore.adapters.token_policy import ROBOTS, GripperPost, arm_convention, robot_for
from vlascore.suites import ActionSpace


class ChunkEnsembler:
    """Keeps the last `horizon` chunks of an episode; `__call__` takes a new (n, dim) chunk and returns (dim,)."""

    def __init__(self, horizon: int) -> None:
        if horizon < 1:
            raise ValueError(f"ensemble horizon must be >= 1, got {horizon}")
        self.horizon = int(horizon)
        self._chunks: deque[np.ndarray] = deque(maxlen=self.horizon)

    def reset(self) -> None:
        self._chunks.clear()

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or len(chunk) < self.horizon:
            raise ValueError(
                f"ensembling over {self.horizon} chunks needs (n >= {self.horizon}, dim) chunks, "
                f"got shape {chunk.shape}"
            )
        self._chunks.append(chunk)
        n = len(self._chunks)
        # oldest first: the chunk predicted `age` calls ago holds this step's action at index `age`
        preds = np.stack([c[n - 1 - i] for i, c in enumerate(self._chunks)])
        w = self.weights(preds)
        return np.asarray((w / w.sum()) @ preds)

    def weights(self, preds: np.ndarray) -> np.ndarray:
        """Unnormalised weight of each prediction, oldest first."""
        raise NotImplementedError


class ExponentialEnsembler(ChunkEnsembler):
    """Weight exp(-temperature * i) for the i-th oldest prediction (i = 0 the oldest): temperature < 0 favours
    recent chunks, > 0 old ones, 0 is the plain mean."""

    def __init__(self, horizon: int, temperature: float) -> None:
        super().__init__(horizon)
        self.temperature = float(temperature)

    def weights(self, preds: np.ndarray) -> np.ndarray:
        return np.exp(-self.temperature * np.arange(len(preds)))


class CosineEnsembler(ChunkEnsembler):
    """Weight exp(alpha * cos(prediction, newest prediction)): predictions that agree with the newest count more."""

    def __init__(self, horizon: int, alpha: float) -> None:
        super().__init__(horizon)
        self.alpha = float(alpha)

    def weights(self, preds: np.ndarray) -> np.ndarray:
        ref = preds[-1]
        cos = preds @ ref / (np.linalg.norm(preds, axis=1) * np.linalg.norm(ref) + 1e-7)
        return np.exp(self.alpha * cos)


class LatchedGripper(GripperPost):
    """Predicted openness (0 closed .. 1 open) -> the robot's gripper command, with the latched Google Robot rule."""

    def __call__(self, openness: float) -> float:
        if self.robot != "google":
            return super().__call__(openness)
        if self.previous is None:  # the first call of an episode commands no change
            change, self.previous = 0.0, openness
        else:
            change = self.previous - openness
        if self.held is None and abs(change) > 0.5:
            self.held, self.count, self.previous = change, 0, openness
        if self.held is not None:
            change, self.count = self.held, self.count + 1
            if self.count >= self.repeat:
                self.held, self.count = None, 0
        return change


def make_gripper(unnorm_key: str, robot: str = "auto", sticky_repeat: int = 10) -> LatchedGripper:
    """The gripper rule for `robot` (`auto`: the embodiment the statistics' dataset implies)."""
    if robot != "auto" and robot not in ROBOTS:
        raise ValueError(f"unknown robot {robot!r}: use auto, {', '.join(ROBOTS)}")
    return LatchedGripper(robot_for(unnorm_key) if robot == "auto" else robot, sticky_repeat)  # type: ignore[arg-type]


def arm_space(gripper: GripperPost) -> ActionSpace:
    """The robot's end-effector deltas (Open X-Embodiment: metres and roll-pitch-yaw radians; LIBERO: its
    controller's axis-angle commands, see token_policy.arm_convention), then the gripper's convention."""
    rotation, normalized = arm_convention(gripper.robot)
    return ActionSpace(
        mode="ee_delta",
        rotation=rotation,
        dim=7,
        normalized=normalized,
        gripper_open=gripper.gripper_open,
        gripper_binary=gripper.gripper_binary,
        gripper=gripper.gripper_mode,
    )


def apply_gripper(actions: np.ndarray, gripper: GripperPost) -> np.ndarray:
    """(k, 7) actions whose last entry is the predicted openness -> commands, in execution order."""
    out = np.array(actions, dtype=np.float64).reshape(-1, 7)
    for row in out:
        row[-1] = gripper(float(row[-1]))
    return out


def parse_ensemble(value: Any, what: str) -> float | None:
    """An `ensemble` option: its coefficient, or None for none / off / false (chunks executed as predicted)."""
    if value is None or value is False or (isinstance(value, str) and value.lower() in ("none", "off", "false")):
        return None
    if value is True:
        raise ValueError(f"ensemble=true: give the {what} (or none)")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"ensemble must be the {what} or none, got {value!r}") from None


def execute_steps(ensembling: bool, execute: Any) -> int | None:
    """Actions run per call: one ensembled action, or `execute` of each chunk (None: all)."""
    if ensembling:
        if execute not in (None, 1):
            raise ValueError(
                f"execute={execute} with ensembling: an ensembled step is one action; pass "
                "-M ensemble=none to run several actions of each chunk"
            )
        return 1
    return None if execute is None else int(execute)
