"""`vlascore run --model remote` against an in-process `vlascore serve` on the toy backend: identical records,
served exceptions, timeouts, refusals and handshake checks (all on ephemeral ports, no sleeps)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from servekit import TIMING_COLUMNS, free_port, served
from typer.testing import CliRunner

import vlascore
from vlascore import runner
from vlascore.adapters import ADAPTERS, Adapter, EpisodeContext, PolicyStep
from vlascore.backends import Observation
from vlascore.cli import app
from vlascore.serving.client import ServerRefusedError, ServerUnreachableError
from vlascore.serving.remote import RemoteAdapter
from vlascore.serving.server import PolicyServer, ServingError
from vlascore.serving.wire import ProtocolError
from vlascore.suites import Suite


def run_both(tmp_path: Path, suite: Suite, model: str, url: str, episodes: int, **remote: Any) -> tuple[Any, Any]:
    """The same seeds in-process and through the server; returns (local, remote) loaded runs."""
    runner.run(model=model, suite=suite, out=tmp_path / "local", episodes=episodes)
    runner.run(
        model="remote", model_args={"url": url, **remote}, suite=suite, out=tmp_path / "remote", episodes=episodes
    )
    return vlascore.load_run(tmp_path / "local"), vlascore.load_run(tmp_path / "remote")


def test_a_served_policy_records_exactly_what_it_records_in_process(tmp_path: Path, toy_suite: Suite) -> None:
    with served("scripted") as server:
        local, remote = run_both(tmp_path, toy_suite, "scripted", server.url, episodes=4)
    assert len(local.steps) > 40 and list(local.steps.columns) == list(remote.steps.columns)
    for column in local.steps.columns:  # every StepRecord field, one by one for a readable failure
        assert local.steps[column].equals(remote.steps[column]), column
    assert local.episodes.drop(columns=TIMING_COLUMNS).equals(remote.episodes.drop(columns=TIMING_COLUMNS))
    assert local.episodes["success"].all() and (local.episodes["termination"] == "success").all()
    for eid in local.episodes["episode_id"]:
        assert np.array_equal(local.frames(eid)[0], remote.frames(eid)[0])
    info = dict(remote.run.adapter_info)
    served_as = info.pop("remote")
    assert info == local.run.adapter_info  # the served declaration is the run's declaration
    assert (served_as["adapter"], served_as["url"], served_as["config"]) == ("scripted", server.url, {"gain": 1.0})
    assert remote.run.adapter_config == {
        "url": server.url,
        "protocol": "vlascore",
        "served_adapter": "scripted",
        "served_config": {"gain": 1.0},
    }


def test_an_exception_in_the_served_adapter_errors_that_episode_only(tmp_path: Path, toy_suite: Suite) -> None:
    log: list[str] = []
    with served("flaky", {"mode": "raise"}, log=log.append) as server:
        summary = runner.run(
            model="remote", model_args={"url": server.url}, suite=toy_suite, out=tmp_path / "r", episodes=4
        )
    assert (summary.ran, summary.errored) == (4, 1)
    assert sum(line.endswith("connected (1/1 client(s))") for line in log) == 1  # one connection throughout
    assert any(line.endswith("act raised RuntimeError: boom at step 3") for line in log)
    eps = vlascore.load_run(tmp_path / "r").episodes.set_index("episode_id")
    bad = eps.loc["ToyPick-1"]
    assert bad["status"] == "errored" and bad["num_steps"] == 3  # the steps before the failure are kept
    assert bad["failure_reason"] == (
        f"RemotePolicyError in policy at step 3: RuntimeError: boom at step 3 (in act of "
        f"'flaky' served at {server.url})"
    )
    assert (eps.drop(index="ToyPick-1")["status"] == "ok").all()


class Probe(Adapter):
    """Records what a served adapter receives; blocks one call until released (for the timeout test)."""

    name = "probe"
    seen: ClassVar[list[Observation]] = []
    hold: ClassVar[tuple[int, threading.Event] | None] = None

    def reset(self, context: EpisodeContext) -> None:
        self.seed = context.seed

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        Probe.seen.append(obs)
        if Probe.hold is not None and Probe.hold[0] == self.seed:
            Probe.hold[1].wait(timeout=30)  # released by the test once the client has given up
        return PolicyStep(np.zeros(7))


ADAPTERS.register("probe", Probe)


def test_privileged_state_is_withheld_from_policies_that_do_not_declare_it(tmp_path: Path, toy_suite: Suite) -> None:
    Probe.seen.clear()
    small = toy_suite.model_copy(update={"tasks": [toy_suite.tasks[0].model_copy(update={"max_steps": 3})]})
    with served("probe") as server:
        runner.run(model="remote", model_args={"url": server.url}, suite=small, out=tmp_path / "r", episodes=1)
    steps = vlascore.load_run(tmp_path / "r").steps
    assert len(Probe.seen) == 3
    first = Probe.seen[0]
    assert first.image is not None and first.image.dtype == np.uint8 and first.image.shape == (32, 32, 3)
    assert {k: v.dtype for k, v in first.proprio.items()} == {
        "qpos": np.float64,
        "qvel": np.float64,
        "ee_pose": np.float64,
    }
    assert np.isnan(first.privileged.ee_pose).all() and first.privileged.objects == {}
    assert steps["ee_pose"].iloc[0] == [0.0, 0.0, 0.2, 1.0, 0.0, 0.0, 0.0]  # the record still has the ground truth


def test_a_call_past_the_timeout_errors_that_episode_and_the_next_reconnects(tmp_path: Path, toy_suite: Suite) -> None:
    release = threading.Event()
    Probe.hold = (1, release)

    def on_episode(ep: Any) -> None:
        if ep.status == "errored":  # the client gave up on the held call: let the server side finish it
            release.set()

    try:
        with served("probe", max_clients=2) as server:  # the held instance stays busy until released
            summary = runner.run(
                model="remote",
                model_args={"url": server.url, "timeout": 1.0},
                suite=toy_suite,
                out=tmp_path / "r",
                episodes=3,
                on_episode=on_episode,
            )
    finally:
        Probe.hold = None
        release.set()
    assert (summary.ran, summary.errored) == (3, 1)
    eps = vlascore.load_run(tmp_path / "r").episodes.set_index("episode_id")
    assert eps.loc["ToyPick-1", "failure_reason"].startswith(
        f"CallTimeoutError in policy at step 0: the policy server at {server.url} did not answer act (request "
    )
    reason = eps.loc["ToyPick-1", "failure_reason"]
    assert "within 1 s" in reason and "raise -M timeout=SECONDS" in reason
    assert eps.loc["ToyPick-2", "status"] == "ok" and eps.loc["ToyPick-2", "num_steps"] == 40


def test_nothing_listening_is_a_clear_setup_error(tmp_path: Path, toy_suite: Suite) -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    with pytest.raises(
        ServerUnreachableError,
        match=rf"cannot reach a policy server at {url} after 1 attempt\(s\): "
        r"connection refused .*`vlascore serve --model NAME --port PORT`",
    ):
        runner.run(model="remote", model_args={"url": url, "retries": 0}, suite=toy_suite, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()
    result = CliRunner().invoke(
        app,
        [
            "run",
            "-m",
            "remote",
            "-M",
            f"url={url}",
            "-M",
            "retries=0",
            "-s",
            "toy",
            "-o",
            str(tmp_path / "cli"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 2 and f"cannot reach a policy server at {url}" in result.stderr
    assert "Traceback" not in result.output


def test_bad_options_are_named(tmp_path: Path, toy_suite: Suite) -> None:
    with pytest.raises(ValueError, match="not a WebSocket URL: use ws://HOST:PORT"):
        RemoteAdapter(url="http://127.0.0.1:8765")
    with pytest.raises(ValueError, match="protocol='grpc' is not one of vlascore, openpi"):
        RemoteAdapter(protocol="grpc")
    with pytest.raises(ValueError, match=r"bad --model-arg for adapter 'remote'.*unknown option\(s\) image_key"):
        runner.run(model="remote", model_args={"image_key": "x"}, suite=toy_suite, out=tmp_path / "r")


def test_a_busy_server_refuses_extra_clients_and_reuses_the_instance_after(toy_suite: Suite) -> None:
    with served("scripted", max_clients=1) as server:
        first = RemoteAdapter(url=server.url)
        with pytest.raises(ServerRefusedError, match=r"busy after 1 attempt.*larger --max-clients"):
            RemoteAdapter(url=server.url, retries=0)
        first.close()
        second = RemoteAdapter(url=server.url, retries=5)  # the first one's instance is handed back on disconnect
        task = toy_suite.tasks[0]
        second.reset(EpisodeContext(task=task, seed=0, episode_id="ToyPick-0"))
        second.close()


def test_a_server_that_now_serves_another_policy_is_refused(toy_suite: Suite) -> None:
    port = free_port()
    context = EpisodeContext(task=toy_suite.tasks[0], seed=0, episode_id="ToyPick-0")
    with served("scripted", port=port) as server:
        client = RemoteAdapter(url=server.url)
        client.reset(context)
    with served("random", port=port):
        with pytest.raises(ProtocolError, match="now serves 'random'.*started with 'scripted'.*refusing to mix"):
            client.reset(context)
    client.close()


def test_a_taken_port_is_a_clear_error() -> None:
    with served("random") as server:
        port = int(server.url.rsplit(":", 1)[1])
        with pytest.raises(ServingError, match=f"cannot listen on 127.0.0.1:{port}.*pick another --port"):
            PolicyServer("random", port=port)
