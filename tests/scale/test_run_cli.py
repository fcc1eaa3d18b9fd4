"""`vlascore run` scaled out, as a user runs it: lines for batch logs, Ctrl-C / SIGTERM leaving no process behind
and a resume hint, and one-line errors for options that do not go together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import small_suite, write_suite
from scalekit import alive, descendants, records
from typer.testing import CliRunner

import vlascore
from vlascore import runner
from vlascore.cli import app
from vlascore.suites import Suite


def vlascore_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vlascore.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )


def test_batch_logs_get_a_line_per_episode_and_summaries(tmp_path: Path, toy_suite: Suite) -> None:
    suite = write_suite(small_suite(toy_suite, ["ToyPick"], [0, 1, 2, 3]), tmp_path / "s.yaml")
    args = [
        "run",
        "-m",
        "toy-expert",
        "-s",
        str(suite),
        "-w",
        "2",
        "-B",
        "step_seconds=0.05",
        "-o",
        str(tmp_path / "r"),
    ]
    result = CliRunner().invoke(app, [*args, "--summary-every", "1"])  # stderr is not a terminal here
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == "toy-expert on toy: 4 episode(s) to run"
    done = [line for line in lines if line.startswith("[")]
    assert len(done) == 4 and done[-1].startswith("[4/4] ")
    assert all(" task=ToyPick seed=" in line and " success steps=" in line and " worker=w" in line for line in done)
    summaries = [line for line in lines if line.startswith("progress ")]
    assert len(summaries) >= 2  # at least one while running (each episode takes about a second), one at the end
    assert summaries[-1].startswith("progress 4/4 episodes: 4 success, 0 errored; ")
    assert "episodes/min; busy workers " in summaries[-1] and ", ETA " in summaries[-1]
    quiet = CliRunner().invoke(
        app, ["run", "-m", "toy-expert", "-s", str(suite), "-o", str(tmp_path / "q"), "--no-progress"]
    )
    assert quiet.exit_code == 0 and quiet.stderr == ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_driver_stops_every_worker_and_says_how_to_resume(
    tmp_path: Path, toy_suite: Suite, sig: signal.Signals
) -> None:
    suite = write_suite(small_suite(toy_suite, ["ToyPick"], list(range(6)), max_steps=40), tmp_path / "s.yaml")
    args = ["run", "-m", "random", "-s", str(suite), "-w", "2", "-B", "step_seconds=0.02", "-o", str(tmp_path / "r")]
    proc = vlascore_cli(*args)
    assert proc.stderr is not None
    children: list = []
    deadline = time.monotonic() + 60
    for line in proc.stderr:  # once an episode is done, both workers are busy with the next ones
        children = descendants(proc.pid)
        if line.startswith("[1/6]") or time.monotonic() > deadline:
            break
    assert len(alive(children)) >= 2, "the workers should be running"
    proc.send_signal(sig)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted; finished episodes are saved. Continue with the same command plus --resume" in rest
    assert "Traceback" not in rest
    deadline = time.monotonic() + 10
    while alive(children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive(children) == [], "orphaned worker processes"
    done = vlascore.load_run(tmp_path / "r").episodes
    assert 1 <= len(done) < 6 and (done["status"] == "ok").all()  # interrupted episodes are not recorded
    if sig != signal.SIGTERM:
        return  # resuming is the same after either signal: done once
    resumed = subprocess.run(
        [sys.executable, "-m", "vlascore.cli", *args, "--resume", "--no-progress"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    runner.run(model="random", suite=small_suite(toy_suite, ["ToyPick"], list(range(6))), out=tmp_path / "clean")
    assert records(tmp_path / "r") == records(tmp_path / "clean")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--num-envs", "2", "-s", "simpler-google-vm"], "backend 'simpler' cannot step several environments"),
        (["--num-envs", "2", "-s", "tabletop"], "--num-envs 2 needs ManiSkill's GPU simulation (--sim-backend gpu"),
        (["--max-batch-size", "4"], "batch a shared policy's requests: add --policy shared"),
        (["--ray-address", "127.0.0.1:6379"], "--ray-address and --policy-gpus are for Ray: add --executor ray"),
        (["--policy", "everyone"], "--policy must be per-worker or shared, not 'everyone'"),
        (["--executor", "slurm"], "--executor must be local or ray, not 'slurm'"),
    ],
)
def test_options_that_do_not_go_together_are_one_line_errors(tmp_path: Path, extra: list[str], message: str) -> None:
    args = ["run", "-m", "random", "-s", "toy", "-n", "1", "-o", str(tmp_path / "r"), "--no-progress"]
    result = CliRunner().invoke(app, [*args, *extra])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "r" / "run.json").exists()


def test_without_ray_the_ray_executor_names_its_extra(tmp_path: Path) -> None:
    blocked = (
        "import sys; sys.modules['ray'] = None; import vlascore.scale, vlascore.scale.ray_actors; "
        "from vlascore.cli import main; main()"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            blocked,
            "run",
            "-m",
            "random",
            "-s",
            "toy",
            "-n",
            "1",
            "--executor",
            "ray",
            "-o",
            str(tmp_path / "r"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'vlascore[ray]'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r" / "run.json").exists()


def test_the_terminal_bar_shows_throughput_and_busy_workers() -> None:
    import io

    from rich.console import Console

    from vlascore.cli._progress import RunProgress, clock
    from vlascore.records import EpisodeRecord

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=200)
    shown = RunProgress("random on toy", console, workers=2, busy=lambda: 1)
    assert not shown.lines
    shown.start(3, 0)
    ep = EpisodeRecord(
        episode_id="ToyPick-0",
        task="ToyPick",
        seed=0,
        instruction="",
        success=True,
        num_steps=5,
        termination="success",
        status="ok",
        started_at="",
        duration_s=1.0,
        policy_time_s=0.1,
        sim_time_s=0.5,
    )
    shown.episode(ep)
    shown.stop()
    text = screen.getvalue()
    assert "1/3" in text and " ep/min  busy 1/2" in text
    assert (clock(5), clock(65), clock(3725)) == ("5s", "1m05s", "1h02m05s")
