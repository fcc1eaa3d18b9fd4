"""The wire format of `vlascore serve`: msgpack messages over WebSocket binary frames (docs/serving.md).

One codec serves both protocols the `remote` adapter speaks: numpy arrays travel in openpi_client's
msgpack_numpy layout (a map with the keys `__ndarray__`, `data`, `dtype`, `shape`), so dtype, byte order and
shape arrive exactly (float64 stays float64) and an openpi-style server understands our observations as is.

Messages are maps with a `type` field. The server speaks first (`hello`: protocol name and version, the served
adapter and its declaration); then the client sends `reset` and `act` requests, each answered by `reset_ok`,
`step` or `error` carrying the request's `id`. A peer ignores fields it does not know, so adding an optional field
keeps PROTOCOL_VERSION; renaming, removing or changing the meaning of one bumps it, and the client refuses a server
of another version at the handshake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

import numpy as np
from pydantic import ValidationError

from vlascore.adapters.base import EpisodeContext, PolicyStep
from vlascore.backends.base import Observation, PrivilegedState
from vlascore.extras import require
from vlascore.suites import TaskSpec

PROTOCOL = "vlascore-policy"
"""Protocol name sent in the handshake (a client can tell our server from an openpi one)."""
PROTOCOL_VERSION = 1
"""Bumped on any incompatible change of a message; both sides must speak the same version."""
MAX_MESSAGE_BYTES = 2**28
"""Largest frame either side accepts (256 MiB: many high-resolution images, bounded memory)."""

_NDARRAY, _NPGENERIC = "__ndarray__", "__npgeneric__"
_REFUSED_KINDS = "OVcMm"  # object (would need pickle), void/structured, complex, datetimes: no portable encoding


class ProtocolError(ValueError):
    """A message that does not follow the wire format, or a peer that speaks another protocol or version."""


def _msgpack() -> Any:
    return require("msgpack", "serve", "`vlascore serve` and the remote adapter")


def _encode_numpy(obj: Any) -> Any:
    """msgpack `default` hook: numpy values in openpi's msgpack_numpy layout (keys are bytes, as theirs)."""
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in _REFUSED_KINDS:
        raise TypeError(f"numpy dtype {obj.dtype} cannot be sent (no portable encoding)")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot encode a {type(obj).__name__} (send numbers, strings, lists, dicts and numpy arrays)")


def _pick(obj: dict[Any, Any], key: str) -> Any:
    """A field of an encoded numpy value: openpi writes bytes keys, other msgpack_numpy ports write str keys."""
    raw = key.encode()
    return obj[raw] if raw in obj else obj[key]


def _decode_numpy(obj: dict[Any, Any]) -> Any:
    """msgpack `object_hook`: maps in the msgpack_numpy layout back to numpy values, checked before use."""
    is_array = b"__ndarray__" in obj or _NDARRAY in obj
    if not is_array and b"__npgeneric__" not in obj and _NPGENERIC not in obj:
        return obj
    try:
        dtype_name = _pick(obj, "dtype")
        dtype = np.dtype(dtype_name.decode() if isinstance(dtype_name, bytes) else dtype_name)
        if dtype.kind in _REFUSED_KINDS:
            raise ProtocolError(f"numpy dtype {dtype} is not accepted on the wire")
        if not is_array:
            return dtype.type(_pick(obj, "data"))
        shape = tuple(int(n) for n in _pick(obj, "shape"))
        data = _pick(obj, "data")
        if not isinstance(data, bytes) or len(data) != dtype.itemsize * math.prod(shape):
            raise ProtocolError(f"array payload of {len(data)} bytes does not fit shape {shape} and dtype {dtype}")
        # A copy, so the array is writable and owns its memory (frombuffer views the read-only message bytes).
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    except ProtocolError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed numpy value in a message: {type(exc).__name__}: {exc}") from None


def packb(obj: Any) -> bytes:
    """msgpack bytes of `obj` (dicts, lists, str, bytes, numbers, None, numpy arrays and scalars)."""
    try:
        return bytes(_msgpack().packb(obj, default=_encode_numpy, use_bin_type=True))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"cannot encode the message: {exc}") from None


def unpackb(data: bytes) -> Any:
    """The value `packb` (or openpi_client's msgpack_numpy) encoded; ProtocolError on malformed input."""
    msgpack = _msgpack()
    try:
        return msgpack.unpackb(data, object_hook=_decode_numpy, raw=False)
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ProtocolError(f"not a msgpack message: {type(exc).__name__}: {exc}") from None


def _field(message: dict[str, Any], key: str, kinds: type | tuple[type, ...], optional: bool = False) -> Any:
    if key not in message:
        if optional:
            return None
        raise ProtocolError(f"{message.get('type', '?')!r} message has no {key!r} field")
    value = message[key]
    if value is None and optional:
        return None
    if not isinstance(value, kinds):
        want = kinds.__name__ if isinstance(kinds, type) else " or ".join(k.__name__ for k in kinds)
        kind = message.get("type", "?")
        raise ProtocolError(f"{kind!r} message: {key!r} should be {want}, got {type(value).__name__}")
    return value


def withheld_privileged() -> PrivilegedState:
    """What a served adapter that does not declare `uses_privileged_state` sees instead of simulator ground truth:
    NaNs, so a policy that reads it anyway fails loudly instead of silently cheating."""
    return PrivilegedState(ee_pose=np.full(7, np.nan), gripper=float("nan"))


def _privileged_to_wire(p: PrivilegedState) -> dict[str, Any]:
    return {
        "ee_pose": np.asarray(p.ee_pose),
        "gripper": float(p.gripper),
        "objects": {role: np.asarray(pose) for role, pose in p.objects.items()},
        "is_grasped": bool(p.is_grasped),
    }


def _privileged_from_wire(raw: dict[str, Any]) -> PrivilegedState:
    raw = {"type": "act.observation.privileged", **raw}
    objects = _field(raw, "objects", dict)
    return PrivilegedState(
        ee_pose=np.asarray(_field(raw, "ee_pose", np.ndarray)),
        gripper=float(_field(raw, "gripper", (int, float))),
        objects={str(role): np.asarray(pose) for role, pose in objects.items()},
        is_grasped=bool(_field(raw, "is_grasped", bool)),
    )


def observation_to_wire(obs: Observation, privileged: bool) -> dict[str, Any]:
    """An Observation as a map; the privileged state only when the served policy declared it reads it."""
    out: dict[str, Any] = {
        "image": None if obs.image is None else np.asarray(obs.image),
        "proprio": {key: np.asarray(value) for key, value in obs.proprio.items()},
        "step": int(obs.step),
    }
    if privileged:
        out["privileged"] = _privileged_to_wire(obs.privileged)
    return out


def observation_from_wire(raw: dict[str, Any]) -> Observation:
    raw = {"type": "act.observation", **raw}
    image = _field(raw, "image", np.ndarray, optional=True)
    proprio = _field(raw, "proprio", dict)
    bad = [k for k, v in proprio.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise ProtocolError(f"proprio entries must be numpy arrays; not: {', '.join(map(str, bad))}")
    priv = _field(raw, "privileged", dict, optional=True)
    return Observation(
        image=image,
        proprio={str(k): v for k, v in proprio.items()},
        privileged=withheld_privileged() if priv is None else _privileged_from_wire(priv),
        step=int(_field(raw, "step", int)),
    )


@dataclass(frozen=True)
class Hello:
    """Server -> client, the first message of every connection: who is served and what it declares."""

    type: ClassVar[str] = "hello"
    adapter: str
    """Registered name of the served adapter."""
    config: dict[str, Any]
    """The served adapter's options (its `config`)."""
    info: dict[str, Any]
    """The served adapter's declaration (`Adapter.info()`): action_space, chunk_size, reasons, ..."""
    stateless: bool = False
    """The server declares that act() keeps no state between calls, so a call may be repeated on a new connection."""
    vlascore_version: str = ""
    """vlascore version of the server."""
    protocol: str = PROTOCOL
    version: int = PROTOCOL_VERSION

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "protocol": self.protocol,
            "version": self.version,
            "adapter": self.adapter,
            "config": self.config,
            "info": self.info,
            "stateless": self.stateless,
            "vlascore_version": self.vlascore_version,
        }

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Hello:
        protocol, version = _field(m, "protocol", str), _field(m, "version", int)
        if protocol != PROTOCOL or version != PROTOCOL_VERSION:
            raise ProtocolError(
                f"the server speaks {protocol} version {version}, this client {PROTOCOL} version {PROTOCOL_VERSION}: "
                "install the same vlascore version in both environments"
            )
        return cls(
            adapter=_field(m, "adapter", str),
            config=_field(m, "config", dict),
            info=_field(m, "info", dict),
            stateless=bool(_field(m, "stateless", bool, optional=True)),
            vlascore_version=str(_field(m, "vlascore_version", str, optional=True) or ""),
        )


@dataclass(frozen=True)
class Reset:
    """Client -> server: start an episode (the served adapter's reset)."""

    type: ClassVar[str] = "reset"
    id: int
    context: EpisodeContext

    def to_wire(self) -> dict[str, Any]:
        c = self.context
        return {
            "type": self.type,
            "id": self.id,
            "task": c.task.model_dump(mode="json"),
            "seed": c.seed,
            "episode_id": c.episode_id,
        }

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Reset:
        try:
            task = TaskSpec.model_validate(_field(m, "task", dict))
        except ValidationError as exc:
            raise ProtocolError(
                f"the client's task does not validate on this server ({exc.error_count()} error(s): "
                f"{exc.errors()[0]['msg']}): install the same vlascore version in both environments"
            ) from None
        context = EpisodeContext(task=task, seed=int(_field(m, "seed", int)), episode_id=_field(m, "episode_id", str))
        return cls(id=_field(m, "id", int), context=context)


@dataclass(frozen=True)
class Act:
    """Client -> server: one policy call."""

    type: ClassVar[str] = "act"
    id: int
    observation: Observation
    instruction: str
    privileged: bool = False
    """Whether the observation's privileged state is sent (only to policies that declare they read it)."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "id": self.id,
            "instruction": self.instruction,
            "observation": observation_to_wire(self.observation, self.privileged),
        }

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Act:
        raw = _field(m, "observation", dict)
        return cls(
            id=_field(m, "id", int),
            observation=observation_from_wire(raw),
            instruction=_field(m, "instruction", str),
            privileged=raw.get("privileged") is not None,
        )


@dataclass(frozen=True)
class ResetDone:
    """Server -> client: the episode has started."""

    type: ClassVar[str] = "reset_ok"
    id: int

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "id": self.id}

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> ResetDone:
        return cls(id=_field(m, "id", int))


@dataclass(frozen=True)
class Step:
    """Server -> client: the PolicyStep of an `act` (the action array keeps the dtype the policy returned)."""

    type: ClassVar[str] = "step"
    id: int
    step: PolicyStep

    def to_wire(self) -> dict[str, Any]:
        s = self.step
        return {
            "type": self.type,
            "id": self.id,
            "action": np.asarray(s.action),
            "reasoning": s.reasoning,
            "intention": s.intention,
        }

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Step:
        action = _field(m, "action", (np.ndarray, list, int, float))
        return cls(
            id=_field(m, "id", int),
            step=PolicyStep(
                action=np.asarray(action),
                reasoning=_field(m, "reasoning", str, optional=True),
                intention=_field(m, "intention", str, optional=True),
            ),
        )


@dataclass(frozen=True)
class Error:
    """Server -> client: a request failed (the served adapter raised, or the request was malformed)."""

    type: ClassVar[str] = "error"
    id: int | None
    """The failed request's id (None when the request could not be read, or for a refused connection)."""
    error_type: str
    """Exception class name on the server (e.g. RuntimeError), or ProtocolError, or ServerBusy."""
    message: str
    """The exception's text."""
    where: str = ""
    """What failed: reset, act, decode, connect."""
    traceback: str = field(default="", repr=False)
    """Server-side traceback, for debugging (not shown in episode records)."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "id": self.id,
            "error_type": self.error_type,
            "message": self.message,
            "where": self.where,
            "traceback": self.traceback,
        }

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Error:
        return cls(
            id=_field(m, "id", int, optional=True),
            error_type=_field(m, "error_type", str),
            message=_field(m, "message", str),
            where=str(_field(m, "where", str, optional=True) or ""),
            traceback=str(_field(m, "traceback", str, optional=True) or ""),
        )


Message = Union[Hello, Reset, Act, ResetDone, Step, Error]  # noqa: UP007 - a runtime alias, kept py3.10-safe
MESSAGE_TYPES: dict[str, type[Message]] = {cls.type: cls for cls in (Hello, Reset, Act, ResetDone, Step, Error)}


def encode(message: Message) -> bytes:
    """One message as the bytes of a binary frame."""
    return packb(message.to_wire())


def decode(frame: bytes | str) -> Message:
    """The message of one frame; ProtocolError for text frames, malformed maps and unknown types."""
    if isinstance(frame, str):
        raise ProtocolError(f"expected a binary msgpack frame, got text: {frame[:200]!r}")
    raw = unpackb(frame)
    if not isinstance(raw, dict):
        raise ProtocolError(f"a message must be a map, got {type(raw).__name__}")
    kind = raw.get("type")
    cls = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join(MESSAGE_TYPES)
        raise ProtocolError(f"unknown message type {kind!r}; {PROTOCOL} {PROTOCOL_VERSION} has {known}")
    return cls.from_wire(raw)
