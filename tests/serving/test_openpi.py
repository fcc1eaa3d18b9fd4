"""`-M protocol=openpi` against a small fake openpi-style server written here from openpi's published protocol:
metadata on connect, one reply `{"actions": (n, dim)}` per observation map, a failure as a text frame then close."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from servekit import served
from websockets.sync.server import ServerConnection, serve

import vlascore
from vlascore import runner
from vlascore.serving.remote import RemoteAdapter
from vlascore.serving.wire import ProtocolError
from vlascore.suites import Suite

ACTION_DIM = 7


def _pack(obj: Any) -> bytes:
    """openpi_client.msgpack_numpy's layout, independently of vlascore's codec."""

    def default(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return {b"__ndarray__": True, b"data": o.tobytes(), b"dtype": o.dtype.str, b"shape": o.shape}
        return o

    return bytes(msgpack.packb(obj, default=default))


def _unpack(data: bytes) -> Any:
    def hook(o: dict[Any, Any]) -> Any:
        if b"__ndarray__" in o:
            return np.ndarray(buffer=o[b"data"], dtype=np.dtype(o[b"dtype"]), shape=o[b"shape"])
        return o

    return msgpack.unpackb(data, object_hook=hook)


def chunk(call: int, length: int = 4, dim: int = ACTION_DIM) -> np.ndarray:
    """The known chunk the fake returns for its `call`-th observation (float32, as openpi models return)."""
    base = np.linspace(-0.9, 0.9, length * dim, dtype=np.float32).reshape(length, dim)
    return (base * np.float32(1 - 0.01 * (call % 50))).astype(np.float32)


class FakeOpenpiServer:
    """An openpi-style policy server on a free port; `observations` holds every map it received."""

    def __init__(self, length: int = 4, dim: int = ACTION_DIM, fail_on: int | None = None, port: int = 0) -> None:
        self.length, self.dim, self.fail_on = length, dim, fail_on
        self.observations: list[dict[str, Any]] = []
        self._connections: list[ServerConnection] = []
        self.metadata = {"policy": "fake-pi0", "action_horizon": length, "norm": np.array([1.0, 2.0])}
        self._server = serve(self._handle, "127.0.0.1", port, compression=None, max_size=None)
        self.url = f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handle(self, ws: ServerConnection) -> None:
        self._connections.append(ws)
        ws.send(_pack(self.metadata))
        for frame in ws:
            call = len(self.observations)
            self.observations.append(_unpack(frame))
            if call == self.fail_on:
                ws.send('Traceback (most recent call last):\n  File "policy.py", line 1\nValueError: fake failure\n')
                ws.close(1011, "Internal server error. Traceback included in previous frame.")
                return
            ws.send(_pack({"actions": chunk(call, self.length, self.dim), "server_timing": {"infer_ms": 1.0}}))

    def __enter__(self) -> FakeOpenpiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for ws in self._connections:  # websockets < 13 leaves open connections open on shutdown
            ws.close()
        self._server.shutdown()
        self._thread.join(10)


def openpi_args(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "url": url,
        "protocol": "openpi",
        "chunk_size": 4,
        "execute": 2,
        "state": "qpos,ee_pose",
        "blank_image_keys": "observation/wrist_image",
        **extra,
    }


def expected_actions(num_steps: list[int], execute: int, first_call: int = 0) -> list[list[float]]:
    """The recorded actions when each call's first `execute` actions run and each episode starts a new call."""
    out, call = [], first_call
    for n in num_steps:
        for s in range(n):
            if s and s % execute == 0:
                call += 1
            out.append([float(v) for v in chunk(call)[s % execute]])
        call += 1
    return out


def test_an_openpi_chunk_is_executed_as_declared(tmp_path: Path, toy_suite: Suite) -> None:
    with FakeOpenpiServer() as fake:
        runner.run(model="remote", model_args=openpi_args(fake.url), suite=toy_suite, out=tmp_path / "r", episodes=2)
    run = vlascore.load_run(tmp_path / "r")
    num_steps = list(run.episodes["num_steps"])
    assert (run.episodes["status"] == "ok").all() and num_steps == [40, 40]
    assert list(run.steps["action"]) == expected_actions(num_steps, execute=2)
    assert len(fake.observations) == 40  # 20 calls per episode: 2 of each 4-action chunk run
    first = fake.observations[0]
    assert set(first) == {"observation/image", "observation/wrist_image", "observation/state", "prompt"}
    assert first["observation/image"].dtype == np.uint8 and first["observation/image"].shape == (32, 32, 3)
    assert not first["observation/wrist_image"].any() and first["observation/wrist_image"].shape == (32, 32, 3)
    assert first["prompt"] == toy_suite.tasks[0].instruction
    state = first["observation/state"]
    assert state.dtype == np.float64 and state.shape == (4 + 7,)  # toy qpos (4) then ee_pose (7)
    assert list(state[4:]) == run.steps["ee_pose"].iloc[0]
    info, config = run.run.adapter_info, run.run.adapter_config
    assert (info["chunk_size"], info["execute_steps"], info["reasons"]) == (4, 2, False)
    assert info["remote"]["metadata"] == {"policy": "fake-pi0", "action_horizon": 4, "norm": [1.0, 2.0]}
    assert config["protocol"] == "openpi" and config["state"] == ["qpos", "ee_pose"] and config["execute"] == 2
    assert "timeout" not in config and "retries" not in config  # volatile options stay out of resume checks


def test_an_openpi_server_error_errors_the_episode_and_the_next_reconnects(tmp_path: Path, toy_suite: Suite) -> None:
    with FakeOpenpiServer(fail_on=3) as fake:
        summary = runner.run(
            model="remote", model_args=openpi_args(fake.url), suite=toy_suite, out=tmp_path / "r", episodes=2
        )
    assert (summary.ran, summary.errored) == (2, 1)
    eps = vlascore.load_run(tmp_path / "r").episodes.set_index("episode_id")
    assert eps.loc["ToyPick-0", "failure_reason"] == (
        f"RemotePolicyError in policy at step 6: the openpi server at {fake.url} failed: ValueError: fake failure"
    )
    assert eps.loc["ToyPick-1", "status"] == "ok"


def test_an_openpi_server_restarted_between_episodes_is_reconnected_to(tmp_path: Path, toy_suite: Suite) -> None:
    """openpi has no reset, so the dead connection shows at the next episode's first call: replayed, not errored."""
    fakes = [FakeOpenpiServer().__enter__()]

    def restart(ep: Any) -> None:
        if ep.episode_id == "ToyPick-0":
            fakes[0].__exit__()
            fakes.append(FakeOpenpiServer(port=int(fakes[0].url.rsplit(":", 1)[1])).__enter__())

    try:
        summary = runner.run(
            model="remote",
            model_args=openpi_args(fakes[0].url),
            suite=toy_suite,
            out=tmp_path / "r",
            episodes=2,
            on_episode=restart,
        )
    finally:
        fakes[-1].__exit__()
    assert (summary.ran, summary.errored) == (2, 0) and len(fakes) == 2
    assert len(fakes[1].observations) == 20  # the second episode ran entirely on the new server


@pytest.mark.parametrize(
    ("server", "args", "reason"),
    [
        (
            {"length": 4},
            {"chunk_size": 2, "execute": 2},
            "returned a chunk of 4 actions, more than -M chunk_size=2: pass -M chunk_size=4",
        ),
        ({"dim": 8}, {}, "returned actions of shape (4, 8), but the declared convention has -M action_dim=7"),
        ({}, {"actions_key": "action"}, "replied without 'action' (got: actions, server_timing); set -M actions_key="),
    ],
)
def test_replies_that_break_the_declaration_are_refused(
    tmp_path: Path, toy_suite: Suite, server: dict[str, int], args: dict[str, Any], reason: str
) -> None:
    with FakeOpenpiServer(**server) as fake:
        runner.run(
            model="remote", model_args=openpi_args(fake.url, **args), suite=toy_suite, out=tmp_path / "r", episodes=1
        )
    ep = vlascore.load_run(tmp_path / "r").episodes.iloc[0]
    assert ep["status"] == "errored" and reason in ep["failure_reason"]


def test_openpi_option_typos_are_named(tmp_path: Path, toy_suite: Suite) -> None:
    with pytest.raises(ValueError, match=r"unknown option\(s\) imagekey for -M protocol=openpi; known: .*image_key"):
        runner.run(
            model="remote", model_args={"protocol": "openpi", "imagekey": "x"}, suite=toy_suite, out=tmp_path / "r"
        )
    with pytest.raises(ValueError, match=r"execute must be in 1..chunk_size=4"):
        runner.run(
            model="remote",
            model_args={"protocol": "openpi", "chunk_size": 4, "execute": 5},
            suite=toy_suite,
            out=tmp_path / "r",
        )


def test_the_vlascore_protocol_refuses_an_openpi_server_and_vice_versa() -> None:
    with FakeOpenpiServer() as fake:
        with pytest.raises(ProtocolError, match=r"speaks openpi's protocol .*: use -M protocol=openpi$"):
            RemoteAdapter(url=fake.url)
    with served("random") as server:
        with pytest.raises(ProtocolError, match="is a `vlascore serve` server .*: drop -M protocol=openpi"):
            RemoteAdapter(url=server.url, protocol="openpi")
