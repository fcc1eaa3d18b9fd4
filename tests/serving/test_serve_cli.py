"""`vlascore serve` as a real child process: help, stopping on signals, a server killed mid-run and brought back,
stateless replay, missing extras, and (slow) the CLI acceptance run on ManiSkill's tabletop suite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest
from servekit import TIMING_COLUMNS, ServeProcess
from typer.testing import CliRunner

import vlascore
from vlascore import runner
from vlascore.adapters import ADAPTERS, EpisodeContext, PolicyStep
from vlascore.backends import Observation
from vlascore.cli import app
from vlascore.extras import available
from vlascore.serving.client import ServerUnreachableError
from vlascore.serving.remote import RemoteAdapter
from vlascore.suites import Suite


def test_help_shows_examples() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Examples" in result.output and "vlascore serve --model scripted --port 8765" in result.output
    assert "vlascore run --model remote -M url=ws://127.0.0.1:8765" in result.output
    assert "serve" in CliRunner().invoke(app, ["--help"]).output


def test_setup_errors_are_one_line() -> None:
    result = CliRunner().invoke(app, ["serve", "--model", "scriptd", "--port", "0"])
    assert result.exit_code == 1 and "Did you mean 'scripted'" in result.stderr and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["serve", "--model", "random", "-M", "nonsense", "--port", "0"])
    assert result.exit_code == 2 and "key=value" in result.stderr


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_cleanly_on_a_signal_with_a_client_connected(stop: signal.Signals, toy_suite: Suite) -> None:
    # Started with SIGINT ignored, as a shell does for a background job: Ctrl-C must still stop it.
    with ServeProcess("--model", "scripted", "--port", "0", ignore_sigint=True) as server:
        client = RemoteAdapter(url=server.url, retries=0)
        assert client.info()["remote"]["adapter"] == "scripted"
        code, out, errors = server.stop(stop)
    assert code == 0, errors
    assert out.endswith("stopped\n") and "Traceback" not in errors  # (the URL line was read by ServeProcess)
    assert "connected (1/1 client(s))" in errors and "disconnected after 0 request(s)" in errors
    with pytest.raises(ServerUnreachableError, match=f"cannot reach a policy server at {server.url}"):
        client.reset(EpisodeContext(task=toy_suite.tasks[0], seed=0, episode_id="ToyPick-0"))  # it closed us


class HookedRemote(RemoteAdapter):
    """The remote adapter, running `hook` just before the act() call number `at[1]` of seed `at[0]`."""

    hook: ClassVar[Any] = None
    at: ClassVar[tuple[int, int]] = (1, 3)
    instances: ClassVar[list[HookedRemote]] = []

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        HookedRemote.instances.append(self)

    def reset(self, context: EpisodeContext) -> None:
        self._seed, self._calls = context.seed, 0
        super().reset(context)

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        hook = HookedRemote.hook  # read from the class: a plain function, not a bound method
        if (self._seed, self._calls) == self.at and hook is not None:
            hook()
        self._calls += 1
        return super().act(obs, instruction)


ADAPTERS.register("remote-hooked", HookedRemote)


def test_a_server_killed_mid_run_errors_episodes_and_the_client_reconnects(tmp_path: Path, toy_suite: Suite) -> None:
    """Killed in episode 1 (lost mid-episode), still down for episode 2 (unreachable), back for episode 3."""
    servers = [ServeProcess("--model", "scripted", "--port", "0")]
    url, port = servers[0].url, servers[0].port

    def bring_back(ep: Any) -> None:
        if ep.episode_id == "ToyPick-2":
            servers.append(ServeProcess("--model", "scripted", "--port", str(port)))

    HookedRemote.hook, HookedRemote.at = servers[0].kill, (1, 3)
    try:
        summary = runner.run(
            model="remote-hooked",
            model_args={"url": url, "retries": 0},
            suite=toy_suite,
            out=tmp_path / "remote",
            episodes=4,
            on_episode=bring_back,
        )
    finally:
        HookedRemote.hook = None
        for s in servers:
            s.kill()
    assert (summary.ran, summary.errored) == (4, 2) and len(servers) == 2
    run = vlascore.load_run(tmp_path / "remote")
    eps = run.episodes.set_index("episode_id")
    lost, down = eps.loc["ToyPick-1"], eps.loc["ToyPick-2"]
    assert lost["failure_reason"].startswith(
        f"ConnectionLostError in policy at step 3: lost the connection to the policy server at {url} during act"
    )
    assert "episode ToyPick-1 cannot go on (the next episode reconnects)" in lost["failure_reason"]
    assert lost["num_steps"] == 3  # recorded up to the loss
    assert down["failure_reason"] == (
        f"ServerUnreachableError in reset: cannot reach a policy server at {url} after "
        "1 attempt(s): connection refused (nothing listens there); start one with "
        "`vlascore serve --model NAME --port PORT` (in the model's environment), or "
        "fix -M url="
    )
    assert eps.loc["ToyPick-0", "status"] == "ok" and eps.loc["ToyPick-3", "status"] == "ok"
    runner.run(model="scripted", suite=toy_suite, out=tmp_path / "local", episodes=4)
    local = vlascore.load_run(tmp_path / "local").steps
    for eid in ("ToyPick-0", "ToyPick-3"):  # the episodes around the outage are exactly the in-process ones
        ours, theirs = run.steps[run.steps.episode_id == eid], local[local.episode_id == eid]
        assert ours.reset_index(drop=True).equals(theirs.reset_index(drop=True)), eid
    head = local[local.episode_id == "ToyPick-1"].head(3).reset_index(drop=True)
    assert run.steps[run.steps.episode_id == "ToyPick-1"].reset_index(drop=True).equals(head)


def test_a_stateless_server_gets_the_lost_call_replayed(tmp_path: Path, toy_suite: Suite) -> None:
    servers = [ServeProcess("--model", "toy-expert", "--port", "0", "--stateless", test_adapters=True)]
    url, port = servers[0].url, servers[0].port

    def restart() -> None:  # killed and back before the client notices: the lost call is replayed on the new one
        servers[0].kill()
        servers.append(ServeProcess("--model", "toy-expert", "--port", str(port), "--stateless", test_adapters=True))

    HookedRemote.hook, HookedRemote.at = restart, (1, 3)
    HookedRemote.instances.clear()
    try:
        summary = runner.run(
            model="remote-hooked", model_args={"url": url}, suite=toy_suite, out=tmp_path / "remote", episodes=3
        )
    finally:
        HookedRemote.hook = None
        for s in servers:
            s.kill()
    assert (summary.ran, summary.errored) == (3, 0)
    assert HookedRemote.instances[-1].reconnects == 1 and HookedRemote.instances[-1].stateless
    runner.run(model="toy-expert", suite=toy_suite, out=tmp_path / "local", episodes=3)
    remote, local = vlascore.load_run(tmp_path / "remote"), vlascore.load_run(tmp_path / "local")
    assert remote.steps.equals(local.steps)


def test_without_the_serve_extra_vlascore_imports_and_names_it(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        for name in ("websockets", "msgpack"):
            sys.modules[name] = None  # makes `import name` raise ImportError
        import vlascore, vlascore.cli, vlascore.serving, vlascore.serving.wire, vlascore.serving.remote
        from typer.testing import CliRunner
        cli = CliRunner()
        assert cli.invoke(vlascore.cli.app, ["serve", "--help"]).exit_code == 0
        served = cli.invoke(vlascore.cli.app, ["serve", "--model", "random", "--port", "0"])
        print("SERVE", served.exit_code, served.stderr.replace(chr(10), " "))
        ran = cli.invoke(vlascore.cli.app, ["run", "-m", "remote", "-s", "toy", "-o", sys.argv[1], "--no-progress"])
        print("RUN", ran.exit_code, ran.stderr.replace(chr(10), " "))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert proc.returncode == 0, proc.stderr
    serve_line, run_line = proc.stdout.splitlines()[-2:]
    assert serve_line.startswith("SERVE 1") and "pip install 'vlascore[serve]'" in serve_line
    assert run_line.startswith("RUN 2") and "pip install 'vlascore[serve]'" in run_line


@pytest.mark.slow
@pytest.mark.skipif(not available("mani_skill"), reason="needs the simulator: pip install 'vlascore[sim]'")
def test_cli_remote_run_on_tabletop_matches_the_in_process_run(tmp_path: Path) -> None:
    def vlascore_run(*args: str) -> None:
        cmd = [
            sys.executable,
            "-m",
            "vlascore.cli",
            "run",
            "-s",
            "tabletop",
            "-t",
            "PickCube",
            "-n",
            "2",
            "--no-progress",
            *args,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr

    with ServeProcess("--model", "scripted", "--port", "0") as server:
        vlascore_run("--model", "remote", "-M", f"url={server.url}", "-o", str(tmp_path / "remote"))
        code, _, errors = server.stop(signal.SIGINT)
    assert code == 0, errors
    vlascore_run("--model", "scripted", "-o", str(tmp_path / "local"))
    remote, local = vlascore.load_run(tmp_path / "remote"), vlascore.load_run(tmp_path / "local")
    assert len(local.steps) > 20 and list(remote.steps.columns) == list(local.steps.columns)
    for column in local.steps.columns:  # every column (steps carry no timings)
        assert remote.steps[column].equals(local.steps[column]), column
    assert remote.episodes.drop(columns=TIMING_COLUMNS).equals(local.episodes.drop(columns=TIMING_COLUMNS))
    assert remote.episodes["success"].all()
