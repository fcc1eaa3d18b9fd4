"""Episode grids: a task's episodes as explicit simulator settings rather than random seeds.

SimplerEnv evaluates a policy on fixed grids (robot start poses x object poses x scene variants), not on seeds.
A task's `grid` is a list of blocks; each block is the Cartesian product of its axes (first axis slowest, as
SimplerEnv's nested loops run), and the task's episodes are the blocks' cells one after another. Episode index i
(the task's "seed") names cell i, so episode ids stay `<task>-<i>`.

Each setting says where it goes: `env_id` (a different simulator environment, e.g. a VA distractor scene),
`make` (build-time keyword arguments: scene, overlay image, URDF variant, lighting) or `reset` (reset options:
initial robot and object poses, an episode id). YAML shorthands (`xy`, `rpy`, `range`) are expanded into explicit
values when the suite loads, so the fingerprint covers every number an episode uses.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class GridValue(BaseModel):
    """One setting along an axis."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str
    """Short name used in per-variant tables (e.g. `horizontal`, `x=-0.350,y=0.020`)."""
    env_id: str | None = None
    """Simulator environment for this setting (overrides the block's and the task's)."""
    make: dict[str, Any] = {}
    """Build-time keyword arguments (merged over the block's and the task's env_kwargs)."""
    reset: dict[str, Any] = {}
    """Reset options (merged deeply over the block's)."""


class GridAxis(BaseModel):
    """A named list of settings; a block runs every combination of its axes' values."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    values: list[GridValue] = Field(min_length=1)


class EpisodeBlock(BaseModel):
    """A product of axes under one variant: e.g. one Variant Aggregation block of a SimplerEnv script."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    variant: str = "base"
    """The block's label; blocks sharing it form one variant in per-variant results."""
    env_id: str | None = None
    make: dict[str, Any] = {}
    reset: dict[str, Any] = {}
    axes: list[GridAxis] = []

    @property
    def size(self) -> int:
        return math.prod(len(a.values) for a in self.axes)


class EpisodeCell(BaseModel):
    """What one episode of a grid task builds and resets with."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    index: int
    env_id: str
    make: dict[str, Any]
    reset: dict[str, Any]
    labels: dict[str, str]
    """`variant` and axis name -> the value's label."""


def env_key(env_id: str, build_kwargs: dict[str, Any]) -> str:
    """Episodes whose env id and complete build keyword arguments match share one built environment."""
    return json.dumps([env_id, build_kwargs], sort_keys=True, default=str)


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def grid_size(blocks: list[EpisodeBlock]) -> int:
    return sum(b.size for b in blocks)


def grid_cell(blocks: list[EpisodeBlock], index: int, env_id: str, env_kwargs: dict[str, Any]) -> EpisodeCell:
    """Cell `index` of the grid; the task's `env_id` and `env_kwargs` are the base every setting overrides."""
    if index < 0 or index >= grid_size(blocks):
        raise IndexError(f"episode {index} is outside the grid's {grid_size(blocks)} episodes")
    rest = index
    for block in blocks:
        if rest >= block.size:
            rest -= block.size
            continue
        labels = {"variant": block.variant}
        chosen = block.env_id or env_id
        make = deep_merge(dict(env_kwargs), block.make)
        reset = dict(block.reset)
        picks = []  # mixed radix, last axis fastest
        for axis in reversed(block.axes):
            rest, i = divmod(rest, len(axis.values))
            picks.append((axis, axis.values[i]))
        for axis, value in reversed(picks):
            labels[axis.name] = value.label
            chosen = value.env_id or chosen
            make = deep_merge(make, value.make)
            reset = deep_merge(reset, value.reset)
        return EpisodeCell(index=index, env_id=chosen, make=make, reset=reset, labels=labels)
    raise AssertionError("unreachable")  # pragma: no cover


# ---- YAML shorthands, expanded before validation ------------------------------------------------------------


MAX_AXIS_VALUES = 100_000
"""Most values one grid axis may expand to (a few characters of YAML must not expand to billions)."""


def _bounded(count: int, name: str) -> None:
    if count > MAX_AXIS_VALUES:
        raise ValueError(f"grid axis {name!r} expands to {count} values, more than {MAX_AXIS_VALUES}")


def linspace(spec: Any, what: str) -> list[float]:
    """SimplerEnv's `start stop count` ranges: np.linspace(start, stop, count)."""
    if not (isinstance(spec, list | tuple) and len(spec) == 3):
        raise ValueError(f"{what} must be [start, stop, count], got {spec!r}")
    start, stop, count = spec
    if int(count) != count or not 1 <= count <= MAX_AXIS_VALUES:
        raise ValueError(f"{what}: count must be an integer from 1 to {MAX_AXIS_VALUES}, got {count!r}")
    return [float(v) for v in np.linspace(float(start), float(stop), int(count))]


def _nest(path: str, value: Any) -> dict[str, Any]:
    """`robot_init_options.init_xy` -> {"robot_init_options": {"init_xy": value}}."""
    out: Any = value
    for part in reversed(path.split(".")):
        out = {part: out}
    return out


def quat_multiply(a: list[float], b: list[float]) -> list[float]:
    """Hamilton product of w x y z quaternions (sapien's Pose(q=a) * Pose(q=b) rotation)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return [
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ]


def euler_sxyz_to_quat(roll: float, pitch: float, yaw: float) -> list[float]:
    """transforms3d's euler2quat(r, p, y) (static x-y-z axes, R = Rz(y) Ry(p) Rx(r)) as w x y z."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return [
        cr * cp * cy + sr * sp * sy,
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
    ]


def _fmt(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".") if v else "0"


def rpy_quat(rpy: list[float], center: list[float]) -> list[float]:
    """SimplerEnv's robot start rotation: (Pose(q=euler2quat(r, p, y)) * Pose(q=center)).q, w x y z."""
    return quat_multiply(euler_sxyz_to_quat(*rpy), center)


def _expand_value(value: Any, axis: str) -> Any:
    """An explicit value may give a rotation as `rpy: {key, value: [r, p, y], center}`; it becomes a reset quat."""
    if not isinstance(value, dict) or "rpy" not in value:
        return value
    value = dict(value)
    spec = dict(value.pop("rpy"))
    rpy, key = spec.pop("value", None), spec.pop("key", None)
    center = [float(v) for v in spec.pop("center", [1.0, 0.0, 0.0, 0.0])]
    if not (isinstance(rpy, list) and len(rpy) == 3) or not key or spec:
        raise ValueError(f"grid axis {axis!r}: a value's `rpy` needs key, value: [r, p, y] and optional center")
    value["reset"] = deep_merge(value.get("reset", {}), _nest(key, rpy_quat([float(v) for v in rpy], center)))
    return value


def expand_axis(raw: dict[str, Any]) -> dict[str, Any]:
    """An axis in YAML, with shorthands, as {name, values: [...]}."""
    if not isinstance(raw, dict):
        raise ValueError(f"a grid axis must be a mapping, got {raw!r}")
    raw = dict(raw)
    name = raw.get("name", "?")
    forms = [k for k in ("values", "xy", "rpy", "range") if k in raw]
    if len(forms) != 1:
        raise ValueError(f"grid axis {name!r} needs exactly one of values, xy, rpy, range (has {forms or 'none'})")
    form = forms[0]
    spec = raw.pop(form)
    if form == "values":
        return {**raw, "values": [_expand_value(v, name) for v in spec]}
    if not isinstance(spec, dict) or "key" not in spec:
        raise ValueError(f"grid axis {name!r}: `{form}` needs a mapping with `key` (where the value goes)")
    spec = dict(spec)
    key = spec.pop("key")
    values: list[dict[str, Any]] = []
    if form == "xy":  # SimplerEnv: for x in linspace(x range): for y in linspace(y range)
        xs, ys = linspace(spec.get("x"), f"{name}.x"), linspace(spec.get("y"), f"{name}.y")
        _bounded(len(xs) * len(ys), name)
        values = [{"label": f"x={_fmt(x)},y={_fmt(y)}", "reset": _nest(key, [x, y])} for x in xs for y in ys]
    elif form == "rpy":  # SimplerEnv: (Pose(q=euler2quat(r, p, y)) * Pose(q=center)).q, r outermost
        center = [float(v) for v in spec.get("center", [1.0, 0.0, 0.0, 0.0])]
        rs, ps, ys = (linspace(spec.get(k, [0, 0, 1]), f"{name}.{k}") for k in "rpy")  # r outermost
        _bounded(len(rs) * len(ps) * len(ys), name)
        for r in rs:
            for p in ps:
                for y in ys:
                    q = rpy_quat([r, p, y], center)
                    values.append({"label": f"r={_fmt(r)},p={_fmt(p)},y={_fmt(y)}", "reset": _nest(key, q)})
    else:  # range: consecutive integers, e.g. ManiSkill3 digital twins' episode_id
        start, count = int(spec.get("start", 0)), spec.get("count")
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"grid axis {name!r}: range.count must be a positive integer")
        _bounded(count, name)
        values = [{"label": str(i), "reset": _nest(key, i)} for i in range(start, start + count)]
    extra = sorted(set(spec) - {"x", "y", "r", "p", "center", "start", "count"})
    if extra:
        raise ValueError(f"grid axis {name!r}: unknown `{form}` keys {', '.join(extra)}")
    return {**raw, "values": values}


def expand_grid(raw: Any) -> list[dict[str, Any]]:
    """A task's `grid:` in YAML (a block or a list of blocks, axes with shorthands) as explicit blocks."""
    blocks = raw if isinstance(raw, list) else [raw]
    out = []
    for block in blocks:
        if not isinstance(block, dict):
            raise ValueError(f"a grid block must be a mapping, got {block!r}")
        block = dict(block)
        axes: list[Any] = []
        for a in block.get("axes", []) or []:  # a YAML alias of a list of axes splices in
            axes.extend(a if isinstance(a, list) else [a])
        block["axes"] = [expand_axis(a) for a in axes]
        out.append(block)
    return out
