"""vlascore against the real other side of each protocol: openpi's own client (openpi-client 0.1.2 from PyPI) and
vla-eval's model server and benchmark client (vla-eval 0.8.0 from PyPI), each in an environment of its own
(openpi-client pins numpy < 2; both bring their own websockets), made once under the test cache by venvkit.

The policy served to them is tests/serving/peers/probe_policy.py, whose actions say what it was given; the peers'
scripts (tests/serving/peers/) print or write what they saw, and the tests compare it with the probe's answers
computed here. Everything runs on 127.0.0.1 with bounded waits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from servekit import ServeProcess
from venvkit import cached_venv, run

import vlascore
from vlascore import runner
from vlascore.adapters import EpisodeContext
from vlascore.backends import Observation
from vlascore.serving.remote import RemoteAdapter
from vlascore.serving.wire import ProtocolError
from vlascore.suites import Suite

PEERS = Path(__file__).parent / "peers"
sys.path.insert(0, str(PEERS))
import observations  # noqa: E402
from probe_policy import Probe  # noqa: E402

PROBE = f"{PEERS / 'probe_policy.py'}:Probe"
OPENPI = ["openpi-client==0.1.2", "typing_extensions"]  # openpi-client imports typing_extensions undeclared
VLA_EVAL = ["vla-eval==0.8.0"]


@pytest.fixture(scope="module")
def openpi_python() -> Path:
    return cached_venv("openpi-client-0.1.2", OPENPI, "import openpi_client.websocket_client_policy")


@pytest.fixture(scope="module")
def vla_eval_python() -> Path:
    return cached_venv("vla-eval-0.8.0", VLA_EVAL, "import vla_eval.api, vla_eval.model_servers.predict")


def probe_answers(observations: list[list[tuple[Any, Any, str]]], chunk: int = 1, execute: int = 0) -> list[Any]:
    """What the probe answers to these episodes of (image, state, instruction) calls, computed in process."""
    probe, out = Probe(chunk, execute), []
    for episode in observations:
        probe.reset(None)  # type: ignore[arg-type]
        out.append(
            [
                probe.act(Observation(image, {"state": state}, privileged=None, step=0), text).action  # type: ignore[arg-type]
                for image, state, text in episode
            ]
        )
    return out


# -- openpi ---------------------------------------------------------------------------------------------------------


def _openpi_observation(episode: int, step: int) -> tuple[Any, Any, str]:
    """The peer script's observation (peers/openpi_episodes.py), as the served probe sees it."""
    obs = observations.openpi(episode, step)
    return obs["observation/image"], obs["observation/state"], obs["prompt"]


@pytest.mark.parametrize("api_key", [None, "s3cret"])
def test_openpi_client_runs_episodes_against_vlascore_serve(openpi_python: Path, api_key: str | None) -> None:
    env = {"VLASCORE_SERVE_API_KEY": api_key} if api_key else {}
    with ServeProcess("-m", PROBE, "--protocol", "openpi", "--port", "0", env=env) as server:
        done = run(openpi_python, str(PEERS / "openpi_episodes.py"), server.url, "2", "4", *([api_key] * bool(api_key)))
        if api_key:
            refused = run(openpi_python, str(PEERS / "openpi_episodes.py"), server.url, "1", "1", "wrong")
        code, _, errors = server.stop(signal.SIGTERM)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    expected = probe_answers([[_openpi_observation(e, s) for s in range(4)] for e in range(2)])
    for got_episode, want_episode in zip(seen["episodes"], expected, strict=True):
        for got, want in zip(got_episode, want_episode, strict=True):
            assert got["dtype"] == "float32" and np.array_equal(np.float32(got["actions"]), want[None, :])
            assert got["timing"] == ["infer_ms"] and got["reasoning"].startswith("call ")
    assert seen["episodes"][1][0]["reasoning"] == "call 1 of episode 2"  # a new connection, a new episode
    meta = seen["metadata"]
    assert meta["adapter"] == PROBE and meta["info"]["chunk_size"] == 1 and meta["action_horizon"] == 1
    assert code == 0 and errors.count("disconnected after 4 request(s)") == 2
    if api_key:
        assert refused.returncode != 0 and "HTTP 401" in refused.stderr
        assert "refused, wrong API key" in errors


def test_openpi_client_is_told_to_use_protocol_openpi(openpi_python: Path) -> None:
    """The issue's report: openpi's client got an error map back from a `vlascore serve` of the default protocol."""
    with ServeProcess("-m", PROBE, "--port", "0") as server:
        done = run(openpi_python, str(PEERS / "openpi_episodes.py"), server.url, "1", "1")
        server.stop(signal.SIGTERM)
    assert done.returncode != 0
    assert "Error in inference server" in done.stderr and "--protocol openpi" in done.stderr


def test_openpi_clients_are_batched_together(openpi_python: Path, tmp_path: Path) -> None:
    """Two openpi clients at once on a batching server: their requests share batched calls, and each still gets the
    answers to its own observations (each episode on a fork of its own). The clients meet at a barrier once both are
    connected for an episode: the server answers at once when every open session is waiting, so clients that happen
    not to overlap would never be batched."""
    script = str(PEERS / "openpi_episodes.py")
    args = ["--max-clients", "2", "--max-batch-size", "2", "--max-wait-ms", "3000"]
    env = {**os.environ, "PEER_BARRIER": str(tmp_path), "PEER_PARTIES": "2"}
    with ServeProcess("-m", PROBE, "--protocol", "openpi", "--port", "0", *args) as server:
        clients = [
            subprocess.Popen(
                [str(openpi_python), script, server.url, "2", "6"], stdout=subprocess.PIPE, text=True, env=env
            )
            for _ in range(2)
        ]
        outputs = [c.communicate(timeout=120)[0] for c in clients]
        code, _, errors = server.stop(signal.SIGTERM)
    assert code == 0 and all(c.returncode == 0 for c in clients)
    expected = [probe_answers([[_openpi_observation(e, s) for s in range(6)]])[0] for e in range(2)]
    for output in outputs:
        seen = json.loads(output.strip().splitlines()[-1])
        for got_episode, want_episode in zip(seen["episodes"], expected, strict=True):
            got = [np.float32(step["actions"])[0] for step in got_episode]
            assert np.array_equal(np.array(got), np.array(want_episode))
    line = next(line for line in errors.splitlines() if "act request(s) in" in line)
    requests, batches = (int(word) for word in line.split() if word.isdigit())
    assert requests == 24 and batches < requests, line  # 2 clients x 2 episodes x 6 calls, some of them together


# -- vla-eval: its model server serves vlascore's episodes -----------------------------------------------------------


class VlaEvalServer:
    """peers/vla_eval_model_server.py in vla-eval's environment; `url` from its first line, `log()` its events."""

    def __init__(self, python: Path, folder: Path, chunk: int = 0, spec: str = "none") -> None:
        self.log_path = folder / "model_server.jsonl"
        self.proc = subprocess.Popen(
            [str(python), str(PEERS / "vla_eval_model_server.py"), str(self.log_path), str(chunk), spec],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until it listens (or dies)
        if not line.startswith("serving ws://127.0.0.1:"):
            self.proc.kill()
            raise AssertionError(f"the vla-eval model server printed {line!r}: {self.proc.communicate(timeout=10)}")
        self.url = line.split()[1]

    def log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]

    def close(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=10)


@pytest.fixture
def vla_eval_server(vla_eval_python: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[VlaEvalServer]:
    chunk, spec = getattr(request, "param", (0, "none"))
    server = VlaEvalServer(vla_eval_python, tmp_path, chunk, spec)
    try:
        yield server
    finally:
        server.close()


def test_a_vla_eval_model_server_serves_vlascore_episodes(
    vla_eval_server: VlaEvalServer, tmp_path: Path, toy_suite: Suite
) -> None:
    args = {"url": vla_eval_server.url, "protocol": "vla-eval", "state": "qpos,ee_pose"}
    summary = runner.run(model="remote", model_args=args, suite=toy_suite, out=tmp_path / "r", episodes=2)
    run_ = vlascore.load_run(tmp_path / "r")
    events = vla_eval_server.log()
    assert (summary.ran, summary.errored) == (2, 0)
    # Two episodes, each bracketed by episode_start and episode_end, with the task and seed in the start.
    kinds = [e["event"] for e in events]
    starts = [i for i, k in enumerate(kinds) if k == "start"]
    assert kinds.count("start") == kinds.count("end") == 2 and kinds[-1] == "end"
    assert [events[i]["task"]["seed"] for i in starts] == [0, 1]
    assert events[starts[0]]["task"]["task_description"] == toy_suite.tasks[0].instruction
    observations = [e for e in events if e["event"] == "observation"]
    assert len(observations) == len(run_.steps) == int(run_.episodes["num_steps"].sum())
    # Each observation arrived as recorded here, and each recorded action is the one the server computed.
    actions = np.array(run_.steps["action"].tolist())
    for obs, (_, step), action in zip(observations, run_.steps.iterrows(), actions, strict=True):
        assert obs["cameras"] == ["primary"] and obs["image_shape"] == [32, 32, 3]
        assert len(obs["state"]) == 4 + 7 and np.allclose(obs["state"][4:], step["ee_pose"])  # toy qpos, ee_pose
        assert obs["text"] == toy_suite.tasks[0].instruction
        assert obs["step"] == step["step"]  # vla-eval's own per-episode counter restarted at the episode_start
        state = sum(obs["state"])
        want = [step["step"] / 100, obs["image_mean"] / 255, state / 100, len(obs["text"]) / 100, 0, 0, -1]
        assert np.allclose(action, np.float32(want))
    assert run_.run.adapter_config["model_server"] == "Recorder"
    assert run_.run.adapter_info["remote"]["server"]["harness_version"] == "0.8.0"


@pytest.mark.parametrize("vla_eval_server", [(3, "bridge")], indirect=True)
def test_a_vla_eval_servers_action_spec_and_chunks_are_taken(vla_eval_server: VlaEvalServer, toy_suite: Suite) -> None:
    """The real server's spec (vla-eval's POSITION_DELTA, ROTATION_EULER, GRIPPER_CLOSE_POS) becomes the adapter's
    convention, and its chunks of 3 play out 2 at a time with -M chunk_size=3 -M execute=2."""
    client = RemoteAdapter(url=vla_eval_server.url, protocol="vla-eval", chunk_size=3, execute=2)
    space = client.action_space
    assert (space.mode, space.rotation, space.gripper_open, space.dim) == ("ee_delta", "euler_rpy", -1, 7)
    assert (client.chunk_size, client.execute_steps) == (3, 2)
    client.reset(EpisodeContext(task=toy_suite.tasks[0], seed=5, episode_id="ToyPick-5"))
    obs = Observation(np.full((8, 8, 3), 51, np.uint8), {"qpos": np.ones(3)}, privileged=None, step=0)  # type: ignore[arg-type]
    chunk = client.act(obs, "go").action
    client.close()
    assert chunk.shape == (3, 7) and np.allclose(chunk[:, 4], [0, 0.1, 0.2]) and np.allclose(chunk[:, 1], 0.2)


@pytest.mark.parametrize("protocol", ["vlascore", "openpi"])
def test_a_vla_eval_model_server_is_recognised(vla_eval_server: VlaEvalServer, protocol: str) -> None:
    """The issue's report: both ends waited for the other, and vlascore said it could not reach a server."""
    with pytest.raises(ProtocolError, match=r"speaks vla-eval's protocol .*: use -M protocol=vla-eval$"):
        RemoteAdapter(url=vla_eval_server.url, protocol=protocol, timeout=10, retries=0)


# -- vla-eval: its benchmark client drives `vlascore serve --protocol vla-eval` ---------------------------------------


def test_vla_eval_run_drives_vlascore_serve(vla_eval_python: Path, tmp_path: Path) -> None:
    out = tmp_path / "actions.json"
    config = {
        "server": {"timeout": 30},
        "output_dir": str(tmp_path / "results"),
        "benchmarks": [
            {
                "benchmark": "vla_eval_bench:ProbeBenchmark",
                "episodes_per_task": 2,
                "params": {"out": str(out), "steps": 5},
            }
        ],
    }
    (tmp_path / "eval.yaml").write_text(json.dumps(config))  # JSON is YAML
    vla_eval = vla_eval_python.parent / "vla-eval"
    with ServeProcess("-m", PROBE, "-M", "chunk=3", "-M", "execute=2", "--protocol", "vla-eval", "--port", "0") as s:
        done = subprocess.run(
            [
                str(vla_eval),
                "run",
                "-c",
                str(tmp_path / "eval.yaml"),
                "--server-url",
                s.url,
                "--no-docker",
                "--no-save",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(PEERS)},
        )
        code, _, errors = s.stop(signal.SIGTERM)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "ProbeBenchmark: 100.0%" in done.stdout and code == 0
    seen = json.loads(out.read_text())
    observation = observations.vla_eval
    # The probe returns chunks of 3; the server plays the first 2 of each, one per observation, then asks again.
    calls = [[observation(e, s) for s in range(0, 5, 2)] for e in range(2)]
    chunks = probe_answers([[(o["images"]["primary"], o["state"], o["task_description"]) for o in c] for c in calls], 3)
    for episode, want in zip(seen, chunks, strict=True):
        played = [row for chunk in want for row in chunk[:2]][:5]
        assert [np.float32(step["actions"]).tolist() for step in episode] == [row.tolist() for row in played]
        assert [step["reasoning"] is not None for step in episode] == [True, False, True, False, True]
        assert all(step["dtype"] == "float32" for step in episode)
    assert "disconnected after 10 request(s)" in errors


def test_vla_eval_run_against_the_default_protocol_is_told_to_use_protocol_vla_eval(
    vla_eval_python: Path, tmp_path: Path
) -> None:
    """The issue's report: vla-eval's benchmark client crashed on vlascore's greeting; the server says why."""
    config = {"benchmarks": [{"benchmark": "vla_eval_bench:ProbeBenchmark", "params": {"out": str(tmp_path / "a")}}]}
    (tmp_path / "eval.yaml").write_text(json.dumps(config))
    with ServeProcess("-m", PROBE, "--port", "0") as s:
        done = subprocess.run(
            [str(vla_eval_python.parent / "vla-eval"), "run", "-c", str(tmp_path / "eval.yaml"), "--server-url", s.url]
            + ["--no-docker", "--no-save"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(PEERS)},
        )
        _, _, errors = s.stop(signal.SIGTERM)
    assert done.returncode != 0
    assert "speaks vla-eval's protocol" in errors and "start `vlascore serve` with --protocol vla-eval" in errors
