"""The kinematic layer against hand computations on constructed trajectories."""

from __future__ import annotations

import numpy as np

from vlascore.adapters.conventions import to_matrix
from vlascore.data.kinematic import acceleration_norm, action_labels, gripper_flips, rotation_increments
from vlascore.data.trajectory import Trajectory


def traj(position: np.ndarray, yaw: np.ndarray | None = None, closed: list[bool] | None = None) -> Trajectory:
    n = len(position)
    yaw = np.zeros(n) if yaw is None else yaw
    rotation = to_matrix(np.stack([np.zeros(n), np.zeros(n), yaw], axis=1), "euler_xyz")
    return Trajectory(
        episode_id="e",
        task="t",
        steps=np.arange(n),
        position=np.asarray(position, dtype=float),
        rotation=rotation,
        gripper_closed=np.zeros(n, dtype=bool) if closed is None else np.array(closed),
        reasoning=["r"] * n,
        intention=[""] * n,
    )


def line(n: int, velocity: tuple[float, float, float]) -> np.ndarray:
    return np.outer(np.arange(n), velocity) + np.array([0.3, -0.1, 0.2])


def test_constant_velocity_has_no_label() -> None:
    t = traj(line(30, (0.01, -0.004, 0.002)), yaw=np.linspace(0.0, 0.6, 30))  # also turning at a constant rate
    assert not action_labels(t).any()
    assert acceleration_norm(t.position, t.rotation).max() < 1e-9


def test_gripper_flip_is_labelled_at_the_step_it_changes() -> None:
    closed = [False] * 7 + [True] * 8 + [False] * 5
    t = traj(line(20, (0.01, 0, 0)), closed=closed)
    assert np.flatnonzero(gripper_flips(t.gripper_closed)).tolist() == [7, 15]
    assert np.flatnonzero(action_labels(t)).tolist() == [7, 15]


def test_sharp_turn_is_labelled_at_the_corner() -> None:
    first = line(11, (0.01, 0, 0))  # along x to step 10, then along y
    second = first[-1] + np.outer(np.arange(1, 10), (0, 0.01, 0))
    t = traj(np.vstack([first, second]))
    acc = acceleration_norm(t.position, t.rotation)
    # Hand computation: p(11) - 2 p(10) + p(9) = (0.01, 0.01, 0) - (0.01, 0, 0) ... = (-0.01, 0.01, 0)
    assert np.isclose(acc[10], np.hypot(0.01, 0.01))
    assert np.allclose(np.delete(acc, 10), 0.0, atol=1e-12)
    assert np.flatnonzero(action_labels(t)).tolist() == [10]


def test_threshold_is_the_mean_of_the_interior_steps() -> None:
    x = np.array([0.0, 1.0, 3.0, 3.0, 3.0])  # second differences at 1, 2, 3: 1, -2, 0 -> norms 1, 2, 0, mean 1
    t = traj(np.stack([x, np.zeros(5), np.zeros(5)], axis=1))
    assert np.allclose(acceleration_norm(t.position, t.rotation), [0, 1, 2, 0, 0])
    assert np.flatnonzero(action_labels(t)).tolist() == [2]  # strictly above the mean


def test_rotation_is_differenced_on_the_group_across_the_angle_wrap() -> None:
    yaw = np.pi - 0.3 + 0.1 * np.arange(8)  # crosses +pi, where the Euler angle jumps to -pi
    t = traj(np.zeros((8, 3)), yaw=yaw)
    assert np.allclose(rotation_increments(t.rotation)[:, 2], 0.1)
    assert not action_labels(t).any()
    yaw_turn = yaw.copy()
    yaw_turn[5:] += 0.2 * np.arange(1, 4)  # the turn rate jumps from 0.1 to 0.3 rad per step at step 4
    acc = acceleration_norm(t.position, traj(np.zeros((8, 3)), yaw=yaw_turn).rotation)
    assert np.isclose(acc[4], 0.2) and np.flatnonzero(acc > 1e-9).tolist() == [4]


def test_short_trajectories() -> None:
    assert not action_labels(traj(np.zeros((2, 3)))).any()
    assert action_labels(traj(np.zeros((2, 3)), closed=[False, True])).tolist() == [False, True]
