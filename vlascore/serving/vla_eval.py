"""allenai's vla-eval protocol (its model servers and benchmark clients): messages, codec, action conventions and the
client's observation mapping, used by both ends: `-M protocol=vla-eval` on the remote adapter (vla_eval_client.py)
and `vlascore serve --protocol vla-eval` (vla_eval_server.py).

Every message is a msgpack map `{type, payload, seq, timestamp}`; the client speaks first. It sends `hello` and the
server answers `hello` (its name, `action_spec`, `observation_spec`, `observation_params`); then, per episode,
`episode_start` (the task), `observation` -> `action` (or `error`) with the observation's `seq` echoed, and
`episode_end`. Neither `episode_start` nor `episode_end` is answered unless it fails. Numpy arrays travel as maps
with the str keys `__ndarray__`, `data`, `dtype`, `shape`; vla-eval's benchmark clients send camera images as
`__image__` maps holding PNG (their default), JPEG or raw bytes.

The observation map follows vla-eval's convention: `images` (camera name -> HxWx3 uint8), `task_description` and a
`state` vector. Its action spec names position, rotation and gripper formats, mapped here to vlascore's ActionSpace
and back (docs/serving.md, "vla-eval").
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from vlascore.backends.base import Observation
from vlascore.extras import require
from vlascore.serving.openpi import _keys, chunk_options, split_options, state_vector
from vlascore.serving.wire import MAX_MESSAGE_BYTES, ProtocolError, _decode_numpy, _msgpack
from vlascore.suites import ActionSpace

NAME = "vla-eval"
VERSION = 1
"""vla-eval's PROTOCOL_VERSION (vla_eval.protocol.messages), checked at the handshake."""
HELLO, OBSERVATION, ACTION, EPISODE_START, EPISODE_END, ERROR = (
    "hello",
    "observation",
    "action",
    "episode_start",
    "episode_end",
    "error",
)
TYPES = (HELLO, OBSERVATION, ACTION, EPISODE_START, EPISODE_END, ERROR)
FIELDS = ("type", "payload", "seq", "timestamp")
PROBE_MARK = "vlascore_probe"
"""Payload key of the hello a vlascore client sends to a silent server to learn whether it speaks vla-eval."""
_REFUSED_KINDS = "OVcMm"


@dataclass(frozen=True)
class Message:
    """One vla-eval message."""

    type: str
    payload: dict[str, Any]
    seq: int = 0
    timestamp: float = field(default_factory=time.time)


def is_message(value: Any) -> bool:
    """Whether a decoded frame has the shape of a vla-eval message (used to tell protocols apart)."""
    return isinstance(value, dict) and all(k in value for k in FIELDS) and value.get("type") in TYPES


# -- codec --------------------------------------------------------------------------------------------------------


def _encode(obj: Any) -> Any:
    """msgpack `default` hook in vla-eval's layout: str keys; numpy scalars as plain numbers."""
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in _REFUSED_KINDS:
        raise TypeError(f"numpy dtype {obj.dtype} cannot be sent (no portable encoding)")
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": True, "data": obj.tobytes(), "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode a {type(obj).__name__} (send numbers, strings, lists, dicts and numpy arrays)")


def pack(message: Message) -> bytes:
    raw = {"type": message.type, "payload": message.payload, "seq": message.seq, "timestamp": message.timestamp}
    try:
        return bytes(_msgpack().packb(raw, default=_encode, use_bin_type=True))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"cannot encode the {message.type} message: {exc}") from None


class _Images:
    """Decodes vla-eval's `__image__` maps within a budget of decoded bytes per message (a small PNG can claim a huge
    image: the declared shape is checked against the budget before anything is decompressed)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget

    def __call__(self, obj: dict[Any, Any]) -> Any:
        if "__image__" not in obj:
            return _decode_numpy(obj)
        try:
            fmt, shape = obj["format"], tuple(int(n) for n in obj["shape"])
            data = obj["data"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed image in a message: {type(exc).__name__}: {exc}") from None
        if not isinstance(data, bytes) or len(shape) != 3 or min(shape) < 1 or shape[2] not in (1, 3, 4):
            raise ProtocolError(f"an image must be HxWxC bytes with C in 1, 3, 4; got shape {shape}")
        size = math.prod(shape)
        if size > self.budget:
            raise ProtocolError(f"images of this message decode to more than {MAX_MESSAGE_BYTES} bytes")
        self.budget -= size
        if fmt == "raw":
            return _decode_numpy({"__ndarray__": True, "data": data, "dtype": obj.get("dtype", "|u1"), "shape": shape})
        if fmt not in ("png", "jpeg"):
            raise ProtocolError(f"unknown image format {fmt!r} (raw, png, jpeg)")
        pil = require("PIL.Image", "serve", "reading vla-eval's PNG/JPEG images")
        try:
            with pil.open(io.BytesIO(data)) as image:
                if (image.height, image.width) != shape[:2]:
                    raise ProtocolError(f"a {fmt} image of {image.width}x{image.height} declared as shape {shape}")
                array = np.asarray(image.convert({1: "L", 3: "RGB", 4: "RGBA"}[shape[2]]))
        except ProtocolError:
            raise
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types on corrupt data
            raise ProtocolError(f"unreadable {fmt} image: {type(exc).__name__}: {exc}") from None
        return array.reshape(shape).astype(np.uint8, copy=True)


def unpack(frame: bytes | str) -> Message:
    """The vla-eval message of one frame; ProtocolError on anything else."""
    if isinstance(frame, str):
        raise ProtocolError(f"expected a binary msgpack frame, got text: {frame[:200]!r}")
    msgpack = _msgpack()
    try:
        raw = msgpack.unpackb(frame, object_hook=_Images(MAX_MESSAGE_BYTES), raw=False, strict_map_key=False)
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ProtocolError(f"not a msgpack message: {type(exc).__name__}: {exc}") from None
    if not isinstance(raw, dict):
        raise ProtocolError(f"a message must be a map, got {type(raw).__name__}")
    missing = [k for k in FIELDS if k not in raw]
    if missing:
        raise ProtocolError(f"not a {NAME} message: no {', '.join(missing)} (keys: {', '.join(map(str, raw))[:200]})")
    kind, payload, seq, stamp = raw["type"], raw["payload"], raw["seq"], raw["timestamp"]
    if kind not in TYPES:
        raise ProtocolError(f"unknown {NAME} message type {kind!r}; known: {', '.join(TYPES)}")
    if not isinstance(payload, dict) or not isinstance(seq, int) or isinstance(seq, bool):
        raise ProtocolError(f"{NAME} {kind} message: payload must be a map and seq an integer")
    if not isinstance(stamp, (int, float)):
        raise ProtocolError(f"{NAME} {kind} message: timestamp must be a number")
    return Message(kind, payload, seq, float(stamp))


def hello_payload(**extra: Any) -> dict[str, Any]:
    from vlascore._version import __version__

    return {"harness_version": f"vlascore {__version__}", "protocol_version": VERSION, **extra}


def probe() -> bytes:
    """The hello a vlascore client sends to a server that has said nothing: a vla-eval model server answers it."""
    return pack(Message(HELLO, hello_payload(**{PROBE_MARK: True}), seq=0))


def is_probe(frame: bytes | str) -> bool:
    """Whether a frame is the probe of a vlascore client (see `probe`)."""
    try:
        return bool(unpack(frame).payload.get(PROBE_MARK))
    except ProtocolError:
        return False


def check_version(payload: dict[str, Any], who: str) -> None:
    version = payload.get("protocol_version")
    if version != VERSION:
        raise ProtocolError(
            f"{who} speaks {NAME} protocol version {version}, vlascore speaks version {VERSION}: use a vla-eval "
            "release of the same protocol version"
        )


# -- action conventions ---------------------------------------------------------------------------------------------

# vla-eval's `euler_xyz` is extrinsic X-Y-Z (R = Rz Ry Rx, scipy's 'xyz'): vlascore's euler_rpy; its
# `rot6d_contiguous` (the first two matrix columns) is vlascore's rot6d. Its x-y-z-w quaternions and interleaved 6D
# rotations have no vlascore twin (the user declares a convention for those). The vlascore conventions vla-eval has
# no name for get names of their own, so two vlascore ends round-trip and vla-eval's spec check flags them.
_ROTATIONS = {
    "euler_xyz": "euler_rpy",
    "axis_angle": "axis_angle",
    "rot6d_contiguous": "rot6d",
    "intrinsic_euler_xyz": "euler_xyz",
    "quaternion_wxyz": "quaternion",
}
_ROTATION_NAMES = {ours: theirs for theirs, ours in _ROTATIONS.items()}
_POSITIONS = {"delta_xyz": "ee_delta", "absolute_xyz": "ee_absolute"}
_JOINTS = {"joint_delta": "joint_delta", "joint_absolute": "joint_absolute"}  # vlascore's own names (no vla-eval ones)
_COMPONENTS = {"position", "joints", "rotation", "gripper"}
_GRIPPERS = {"binary_close_positive": -1, "binary_close_negative": 1}  # the sign that closes; vlascore's opens


def action_space_from_spec(spec: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """ActionSpace fields a vla-eval action spec states unambiguously, and, per ActionSpace field, the format it names
    that does not map (the user declares those with -M action_<field>=...).

    `normalized` and `gripper_binary` are never taken from it: vla-eval's ranges are loose bounds, not a controller's
    scale, and its gripper names say only which sign closes."""
    out: dict[str, Any] = {}
    unmapped: dict[str, str] = {}
    if not isinstance(spec, dict):
        return out, unmapped
    formats = {str(k): (v.get("format"), v.get("dims")) for k, v in spec.items() if isinstance(v, dict)}
    tables: tuple[tuple[str, str, dict[str, Any]], ...] = (
        ("position", "mode", _POSITIONS),
        ("joints", "mode", _JOINTS),
        ("rotation", "rotation", _ROTATIONS),
        ("gripper", "gripper_open", _GRIPPERS),
    )
    for component, field_name, table in tables:
        fmt = formats.get(component, (None, None))[0]
        if isinstance(fmt, str) and fmt in table:
            out[field_name] = table[fmt]
        elif fmt is not None:
            unmapped[field_name] = f"{component} format {fmt!r}"
    other = sorted(set(formats) - _COMPONENTS)
    if other and "mode" not in unmapped:
        unmapped["mode"] = f"component(s) {', '.join(other)}"
    if "rotation" not in formats and "position" in formats:
        out["rotation"] = "none"
    dims = [d for _, d in formats.values() if isinstance(d, int) and not isinstance(d, bool)]
    if dims and len(dims) == len(formats) and not other:
        out["dim"] = sum(dims)
    return out, unmapped


def spec_from_action_space(space: ActionSpace) -> dict[str, dict[str, Any]]:
    """The vla-eval action spec of a vlascore convention (what `vlascore serve --protocol vla-eval` declares).

    Formats vla-eval has no name for get descriptive names of their own, so vla-eval's spec check flags them
    instead of passing them as another convention."""
    from vlascore.adapters.conventions import ROTATION_DIMS

    if space.mode.startswith("joint"):
        return {"joints": {"name": "joints", "dims": space.dim - 1, "format": space.mode}, **_gripper_spec(space)}
    rot_dims = ROTATION_DIMS[space.rotation]
    position = "delta_xyz" if space.mode == "ee_delta" else "absolute_xyz"
    rotation = _ROTATION_NAMES[space.rotation] if rot_dims else "none"
    out: dict[str, dict[str, Any]] = {"position": {"name": "position", "dims": 3, "format": position}}
    if rot_dims:
        out["rotation"] = {"name": "rotation", "dims": rot_dims, "format": rotation}
    return {**out, **_gripper_spec(space)}


def _gripper_spec(space: ActionSpace) -> dict[str, dict[str, Any]]:
    # vla-eval names the gripper's sign: "close positive" is vlascore's gripper_open = -1.
    fmt = "binary_close_positive" if space.gripper_open == -1 else "binary_close_negative"
    if space.gripper == "relative":
        fmt = "relative_" + fmt
    return {"gripper": {"name": "gripper", "dims": 1, "format": fmt, "range": [-1.0, 1.0]}}


# -- the client's mapping -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VlaEvalOptions:
    """How vlascore observations become vla-eval observation maps, and what the server's actions mean."""

    camera: str = "primary"
    """Name of the camera image in the `images` map (vla-eval's model servers mostly take the first one)."""
    blank_cameras: tuple[str, ...] = ()
    """Further camera names the served model requires but the suite has no camera for (e.g. wrist): black images."""
    state_key: str = "state"
    """Key of the state vector (`states` for servers written against LIBERO); empty: send no state."""
    state: tuple[str, ...] = ("qpos",)
    """Proprio entries (qpos, qvel, ee_pose), flattened and concatenated in this order, that make the state."""
    instruction_key: str = "task_description"
    """Key of the instruction text."""
    actions_key: str = "actions"
    """Key of the action (or chunk) in the server's reply."""
    chunk_size: int = 1
    """Most actions per reply; a server that returns whole chunks needs its chunk length here."""
    execute: int | None = None
    """How many actions of each chunk run before the next call; None: the whole chunk."""
    declared: dict[str, Any] = field(default_factory=dict)
    """ActionSpace fields given as `-M action_<field>=...` (they override what the server's action spec says)."""

    @classmethod
    def parse(cls, options: dict[str, Any]) -> VlaEvalOptions:
        names = {f.name for f in fields(cls)} - {"declared"}
        plain, declared = split_options(options, names, "vla-eval")
        for key in ("state", "blank_cameras"):
            if key in plain:
                plain[key] = _keys(plain[key])
        for key in ("camera", "state_key", "instruction_key", "actions_key"):
            if key in plain:
                plain[key] = "" if plain[key] is None else str(plain[key])
        for key in ("instruction_key", "actions_key"):
            if not plain.get(key, getattr(cls, key)):
                raise ValueError(f"-M {key} cannot be empty")
        plain["chunk_size"], plain["execute"] = chunk_options(plain)
        return cls(**plain, declared=declared)

    def action_space(self, server_spec: Any, url: str) -> ActionSpace:
        """The convention of the server's actions: its action spec where it maps, overridden by -M action_*."""
        stated, unmapped = action_space_from_spec(server_spec)
        undeclared = {k: v for k, v in unmapped.items() if k not in self.declared}
        if undeclared:
            key, what = next(iter(undeclared.items()))
            raise ValueError(
                f"the vla-eval server at {url} declares the {what}, which vlascore does not map: declare the "
                f"convention with -M action_{key}=... (see `ActionSpace` in docs/serving.md)"
            )
        return ActionSpace(**{**stated, **self.declared})

    def config(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "blank_cameras": list(self.blank_cameras),
            "state_key": self.state_key,
            "state": list(self.state),
            "instruction_key": self.instruction_key,
            "actions_key": self.actions_key,
            "chunk_size": self.chunk_size,
            "execute": self.execute,
        }

    def observation(self, obs: Observation, instruction: str) -> dict[str, Any]:
        out: dict[str, Any] = {self.instruction_key: instruction}
        if obs.image is not None:
            image = np.ascontiguousarray(obs.image, dtype=np.uint8)
            out["images"] = {self.camera: image, **{name: np.zeros_like(image) for name in self.blank_cameras}}
        if self.state_key:
            out[self.state_key] = state_vector(obs, self.state)
        return out

    def actions(self, payload: dict[str, Any], space: ActionSpace, url: str) -> np.ndarray:
        if self.actions_key not in payload:
            keys = ", ".join(map(str, payload)) or "nothing"
            raise ValueError(
                f"the vla-eval server at {url} replied without {self.actions_key!r} (got: {keys}); set -M actions_key="
            )
        actions = np.asarray(payload[self.actions_key])
        if actions.dtype.kind not in "biuf":
            raise ValueError(f"the vla-eval server at {url} returned non-numeric actions ({actions.dtype})")
        if actions.ndim == 1:
            actions = actions[None, :]
        if actions.ndim != 2 or actions.shape[1] != space.dim:
            raise ValueError(
                f"the vla-eval server at {url} returned actions of shape {actions.shape}, but its convention has "
                f"dim {space.dim} (-M action_dim=...)"
            )
        if actions.shape[0] > self.chunk_size:
            raise ValueError(
                f"the vla-eval server at {url} returned a chunk of {actions.shape[0]} actions, more than "
                f"-M chunk_size={self.chunk_size}: pass -M chunk_size={actions.shape[0]} (and -M execute=K to run "
                "only the first K of each chunk)"
            )
        return actions
