"""The protocols `vlascore serve` and the remote adapter speak besides their own (openpi's, vla-eval's), between
vlascore's two ends, in process: episode boundaries, the API key, batching across clients of every protocol, and
the one-line hint when the two ends speak different protocols. (Against the real openpi-client and vla-eval
packages: test_protocol_peers.py.)"""

from __future__ import annotations

import io
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from conftest import small_suite
from servekit import free_port, served
from test_openpi import FakeOpenpiServer, openpi_args
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import vlascore
from vlascore import runner
from vlascore.adapters import ADAPTERS, Adapter, EpisodeContext, PolicyStep
from vlascore.backends import Observation
from vlascore.scale import make_executor
from vlascore.serving import vla_eval
from vlascore.serving.client import ServerRefusedError
from vlascore.serving.remote import RemoteAdapter
from vlascore.serving.server import PolicyServer
from vlascore.serving.wire import ProtocolError, packb, unpackb
from vlascore.suites import ActionSpace, Suite

sys.path.insert(0, str(Path(__file__).parent / "peers"))
from probe_policy import Probe  # noqa: E402
from vla_eval_specs import BRIDGE, QUATERNION_XYZW  # noqa: E402

ADAPTERS.register("peer-probe", Probe)
PROTOCOLS = ["vlascore", "openpi", "vla-eval"]


def _columns(run: Any) -> Any:
    return run.steps.sort_values(["episode_id", "step"]).reset_index(drop=True)


# -- episode boundaries ---------------------------------------------------------------------------------------------


def test_two_episodes_reach_an_openpi_server_as_two_connections(tmp_path: Path, toy_suite: Suite) -> None:
    with FakeOpenpiServer() as fake:
        runner.run(model="remote", model_args=openpi_args(fake.url), suite=toy_suite, out=tmp_path / "r", episodes=2)
        connections = len(fake._connections)
    assert connections == 2 and len(fake.observations) == 40


@pytest.mark.parametrize("protocol", ["openpi", "vla-eval"])
def test_each_episode_resets_the_served_policy(tmp_path: Path, toy_suite: Suite, protocol: str) -> None:
    """The probe's actions carry its reset count and its call index: two episodes are two resets, each from call 0."""
    args = {"url": "", "protocol": protocol, "state": "qpos"}
    with served("peer-probe", protocol=protocol) as server:
        args["url"] = server.url
        runner.run(model="remote", model_args=args, suite=toy_suite, out=tmp_path / "r", episodes=2)
    run = vlascore.load_run(tmp_path / "r")
    actions = np.array(run.steps["action"].tolist())
    episode = run.steps["episode_id"].to_numpy()
    assert (run.episodes["status"] == "ok").all() and len(actions) == 80
    for k, eid in enumerate(["ToyPick-0", "ToyPick-1"]):
        mine = actions[episode == eid]
        assert np.allclose(mine[:, 3], (k + 1) / 100)  # the k-th reset
        assert np.allclose(mine[:, 2], np.arange(40) / 100)  # calls counted from 0 in each episode
        assert np.allclose(mine[:, 4], len(toy_suite.tasks[0].instruction) / 100)  # the instruction arrived


def test_the_vla_eval_client_brackets_every_episode(toy_suite: Suite) -> None:
    """episode_start before an episode's first observation, episode_end after its last (sent at the next reset and at
    close), seen from the server side of the protocol."""
    seen: list[str] = []
    with served("peer-probe", protocol="vla-eval") as server:
        with connect(server.url) as ws:  # a raw vla-eval client, to see what the server sees is answered
            ws.send(vla_eval.pack(vla_eval.Message("hello", vla_eval.hello_payload(), 1)))
            hello = vla_eval.unpack(ws.recv(timeout=5))
        client = RemoteAdapter(url=server.url, protocol="vla-eval")
        original = client._link.send

        def spy(frame: bytes, what: str) -> None:
            seen.append(vla_eval.unpack(frame).type)
            original(frame, what)

        client._link.send = spy  # type: ignore[method-assign]
        obs = Observation(np.zeros((8, 8, 3), np.uint8), {"qpos": np.zeros(3)}, privileged=None, step=0)  # type: ignore[arg-type]
        for seed in (0, 1):
            client.reset(EpisodeContext(task=toy_suite.tasks[0], seed=seed, episode_id=f"ToyPick-{seed}"))
            client.act(obs, "go")
        client.close()
    assert hello.type == "hello" and hello.payload["model_server"] == "vlascore:peer-probe"
    assert seen == ["episode_start", "episode_end", "episode_start", "episode_end"]


def test_an_openpi_client_on_one_connection_marks_episodes_with_a_control_message() -> None:
    """openpi's protocol has no reset; the `__ctrl__: episode_start` map some openpi forks send starts a new episode
    on the same connection (and the probe's reset count shows it)."""
    obs = {"observation/image": np.zeros((4, 4, 3), np.uint8), "prompt": "go"}
    with served("peer-probe", protocol="openpi") as server, connect(server.url) as ws:
        msgpack.unpackb(ws.recv(timeout=5))  # the metadata
        answers = []
        for frame in (obs, obs, {"__ctrl__": "episode_start", "__task__": "next"}, obs, {"__ctrl__": "dance"}):
            ws.send(packb(frame))
            answers.append(unpackb(ws.recv(timeout=5)))
    assert [a["actions"][0, 3] for a in (answers[0], answers[1], answers[3])] == pytest.approx([0.01, 0.01, 0.02])
    assert answers[1]["actions"][0, 2] == pytest.approx(0.01) and answers[3]["actions"][0, 2] == 0  # calls restart
    assert answers[2] == {"__ack__": "episode_start"} and answers[4] == {"__ack__": "ignored"}


def test_hostile_frames_get_each_protocols_error() -> None:
    with served("peer-probe", protocol="openpi") as server, connect(server.url) as ws:
        ws.recv(timeout=5)
        ws.send(b"\xc1 not msgpack")
        text = ws.recv(timeout=5)  # openpi's way: the traceback as text, then the connection closes
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    assert isinstance(text, str) and "ProtocolError" in text
    with served("peer-probe", protocol="vla-eval") as server, connect(server.url) as ws:
        ws.send(b"\xc1 not msgpack")
        garbled = vla_eval.unpack(ws.recv(timeout=5))
        ws.send(vla_eval.pack(vla_eval.Message("hello", {"protocol_version": 2}, 7)))
        old = vla_eval.unpack(ws.recv(timeout=5))
        ws.send(vla_eval.pack(vla_eval.Message("hello", vla_eval.hello_payload(), 8)))
        hello = vla_eval.unpack(ws.recv(timeout=5))  # vla-eval's way: an error, and the connection stays
        ws.send(vla_eval.pack(vla_eval.Message("observation", {"images": {"a": "not an image"}}, 9)))
        bad = vla_eval.unpack(ws.recv(timeout=5))
    assert garbled.type == "error" and "unreadable message" in garbled.payload["error"]
    assert (old.type, old.seq) == ("error", 7) and "protocol version 1, the client 2" in old.payload["error"]
    assert (hello.type, hello.seq) == ("hello", 8)
    assert (bad.type, bad.seq) == ("action", 9)  # no image: the probe sees none (-1), as an image-free task would
    assert bad.payload["actions"][0] == -1


def test_a_vla_eval_server_that_now_serves_another_policy_is_refused(toy_suite: Suite) -> None:
    port = free_port()
    context = EpisodeContext(task=toy_suite.tasks[0], seed=0, episode_id="ToyPick-0")
    with served("peer-probe", protocol="vla-eval", port=port) as server:
        client = RemoteAdapter(url=server.url, protocol="vla-eval")
        client.reset(context)
    with served("random", protocol="vla-eval", port=port):
        with pytest.raises(ProtocolError, match="now serves 'vlascore:random'.*started with 'vlascore:peer-probe'"):
            client.reset(context)
    client.close()


# -- API key --------------------------------------------------------------------------------------------------------


def test_the_api_key_is_checked_and_never_recorded(tmp_path: Path, toy_suite: Suite) -> None:
    log: list[str] = []
    with served("random", api_key="s3cret", log=log.append) as server:
        with pytest.raises(ServerRefusedError, match="HTTP 401: it wants an API key: pass -M api_key=KEY"):
            RemoteAdapter(url=server.url, retries=0)
        with pytest.raises(ServerRefusedError, match="HTTP 401: wrong API key: fix -M api_key="):
            RemoteAdapter(url=server.url, api_key="guess", retries=0)
        with urllib.request.urlopen(server.url.replace("ws://", "http://") + "/healthz", timeout=5) as health:
            status = health.status
        runner.run(
            model="remote",
            model_args={"url": server.url, "api_key": "s3cret"},
            suite=toy_suite,
            out=tmp_path / "r",
            episodes=1,
        )
    assert status == 200
    assert any("refused, no API key" in line for line in log) and any("wrong API key" in line for line in log)
    record = (tmp_path / "r" / "run.json").read_text()
    assert "s3cret" not in record and vlascore.load_run(tmp_path / "r").episodes["status"].eq("ok").all()


# -- batching across clients, whatever they speak -------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["openpi", "vla-eval"])
def test_clients_of_every_protocol_share_a_batched_instance(tmp_path: Path, toy_suite: Suite, protocol: str) -> None:
    suite = small_suite(toy_suite, ["ToyPick"], list(range(6)), max_steps=20)
    runner.run(model="random", suite=suite, out=tmp_path / "inline")
    with served("random", protocol=protocol, max_clients=3, max_batch_size=3, max_wait_ms=100) as server:
        summary = runner.run(
            model="remote",
            model_args={"url": server.url, "protocol": protocol},
            suite=suite,
            out=tmp_path / "r",
            executor=make_executor("local", workers=3),
        )
        sizes = server.batch_sizes
    assert (summary.ran, summary.errored) == (6, 0)
    assert max(sizes) > 1 and sum(k * v for k, v in sizes.items()) == 6 * 20
    if protocol == "vla-eval":  # its episode_start carries the seed: the same random actions as in-process
        assert _columns(vlascore.load_run(tmp_path / "inline")).equals(_columns(vlascore.load_run(tmp_path / "r")))


# -- each end names the protocol the other speaks -------------------------------------------------------------------


MISMATCHED = [(server, client) for server in PROTOCOLS for client in PROTOCOLS if server != client]


@pytest.mark.parametrize(("server_speaks", "client_speaks"), MISMATCHED)
def test_a_client_of_another_protocol_is_told_which_option_to_use(server_speaks: str, client_speaks: str) -> None:
    fix = f"-M protocol={server_speaks}" if server_speaks != "vlascore" else f"drop -M protocol={client_speaks}"
    log: list[str] = []
    with served("random", protocol=server_speaks, log=log.append) as server:
        with pytest.raises((ProtocolError, ServerRefusedError)) as caught:
            RemoteAdapter(url=server.url, protocol=client_speaks, timeout=10, retries=0)
    message = str(caught.value)
    assert fix in message and "\n" not in message, message


FOREIGN = {
    "openpi": packb({"observation/image": np.zeros((4, 4, 3), np.uint8), "prompt": "x"}),
    "vla-eval": vla_eval.pack(vla_eval.Message("hello", vla_eval.hello_payload(), 1)),
    "vlascore": packb({"type": "act", "id": 1, "instruction": "x", "observation": {}}),
}


@pytest.mark.parametrize(("server_speaks", "speaks"), MISMATCHED)
def test_the_server_log_names_the_protocol_of_a_foreign_client(server_speaks: str, speaks: str) -> None:
    frame = FOREIGN[speaks]
    log: list[str] = []
    with served("random", protocol=server_speaks, log=log.append) as server:
        with connect(server.url) as ws:
            ws.send(frame)
            replies = []
            try:
                while len(replies) < 3:
                    replies.append(ws.recv(timeout=10))
            except Exception:  # noqa: BLE001 - the server closes after telling
                pass
    assert any(f"start `vlascore serve` with --protocol {speaks}" in line for line in log), log
    if speaks == "openpi":  # openpi's client shows a text frame as the server's error
        assert any(isinstance(r, str) and f"--protocol {speaks}" in r for r in replies), replies


def test_the_real_openpi_client_gets_an_error_it_shows_from_a_server_of_another_protocol() -> None:
    """What openpi-client does with a text frame (raise it); the real client is run in test_protocol_peers.py."""
    with served("random", protocol="vla-eval") as server:
        with connect(server.url) as ws:
            greeting = msgpack.unpackb(ws.recv(timeout=10))  # after GRACE_S of silence: an error both can read
            ws.send(packb({"observation/image": np.zeros((4, 4, 3), np.uint8), "prompt": "x"}))
            text = ws.recv(timeout=10)
    assert greeting["type"] == "error" and "-M protocol=vla-eval" in greeting["message"]
    assert isinstance(text, str) and "--protocol openpi" in text


class SlowToBuild(Probe):
    """A probe whose every instance takes 1.5 s to build: the server's greeting to a second client comes late."""

    def __init__(self, chunk: int = 1, execute: int = 0) -> None:
        threading.Event().wait(1.5)
        super().__init__(chunk, execute)


ADAPTERS.register("slow-probe", SlowToBuild)


def test_a_late_greeting_is_still_accepted_after_the_probe(toy_suite: Suite) -> None:
    """The client probes a server silent for a second; a vlascore server that greets later answers the probe with
    an error, which the client skips, and the episode goes on as usual."""
    with served("slow-probe", max_clients=2) as server:
        first = RemoteAdapter(url=server.url)  # holds the instance built at start-up
        second = RemoteAdapter(url=server.url, timeout=10)  # waits 1.5 s for an instance of its own
        ctx = EpisodeContext(task=toy_suite.tasks[0], seed=0, episode_id="ToyPick-0")
        second.reset(ctx)
        obs = Observation(np.zeros((8, 8, 3), np.uint8), {"qpos": np.zeros(3)}, privileged=None, step=0)  # type: ignore[arg-type]
        step = second.act(obs, "go")
        first.close()
        second.close()
    assert second._link._stale == 0 and float(step.action[3]) == pytest.approx(0.01)


# -- serving checks -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["openpi", "vla-eval"])
def test_experts_that_read_ground_truth_are_refused_for_foreign_protocols(protocol: str) -> None:
    with pytest.raises(ValueError, match=f"which {protocol} clients do not send: serve it with the vlascore protocol"):
        PolicyServer("scripted", port=0, protocol=protocol)


class Fails(Adapter):
    name = "fails-at-3"

    def reset(self, context: EpisodeContext) -> None:
        self.t = 0

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        self.t += 1
        if self.t == 3:
            raise RuntimeError("boom at call 3")
        return PolicyStep(np.zeros(7))


ADAPTERS.register("fails-at-3", Fails)


@pytest.mark.parametrize("protocol", ["openpi", "vla-eval"])
def test_a_served_failure_errors_that_episode_and_the_next_goes_on(
    tmp_path: Path, toy_suite: Suite, protocol: str
) -> None:
    with served("fails-at-3", protocol=protocol) as server:
        summary = runner.run(
            model="remote",
            model_args={"url": server.url, "protocol": protocol},
            suite=small_suite(toy_suite, ["ToyPick"], [0, 1], max_steps=5),
            out=tmp_path / "r",
        )
    eps = vlascore.load_run(tmp_path / "r").episodes
    assert (summary.ran, summary.errored) == (2, 2)  # each episode fails at its own third call
    assert all("RuntimeError: boom at call 3" in reason for reason in eps["failure_reason"]), list(
        eps["failure_reason"]
    )
    assert list(eps["num_steps"]) == [2, 2]


# -- vla-eval's wire format -----------------------------------------------------------------------------------------


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _frame(payload: dict[str, Any], kind: str = "observation", **fields: Any) -> bytes:
    return bytes(msgpack.packb({"type": kind, "payload": payload, "seq": 3, "timestamp": 1.0, **fields}))


def test_vla_eval_images_arrive_exactly() -> None:
    image = np.random.default_rng(0).integers(0, 255, (6, 5, 3), dtype=np.uint8)
    png = {"__image__": True, "format": "png", "data": _png(image), "shape": [6, 5, 3]}
    raw = {"__image__": True, "format": "raw", "data": image.tobytes(), "dtype": "|u1", "shape": [6, 5, 3]}
    array = {"__ndarray__": True, "data": image.tobytes(), "dtype": "|u1", "shape": [6, 5, 3]}
    message = vla_eval.unpack(_frame({"images": {"a": png, "b": raw, "c": array}}))
    for name in "abc":
        got = message.payload["images"][name]
        assert got.dtype == np.uint8 and np.array_equal(got, image) and got.flags.writeable
    assert (message.type, message.seq) == ("observation", 3)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"__image__": True, "format": "png", "data": _png(np.zeros((4, 4, 3), np.uint8)), "shape": [8, 4, 3]}, "4x4"),
        ({"__image__": True, "format": "png", "data": b"\x89PNG junk", "shape": [4, 4, 3]}, "unreadable png"),
        ({"__image__": True, "format": "png", "data": b"x", "shape": [50000, 50000, 3]}, "decode to more than"),
        ({"__image__": True, "format": "gif", "data": b"x", "shape": [4, 4, 3]}, "unknown image format"),
        ({"__image__": True, "format": "png", "data": b"x", "shape": [4, 4, 2]}, "HxWxC"),
        ({"__ndarray__": True, "data": b"\0" * 3, "dtype": "<f8", "shape": [1]}, "does not fit"),
    ],
)
def test_hostile_vla_eval_values_are_protocol_errors(payload: dict[str, Any], match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        vla_eval.unpack(_frame({"images": {"x": payload}}))


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (_frame({}, kind="dance"), "unknown vla-eval message type"),
        (bytes(msgpack.packb({"type": "hello", "payload": {}})), "no seq, timestamp"),
        (_frame([], kind="hello"), "payload must be a map"),  # type: ignore[arg-type]
        (bytes(msgpack.packb([1, 2])), "must be a map"),
        (b"\xc1", "not a msgpack message"),
    ],
)
def test_malformed_vla_eval_messages_are_protocol_errors(frame: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        vla_eval.unpack(frame)


ROTATIONS = ["euler_xyz", "euler_rpy", "axis_angle", "quaternion", "rot6d"]


@pytest.mark.parametrize("rotation", ROTATIONS)
@pytest.mark.parametrize("mode", ["ee_delta", "ee_absolute"])
@pytest.mark.parametrize("gripper_open", [1, -1])
def test_vlascore_conventions_round_trip_through_vla_eval_action_specs(
    rotation: str, mode: str, gripper_open: int
) -> None:
    dims = {"euler_xyz": 3, "euler_rpy": 3, "axis_angle": 3, "quaternion": 4, "rot6d": 6}
    space = ActionSpace(mode=mode, rotation=rotation, dim=3 + dims[rotation] + 1, gripper_open=gripper_open)  # type: ignore[arg-type]
    stated, unmapped = vla_eval.action_space_from_spec(vla_eval.spec_from_action_space(space))
    assert not unmapped and ActionSpace(**stated) == space


def test_vla_eval_names_map_to_vlascore_conventions() -> None:
    assert vla_eval.action_space_from_spec(BRIDGE) == (
        {"mode": "ee_delta", "rotation": "euler_rpy", "gripper_open": -1, "dim": 7},
        {},
    )
    stated, unmapped = vla_eval.action_space_from_spec(QUATERNION_XYZW)
    assert unmapped == {"rotation": "rotation format 'quaternion_xyzw'"} and stated["dim"] == 8
    options = vla_eval.VlaEvalOptions.parse({})
    with pytest.raises(ValueError, match="declares the rotation format 'quaternion_xyzw'.*-M action_rotation="):
        options.action_space(QUATERNION_XYZW, "ws://x")
    declared = vla_eval.VlaEvalOptions.parse({"action_rotation": "quaternion", "action_normalized": "false"})
    assert declared.action_space(QUATERNION_XYZW, "ws://x").rotation == "quaternion"


def test_the_serve_command_takes_a_protocol() -> None:
    from typer.testing import CliRunner

    from vlascore.cli import app

    cli = CliRunner()
    result = cli.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert "--protocol openpi" in result.output and "--protocol vla-eval" in result.output
    assert "VLASCORE_SERVE_API_KEY" in result.output
    result = cli.invoke(app, ["serve", "-m", "random", "--protocol", "grpc", "--port", "0"])
    assert result.exit_code == 2 and "--protocol must be one of vlascore, openpi, vla-eval" in result.stderr
    result = cli.invoke(app, ["serve", "-m", "scripted", "--protocol", "openpi", "--port", "0"])
    assert result.exit_code == 1 and "reads simulator ground truth" in result.stderr
    assert "Traceback" not in result.output
