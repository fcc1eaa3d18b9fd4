"""Action conventions: convert what an adapter emits into what the task's controller takes.

Checkpoints speak many conventions (OpenVLA on Bridge: metre/radian deltas with roll-pitch-yaw and a 0/1
gripper; others axis-angle, quaternions or 6D rotations, absolute targets, a closing-positive gripper). An
adapter declares its own ActionSpace honestly; `plan_conversion` builds the exact mapping to the task's, or
raises ConventionError when none exists (joint vs end-effector space, an unknown controller scale), before
step 0. Conversions are recorded in the run's adapter info.

Rotation names: `euler_xyz` is intrinsic X-Y-Z (R = Rx(a) Ry(b) Rz(c)), what ManiSkill's pd_ee_delta_pose
applies; `euler_rpy` is roll-pitch-yaw about fixed axes (R = Rz(yaw) Ry(pitch) Rx(roll), transforms3d's
`sxyz`), the convention of Bridge / Open X-Embodiment data; `quaternion` is w x y z; `rot6d` is the first two
columns of the rotation matrix; `axis_angle` is the rotation vector.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlascore.adapters.base import (
    Adapter,
    ConventionError,
    EpisodeContext,
    PolicyStep,
    check_chunking,
    validate_actions,
)
from vlascore.backends.base import Observation
from vlascore.suites import ActionSpace, TaskSpec

ROTATION_DIMS = {"euler_xyz": 3, "euler_rpy": 3, "axis_angle": 3, "quaternion": 4, "rot6d": 6, "none": 0}


@dataclass(frozen=True)
class ControllerScale:
    """Units per normalised action unit of a delta controller: metres for position, radians for rotation."""

    pos: float
    rot: float


# control_mode -> scale of its normalised actions. ManiSkill's pd_ee_delta_pose multiplies the rotation by
# rot_lower (-0.1), so +1 turns by -0.1 rad; the toy world moves 0.05 m per unit and ignores rotation.
CONTROLLER_SCALES: dict[str, ControllerScale] = {
    "pd_ee_delta_pose": ControllerScale(pos=0.1, rot=-0.1),
    "ee_delta": ControllerScale(pos=0.05, rot=0.1),
    # robosuite's OSC_POSE (LIBERO): +-1 moves the goal by +-0.05 m and turns it by +-0.5 rad (axis-angle entries)
    "OSC_POSE": ControllerScale(pos=0.05, rot=0.5),
}


def _axis(axis: int, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros((*angle.shape, 3, 3))
    i, j = [(1, 2), (0, 2), (0, 1)][axis]
    m[..., axis, axis] = 1.0
    m[..., i, i], m[..., j, j] = c, c
    sign = -1.0 if axis == 1 else 1.0  # rotation about y has the sine terms the other way round
    m[..., i, j], m[..., j, i] = -s * sign, s * sign
    return m


def _axis_angle_to_matrix(v: np.ndarray) -> np.ndarray:
    theta = np.linalg.norm(v, axis=-1, keepdims=True)
    k = np.divide(v, theta, out=np.zeros_like(v), where=theta > 1e-12)
    kx = np.zeros((*v.shape[:-1], 3, 3))
    kx[..., 0, 1], kx[..., 0, 2], kx[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    kx = kx - np.swapaxes(kx, -1, -2)
    t = theta[..., None]
    return np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * kx @ kx


def _quat_to_matrix(q: np.ndarray) -> np.ndarray:
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def _rot6d_to_matrix(r: np.ndarray) -> np.ndarray:
    a, b = r[..., 0:3], r[..., 3:6]  # columns 1 and 2, Gram-Schmidt'd (the representation need not be exact)
    c1 = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b - np.sum(c1 * b, axis=-1, keepdims=True) * c1
    c2 = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.stack([c1, c2, np.cross(c1, c2)], axis=-1)


def to_matrix(rot: np.ndarray, kind: str) -> np.ndarray:
    """(..., d) rotations in representation `kind` -> (..., 3, 3) matrices."""
    if kind == "euler_xyz":
        return _axis(0, rot[..., 0]) @ _axis(1, rot[..., 1]) @ _axis(2, rot[..., 2])
    if kind == "euler_rpy":
        return _axis(2, rot[..., 2]) @ _axis(1, rot[..., 1]) @ _axis(0, rot[..., 0])
    if kind == "axis_angle":
        return _axis_angle_to_matrix(rot)
    if kind == "quaternion":
        return _quat_to_matrix(rot)
    if kind == "rot6d":
        return _rot6d_to_matrix(rot)
    raise ValueError(f"no rotation matrix for representation {kind!r}")


def _matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Shepperd's method, choosing the largest pivot for stability; w >= 0."""
    flat = m.reshape(-1, 3, 3)
    out = np.zeros((len(flat), 4))
    for n, r in enumerate(flat):
        tr = np.trace(r)
        diag = np.array([tr, r[0, 0], r[1, 1], r[2, 2]])
        k = int(np.argmax(diag))
        if k == 0:
            s = 2 * np.sqrt(1 + tr)
            v = [s / 4, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
        elif k == 1:
            s = 2 * np.sqrt(1 + r[0, 0] - r[1, 1] - r[2, 2])
            v = [(r[2, 1] - r[1, 2]) / s, s / 4, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
        elif k == 2:
            s = 2 * np.sqrt(1 - r[0, 0] + r[1, 1] - r[2, 2])
            v = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, s / 4, (r[1, 2] + r[2, 1]) / s]
        else:
            s = 2 * np.sqrt(1 - r[0, 0] - r[1, 1] + r[2, 2])
            v = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, s / 4]
        q = np.asarray(v)
        out[n] = q if q[0] >= 0 else -q
    return out.reshape(*m.shape[:-2], 4)


def from_matrix(m: np.ndarray, kind: str) -> np.ndarray:
    """(..., 3, 3) matrices -> (..., d) in representation `kind` (Euler angles in (-pi, pi])."""
    if kind == "euler_xyz":  # R = Rx(a) Ry(b) Rz(c): R[0,2] = sin b
        b = np.arcsin(np.clip(m[..., 0, 2], -1, 1))
        a = np.arctan2(-m[..., 1, 2], m[..., 2, 2])
        c = np.arctan2(-m[..., 0, 1], m[..., 0, 0])
        return np.stack([a, b, c], -1)
    if kind == "euler_rpy":  # R = Rz(y) Ry(p) Rx(r): R[2,0] = -sin p
        p = np.arcsin(np.clip(-m[..., 2, 0], -1, 1))
        r = np.arctan2(m[..., 2, 1], m[..., 2, 2])
        y = np.arctan2(m[..., 1, 0], m[..., 0, 0])
        return np.stack([r, p, y], -1)
    if kind == "quaternion":
        return _matrix_to_quat(m)
    if kind == "axis_angle":
        q = _matrix_to_quat(m)
        s = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
        angle = 2 * np.arctan2(s, q[..., :1])
        return np.divide(q[..., 1:] * angle, s, out=np.zeros_like(q[..., 1:]), where=s > 1e-12)
    if kind == "rot6d":
        return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)
    raise ValueError(f"no representation {kind!r}")


def convert_rotation(rot: np.ndarray, src: str, dst: str) -> np.ndarray:
    return rot if src == dst else from_matrix(to_matrix(rot, src), dst)


@dataclass
class ActionConverter:
    """A planned conversion from `src` to `dst` actions for one task; `steps` says what it does, in words."""

    src: ActionSpace
    dst: ActionSpace
    control_mode: str
    steps: list[str] = field(default_factory=list)
    _ops: list[Callable[[np.ndarray, np.ndarray | None], np.ndarray]] = field(default_factory=list, repr=False)

    @property
    def needs_pose(self) -> bool:
        return self.src.mode != self.dst.mode

    def __call__(self, actions: np.ndarray, ee_pose: np.ndarray | None = None) -> np.ndarray:
        """(k, src.dim) -> (k, dst.dim). `ee_pose` (x y z qw qx qy qz) is needed for absolute <-> delta."""
        a = np.asarray(actions, dtype=np.float64).reshape(-1, self.src.dim)
        if self.needs_pose and ee_pose is None:
            raise ConventionError("absolute <-> delta conversion needs the end-effector pose (proprio 'ee_pose')")
        pose = None if ee_pose is None else np.asarray(ee_pose, dtype=np.float64).reshape(-1)[:7]
        for op in self._ops:
            a = op(a, pose)
        return a


def _arm_layout(space: ActionSpace, who: str) -> int:
    """Rotation width of an end-effector space; errors when the declared dim does not add up."""
    rdim = ROTATION_DIMS[space.rotation]
    if space.dim != 3 + rdim + 1:
        raise ConventionError(
            f"{who} declares {space.mode} with {space.rotation} rotation and dim {space.dim}, but that layout "
            f"has 3 position + {rdim} rotation + 1 gripper = {3 + rdim + 1} entries"
        )
    return rdim


def plan_conversion(src: ActionSpace, task: TaskSpec) -> ActionConverter | None:
    """None when `src` already is the task's convention; else a converter, or ConventionError naming why not."""
    dst = task.action_space
    if src == dst:
        return None
    diffs = "; ".join(f"{k}: adapter {v!r} vs task {getattr(dst, k)!r}" for k, v in src if getattr(dst, k) != v)
    where = f"task {task.id!r} ({task.control_mode})"

    def refuse(why: str) -> ConventionError:
        return ConventionError(f"cannot convert the adapter's actions to {where}: {why}. Differences: {diffs}")

    if src.gripper != dst.gripper:
        raise refuse(
            f"the task's gripper takes {dst.gripper} commands and the adapter emits {src.gripper} ones; the "
            "two do not convert without the controller's state (for SimplerEnv's Google Robot, whose "
            "gripper is relative, load the adapter with its Google Robot gripper rule, e.g. -M robot=google)"
        )
    joint = {src.mode.startswith("joint"), dst.mode.startswith("joint")}
    if joint == {True, False}:
        raise refuse("joint-space and end-effector actions need the robot's kinematics, which vlascore does not do")
    conv = ActionConverter(src, dst, task.control_mode)
    if joint == {True}:
        if src.mode != dst.mode or src.dim != dst.dim or src.normalized != dst.normalized:
            raise refuse("joint-space actions convert only in their gripper convention")
        _add_gripper(conv, src, dst)
        return conv
    try:
        src_r = _arm_layout(src, "the adapter")
        _arm_layout(dst, f"task {task.id!r}")
    except ConventionError as exc:
        raise refuse(str(exc)) from None
    if (src.rotation, src.mode, src.normalized) != (dst.rotation, dst.mode, dst.normalized):
        _add_arm(conv, src_r, refuse)
    _add_gripper(conv, src, dst)
    return conv


def _add_arm(conv: ActionConverter, src_r: int, refuse: Callable[[str], ConventionError]) -> None:
    """Position and rotation, worked in metres and radians: un-scale, re-represent, re-reference, re-scale."""
    src, dst = conv.src, conv.dst
    scale = CONTROLLER_SCALES.get(conv.control_mode)
    for space, who in ((src, "adapter"), (dst, "task")):
        if not space.normalized:
            continue
        if space.mode != "ee_delta" or scale is None:
            raise refuse(
                f"the {who}'s normalised actions need the scale of control mode {conv.control_mode!r}, which is "
                f"unknown (known: {', '.join(CONTROLLER_SCALES)}); declare the adapter's actions in the task's units"
            )
        if space.rotation not in ("euler_xyz", "euler_rpy", "axis_angle", "none"):
            raise refuse(f"the {who}'s normalised {space.rotation} rotation has no per-axis scale")

    def arm(a: np.ndarray, pose: np.ndarray | None) -> np.ndarray:
        pos, rot, grip = a[:, :3], a[:, 3 : 3 + src_r], a[:, 3 + src_r :]
        if src.normalized:
            assert scale is not None
            pos, rot = pos * scale.pos, rot * scale.rot
        n = len(a)
        mat = to_matrix(rot, src.rotation) if src.rotation != "none" else np.broadcast_to(np.eye(3), (n, 3, 3))
        if src.mode != dst.mode:
            assert pose is not None
            cur_p, cur_r = pose[:3], to_matrix(pose[3:7], "quaternion")
            if src.mode == "ee_absolute":  # targets -> deltas, each relative to the previous target of the chunk
                prev_p = np.vstack([cur_p, pos[:-1]])
                prev_r = np.concatenate([cur_r[None], mat[:-1]])
                pos, mat = pos - prev_p, mat @ np.swapaxes(prev_r, -1, -2)
            else:  # deltas -> targets, accumulated along the chunk (root frame, rotation applied on the left)
                targets, r = [], cur_r
                for m in mat:
                    r = m @ r
                    targets.append(r)
                pos, mat = cur_p + np.cumsum(pos, axis=0), np.asarray(targets)
        rot = from_matrix(mat, dst.rotation) if dst.rotation != "none" else np.zeros((n, 0))
        if dst.normalized:
            assert scale is not None
            pos, rot = pos / scale.pos, rot / scale.rot
        return np.hstack([pos, rot, grip])

    conv._ops.append(arm)
    if src.mode != dst.mode:
        conv.steps.append(f"{src.mode} -> {dst.mode} (relative to the current end-effector pose; chunks chained)")
    if src.normalized != dst.normalized and scale is not None:
        unit = "normalised -> metres/radians" if src.normalized else "metres/radians -> normalised"
        conv.steps.append(f"{unit} ({scale.pos} m and {scale.rot} rad per unit, {conv.control_mode})")
    if src.rotation != dst.rotation:
        conv.steps.append(f"rotation {src.rotation} -> {dst.rotation}")


def _add_gripper(conv: ActionConverter, src: ActionSpace, dst: ActionSpace) -> None:
    if src.gripper_open == dst.gripper_open and (src.gripper_binary or not dst.gripper_binary):
        return

    def grip(a: np.ndarray, pose: np.ndarray | None) -> np.ndarray:
        a = a.copy()
        opening = a[:, -1] * src.gripper_open  # +1 open, -1 closed
        if dst.gripper_binary:
            opening = np.where(opening > 0, 1.0, -1.0)
        a[:, -1] = opening * dst.gripper_open
        return a

    conv._ops.append(grip)
    if src.gripper_open != dst.gripper_open:
        conv.steps.append("gripper sign flipped (open is " + ("+1" if dst.gripper_open == 1 else "-1") + ")")
    if dst.gripper_binary and not src.gripper_binary:
        conv.steps.append("gripper binarised at 0")


class ConvertedAdapter(Adapter):
    """Wraps an adapter so its actions arrive in each task's convention (Gymnasium-style action wrapper)."""

    def __init__(self, inner: Adapter, converters: dict[str, ActionConverter | None]) -> None:
        self.inner, self.converters = inner, converters
        self.config = inner.config
        self.name, self.chunk_size, self.execute_steps = inner.name, inner.chunk_size, inner.execute_steps
        self.reasons, self.uses_privileged_state = inner.reasons, inner.uses_privileged_state
        self._conv: ActionConverter | None = None
        self.action_space = inner.action_space

    def reset(self, context: EpisodeContext) -> None:
        self._conv = self.converters.get(context.task.id)
        self.action_space = context.task.action_space if self._conv else self.inner.action_space
        self.inner.reset(context)

    def _convert(self, step: PolicyStep, obs: Observation) -> PolicyStep:
        if self._conv is None:
            return step
        raw = validate_actions(step, self.inner)
        pose = obs.proprio.get("ee_pose") if self._conv.needs_pose else None
        return PolicyStep(action=self._conv(raw, pose), reasoning=step.reasoning, intention=step.intention)

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        return self._convert(self.inner.act(obs, instruction), obs)

    def act_batch(self, observations: list[Observation], instructions: list[str]) -> list[PolicyStep]:
        steps = self.inner.act_batch(observations, instructions)
        return [self._convert(s, o) for s, o in zip(steps, observations, strict=True)]

    def fork(self) -> Adapter:
        twin = ConvertedAdapter(self.inner.fork(), self.converters)  # converters are stateless: shared
        twin._conv, twin.action_space = self._conv, self.action_space
        return twin

    def batches_forks(self) -> bool:
        return self.inner.batches_forks()

    def act_forks(
        self, forks: list[Adapter], observations: list[Observation], instructions: list[str]
    ) -> list[PolicyStep]:
        wrapped = [f for f in forks if isinstance(f, ConvertedAdapter)]
        if len(wrapped) != len(forks) or not self.batches_forks():
            return super().act_forks(forks, observations, instructions)
        steps = self.inner.act_forks([f.inner for f in wrapped], observations, instructions)
        return [f._convert(s, o) for f, s, o in zip(wrapped, steps, observations, strict=True)]

    def info(self) -> dict[str, Any]:
        conversions = {t: {"from": c.src.model_dump(), "steps": c.steps} for t, c in self.converters.items() if c}
        return {**self.inner.info(), "conversions": conversions}

    def close(self) -> None:
        self.inner.close()


def check_conventions(adapter: Adapter, task: TaskSpec) -> ActionConverter | None:
    """The conversion `adapter` needs on `task` (None: none); ConventionError for bad chunking or no conversion."""
    check_chunking(adapter)
    if adapter.speaks_task_convention:
        return None
    return plan_conversion(adapter.action_space, task)


def adapt_to_tasks(adapter: Adapter, tasks: list[TaskSpec]) -> Adapter:
    """`adapter` itself when every task takes its actions as they are; else wrapped with per-task converters.

    Raises ConventionError (before any step) for a task whose convention cannot be reached.
    """
    check_chunking(adapter)
    if adapter.speaks_task_convention:
        return adapter
    converters = {t.id: plan_conversion(adapter.action_space, t) for t in tasks}
    return ConvertedAdapter(adapter, converters) if any(converters.values()) else adapter
