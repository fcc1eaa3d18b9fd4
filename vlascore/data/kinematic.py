"""The kinematic (action) layer of dual-layer pruning: parameter-free, from the end-effector pose and gripper.

A step gets action label 1 where the norm of the second finite difference of the 6-D pose T(t) exceeds its mean
over the trajectory, or where the binary gripper state G(t) flips. The 6-D pose is the position (metres) and the
orientation (radians). Orientation is differenced on the rotation group, not on angle coordinates (Euler angles
jump by 2 pi at +-pi; a quaternion is double-valued): with w(t) the rotation vector of R(t+1) R(t)^T,

    d2T(t) = [ p(t+1) - 2 p(t) + p(t-1),  w(t) - w(t-1) ]      for 0 < t < N-1.

The ends have no second difference and get no acceleration label. Norms below `FLOOR` count as zero, so a
constant-velocity trajectory (whose differences are float noise) has no label.
"""

from __future__ import annotations

import numpy as np

from vlascore.adapters.conventions import from_matrix
from vlascore.data.trajectory import Trajectory

FLOOR = 1e-6
"""Second differences below this norm (a micrometre or microradian per step squared) are float noise."""


def rotation_increments(rotation: np.ndarray) -> np.ndarray:
    """(N-1, 3) rotation vectors of R(t+1) R(t)^T (world frame), vectorised for the small steps of a trajectory."""
    if len(rotation) < 2:
        return np.zeros((0, 3))
    m = rotation[1:] @ np.swapaxes(rotation[:-1], -1, -2)
    cos = np.clip((np.trace(m, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
    angle = np.arccos(cos)
    skew = np.stack([m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], axis=-1)
    sin = np.sqrt(np.clip(1 - cos * cos, 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(sin > 1e-8, angle / (2 * sin), 0.5)  # angle -> 0: w = skew / 2
    out = skew * factor[:, None]
    flipped = (sin <= 1e-8) & (cos < 0)  # a half-turn in one step: the skew part vanishes, take the exact form
    if flipped.any():
        out[flipped] = from_matrix(m[flipped], "axis_angle")
    return out


def acceleration_norm(position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(N,) norm of the pose's second finite difference; 0 at the two ends, where it is not defined."""
    n = len(position)
    out = np.zeros(n)
    if n < 3:
        return out
    d2p = position[2:] - 2 * position[1:-1] + position[:-2]
    dw = np.diff(rotation_increments(rotation), axis=0)
    out[1:-1] = np.sqrt((d2p * d2p).sum(axis=1) + (dw * dw).sum(axis=1))
    return out


def gripper_flips(closed: np.ndarray) -> np.ndarray:
    """(N,) True at the steps where the binary gripper state differs from the previous step's."""
    out = np.zeros(len(closed), dtype=bool)
    out[1:] = closed[1:] != closed[:-1]
    return out


def acceleration_labels(position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(N,) True where the acceleration norm exceeds its mean over the trajectory's interior steps."""
    acc = acceleration_norm(position, rotation)
    if len(acc) < 3:
        return np.zeros(len(acc), dtype=bool)
    threshold = max(float(acc[1:-1].mean()), FLOOR)
    return acc > threshold


def action_labels(traj: Trajectory) -> np.ndarray:
    """The kinematic layer: acceleration above the trajectory's mean, or a gripper flip."""
    return acceleration_labels(traj.position, traj.rotation) | gripper_flips(traj.gripper_closed)
