"""The codec and the message types: exact round-trips, openpi's ndarray layout both ways, clear errors."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest

from vlascore.adapters.base import EpisodeContext, PolicyStep
from vlascore.backends.base import Observation, PrivilegedState
from vlascore.serving import wire
from vlascore.serving.wire import (
    Act,
    Error,
    Hello,
    ProtocolError,
    Reset,
    ResetDone,
    Step,
    decode,
    encode,
    packb,
    unpackb,
)
from vlascore.suites import load_suite


def same(a: Any, b: Any) -> bool:
    """Equal values with equal types, dtypes and shapes, recursively (NaN equals NaN)."""
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def test_values_round_trip_exactly() -> None:
    rng = np.random.default_rng(0)
    value = {
        "f64": rng.normal(size=(3, 7)),
        "f64_edge": np.array([0.1, 1 / 3, np.nextafter(1.0, 2.0), 1e-310, np.inf, -0.0]),
        "f32": rng.normal(size=5).astype(np.float32),
        "image": rng.integers(0, 256, size=(4, 6, 3), dtype=np.uint8),
        "big_endian": np.arange(4, dtype=">i4"),
        "bools": np.array([True, False]),
        "scalar_array": np.array(2.5),
        "empty": np.zeros((0, 7)),
        "strided": np.arange(12.0).reshape(3, 4).T,  # not C-contiguous: sent in C order, same values
        "nested": {"deeper": [1, 2.5, "three", None, {"x": np.ones(2, dtype=np.int16)}]},
        "none": None,
        "text": "pick up the red cube",
        "raw": b"\x00\xff",
        "flag": True,
        "int": -(2**40),
    }
    back = unpackb(packb(value))
    assert same(value, back)
    assert back["f64"].tobytes() == value["f64"].tobytes()  # bit-exact, not just close
    assert back["image"].flags.writeable and back["image"].flags.c_contiguous  # adapters may write in place


def test_numpy_scalars_keep_their_dtype() -> None:
    back = unpackb(packb({"i": np.int64(7), "f": np.float32(0.5), "b": np.bool_(True), "d": np.float64(0.1)}))
    assert type(back["i"]) is np.int64 and type(back["f"]) is np.float32 and type(back["b"]) is np.bool_
    assert back["d"] == 0.1  # float64 scalars are Python floats to msgpack: same 64-bit value


def _openpi_default(obj: Any) -> Any:
    """openpi_client.msgpack_numpy's published layout (bytes keys), written independently here."""
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _openpi_hook(obj: dict[Any, Any]) -> Any:
    if b"__ndarray__" in obj:
        return np.ndarray(buffer=obj[b"data"], dtype=np.dtype(obj[b"dtype"]), shape=obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


def test_openpi_ndarray_layout_both_ways() -> None:
    value = {
        "observation/image": np.full((8, 8, 3), 7, np.uint8),
        "observation/state": np.linspace(0, 1, 8),
        "prompt": "do it",
        "actions": np.ones((10, 7), np.float32),
        "step": np.int32(3),
    }
    theirs = msgpack.packb(value, default=_openpi_default)
    assert same(unpackb(theirs), value)  # we read what openpi_client writes
    assert same(msgpack.unpackb(packb(value), object_hook=_openpi_hook), value)  # and they read what we write


def test_str_keyed_ndarray_maps_are_read_too() -> None:
    """Other msgpack_numpy ports write the same layout with text keys."""
    arr = np.arange(6, dtype=np.float64).reshape(2, 3)
    raw = msgpack.packb({"__ndarray__": True, "data": arr.tobytes(), "dtype": "<f8", "shape": [2, 3]})
    assert same(unpackb(raw), arr)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"\xc1", "not a msgpack message"),
        (msgpack.packb({b"__ndarray__": True, b"data": b"\x00" * 7, b"dtype": "<f8", b"shape": [1]}), "does not fit"),
        (msgpack.packb({b"__ndarray__": True, b"data": b"", b"dtype": "|O", b"shape": [0]}), "not accepted"),
        (msgpack.packb({b"__ndarray__": True, b"data": b"", b"dtype": "nonsense", b"shape": [0]}), "malformed numpy"),
    ],
)
def test_malformed_input_is_a_protocol_error(payload: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        unpackb(payload)


def test_unencodable_values_are_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="object cannot be sent"):
        packb({"a": np.array([object()])})
    with pytest.raises(ProtocolError, match="cannot encode a set"):
        packb({"a": {1, 2}})


def _obs() -> Observation:
    priv = PrivilegedState(
        ee_pose=np.array([0.1, 0.2, 0.3, 1.0, 0, 0, 0]), gripper=0.25, objects={"cube": np.arange(7.0)}, is_grasped=True
    )
    proprio = {"qpos": np.array([0.1, 0.2, 1 / 3]), "ee_pose": priv.ee_pose.copy()}
    return Observation(image=np.zeros((4, 4, 3), np.uint8), proprio=proprio, privileged=priv, step=5)


def test_messages_round_trip() -> None:
    task = load_suite("toy").task("ToyPick")
    hello = Hello(
        adapter="scripted", config={"gain": 1.0}, info={"chunk_size": 1}, stateless=True, vlascore_version="0.1.0"
    )
    assert decode(encode(hello)) == hello
    reset = decode(encode(Reset(3, EpisodeContext(task=task, seed=7, episode_id="ToyPick-7"))))
    assert isinstance(reset, Reset) and reset.context == EpisodeContext(task=task, seed=7, episode_id="ToyPick-7")
    assert decode(encode(ResetDone(3))) == ResetDone(3)
    error = Error(4, "RuntimeError", "boom", "act", "Traceback ...")
    assert decode(encode(error)) == error
    step = decode(encode(Step(5, PolicyStep(np.array([[0.1, -1 / 3]]), reasoning="r", intention=None))))
    assert isinstance(step, Step) and same(step.step.action, np.array([[0.1, -1 / 3]]))
    assert (step.step.reasoning, step.step.intention) == ("r", None)


def test_privileged_state_travels_only_when_declared() -> None:
    obs = _obs()
    assert "privileged" not in Act(1, obs, "go", privileged=False).to_wire()["observation"]
    withheld = decode(encode(Act(1, obs, "go", privileged=False)))
    assert isinstance(withheld, Act) and not withheld.privileged
    assert np.isnan(withheld.observation.privileged.ee_pose).all() and withheld.observation.privileged.objects == {}
    sent = decode(encode(Act(2, obs, "go", privileged=True)))
    assert isinstance(sent, Act) and sent.privileged and sent.instruction == "go"
    got, want = sent.observation, obs
    assert same(got.image, want.image) and same(got.proprio, want.proprio) and got.step == 5
    p = got.privileged
    assert same(p.ee_pose, want.privileged.ee_pose) and same(p.objects, want.privileged.objects)
    assert (p.gripper, p.is_grasped) == (0.25, True)


def test_protocol_mismatches_are_named() -> None:
    newer = {**Hello("scripted", {}, {}).to_wire(), "version": wire.PROTOCOL_VERSION + 1}
    with pytest.raises(ProtocolError, match=r"server speaks vlascore-policy version 2.*same vlascore version"):
        decode(packb(newer))
    with pytest.raises(ProtocolError, match="unknown message type 'teleport'"):
        decode(packb({"type": "teleport"}))
    with pytest.raises(ProtocolError, match="expected a binary msgpack frame"):
        decode("Traceback (most recent call last): ...")
    with pytest.raises(ProtocolError, match="'act' message has no 'observation' field"):
        decode(packb({"type": "act", "id": 1, "instruction": "x"}))
    bad_task = {"type": "reset", "id": 1, "task": {"id": "x"}, "seed": 0, "episode_id": "x-0"}
    with pytest.raises(ProtocolError, match="task does not validate on this server"):
        decode(packb(bad_task))
