"""Real ManiSkill3 episodes on the CPU backend (slow: minutes on 2 cores; kept in CI).

Rendering (lavapipe on CPU) is most of a step's time, and success rates, step records and replays need no
images: one scripted run of 3 tasks x 20 seeds without images (`images=False`) is shared by the success-rate,
determinism and replay tests. A rendered scripted run of 3 tasks x 3 seeds is the reference for the tests that
check frames or compare against a rendered run (kill/resume), and shows that the two runs' records are the same.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

import vlascore
from vlascore import runner
from vlascore.extras import available
from vlascore.scoring import score_run
from vlascore.suites import Suite, load_suite

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not available("mani_skill"), reason="needs the simulator: pip install 'vlascore[sim]'"),
]

CORE_TASKS = ["PickCube", "PushCube", "StackCube"]
SEEDS = 20
RENDERED_SEEDS = 3
NO_IMAGES = {"images": False}
TIMING = ["started_at", "duration_s", "policy_time_s", "sim_time_s"]


@pytest.fixture(scope="module")
def tabletop() -> Suite:
    return load_suite("tabletop")


@pytest.fixture(scope="module")
def scripted_run(tabletop: Suite, tmp_path_factory: pytest.TempPathFactory) -> vlascore.store.LoadedRun:
    """20 seeds x 3 tasks without images: the scripted expert reads privileged state only (seconds, not minutes)."""
    out = tmp_path_factory.mktemp("scripted") / "run"
    runner.run(model="scripted", suite=tabletop, tasks=CORE_TASKS, episodes=SEEDS, out=out, backend_options=NO_IMAGES)
    return vlascore.load_run(out)


@pytest.fixture(scope="module")
def rendered_run(tabletop: Suite, tmp_path_factory: pytest.TempPathFactory) -> vlascore.store.LoadedRun:
    """The first 3 seeds of the same tasks, rendered (the backend's default) and recording frames."""
    out = tmp_path_factory.mktemp("rendered") / "run"
    runner.run(model="scripted", suite=tabletop, tasks=CORE_TASKS, episodes=RENDERED_SEEDS, out=out)
    return vlascore.load_run(out)


def test_scripted_expert_succeeds_on_the_core_tasks(
    scripted_run: vlascore.store.LoadedRun, rendered_run: vlascore.store.LoadedRun
) -> None:
    results = score_run(scripted_run)
    rates = {t.task: t.success_rate for t in results.tasks}
    assert all(t.episodes == SEEDS and t.errored == 0 for t in results.tasks)
    assert all(rate is not None and rate >= 0.8 for rate in rates.values()), rates
    steps = scripted_run.steps
    assert steps["reasoning"].notna().all() and steps["intention"].notna().all()
    first = steps[steps["episode_id"] == "PickCube-0"]
    assert first["intention"].nunique() >= 3  # it narrates its phases, not one fixed string
    frames, _ = rendered_run.frames("PickCube-0")  # the same episode, rendered (the next test: same records)
    assert frames.shape[1:] == (128, 128, 3) and frames.std() > 0


def test_episodes_without_images_record_the_same_steps_and_no_frames(
    scripted_run: vlascore.store.LoadedRun, rendered_run: vlascore.store.LoadedRun
) -> None:
    """What lets the success-rate tests skip rendering: the same seeds give the same actions, states, rewards and
    success with or without images; only the frame references differ."""
    ids = [f"{t}-{s}" for t in CORE_TASKS for s in range(RENDERED_SEEDS)]
    eps_a, steps_a = _subset(scripted_run, ids)
    eps_b, steps_b = _subset(rendered_run, ids)
    assert len(steps_a) > 0 and len(eps_a) == len(ids)
    assert steps_a.drop(columns=["frame"]).equals(steps_b.drop(columns=["frame"]))
    assert eps_a.drop(columns=["frames_file"]).equals(eps_b.drop(columns=["frames_file"]))
    assert steps_a["frame"].isna().all() and steps_b["frame"].notna().all()
    assert scripted_run.episodes["frames_file"].isna().all() and eps_b["frames_file"].notna().all()
    assert scripted_run.run.backend_config["images"] is False
    assert "images" not in rendered_run.run.backend_config  # the default records the same config as before


RANDOM_SEEDS = 20
"""A random policy runs every episode to the 100-step horizon: about 9 s rendered (90 ms a step on 2 CI cores), well
under 1 s without images. So the check runs all 20 seeds per task again (8 while episodes were rendered): at most one
lucky success in 20 per task, a tighter bound than one in 8."""


def test_random_policy_stays_near_zero(tabletop: Suite, tmp_path: Path) -> None:
    runner.run(
        model="random",
        suite=tabletop,
        tasks=CORE_TASKS,
        episodes=RANDOM_SEEDS,
        out=tmp_path / "random",
        backend_options=NO_IMAGES,
    )
    results = score_run(vlascore.load_run(tmp_path / "random"))
    successes = {t.task: t.successes for t in results.tasks}
    assert all(t.episodes == t.completed == RANDOM_SEEDS for t in results.tasks)
    assert all(n <= 1 for n in successes.values()), successes  # at most one lucky episode per task


def _subset(run: vlascore.store.LoadedRun, ids: list[str]) -> tuple:
    eps = run.episodes[run.episodes["episode_id"].isin(ids)].drop(columns=TIMING)
    steps = run.steps[run.steps["episode_id"].isin(ids)]
    return eps.sort_values("episode_id").reset_index(drop=True), steps.sort_values(["episode_id", "step"]).reset_index(
        drop=True
    )


def test_same_seeds_give_identical_step_records(
    tabletop: Suite, scripted_run: vlascore.store.LoadedRun, tmp_path: Path
) -> None:
    """Without images, as the run it repeats; rendered runs repeat too: the kill/resume test compares two of them."""
    runner.run(
        model="scripted",
        suite=tabletop,
        tasks=["StackCube", "PickCube"],
        episodes=2,
        out=tmp_path / "again",
        backend_options=NO_IMAGES,
    )
    ids = ["PickCube-0", "PickCube-1", "StackCube-0", "StackCube-1"]
    eps_a, steps_a = _subset(scripted_run, ids)
    eps_b, steps_b = _subset(vlascore.load_run(tmp_path / "again"), ids)
    assert len(steps_a) > 0
    assert steps_a.equals(steps_b)
    assert eps_a.drop(columns=["frames_file"]).equals(eps_b.drop(columns=["frames_file"]))


def test_replay_reproduces_the_recorded_success(
    tabletop: Suite, scripted_run: vlascore.store.LoadedRun, tmp_path: Path
) -> None:
    runner.run(
        model="replay",
        model_args={"source": str(scripted_run.path)},
        suite=tabletop,
        tasks=["PickCube", "StackCube"],
        episodes=3,
        out=tmp_path / "replay",
        backend_options=NO_IMAGES,
    )
    replayed = vlascore.load_run(tmp_path / "replay").episodes.set_index("episode_id")
    source = scripted_run.episodes.set_index("episode_id")
    assert len(replayed) == 6
    for eid, row in replayed.iterrows():
        assert row["status"] == "ok"
        assert (row["success"], row["num_steps"]) == (source.loc[eid, "success"], source.loc[eid, "num_steps"])


def _count_episodes(db: Path, read_only: bool = True) -> int:
    """Committed episodes. Read-only while the run is alive; read-write after a kill, so that SQLite
    rolls back a half-written transaction (a read-only connection cannot clear a hot journal)."""
    if not db.exists():
        return 0
    try:
        uri = f"file:{db}?mode=ro" if read_only else f"file:{db}"
        with closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0])
    except sqlite3.OperationalError:  # table not created yet, or locked mid-commit
        if not read_only:
            raise
        return 0


def test_kill_9_then_resume_equals_an_uninterrupted_run(rendered_run: vlascore.store.LoadedRun, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "vlascore.cli",
        "run",
        "-m",
        "scripted",
        "-s",
        "tabletop",
        "-t",
        "PickCube,PushCube",
        "-n",
        "3",
        "-o",
        str(out),
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _count_episodes(out / "traces.sqlite") < 2:
        assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "no episode recorded within 300 s"
        time.sleep(0.05)
    time.sleep(0.7)  # land the kill inside a later episode (or its commit)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _count_episodes(out / "traces.sqlite", read_only=False)
    assert 2 <= before < 6

    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming: {before} finished episode(s) skipped" in resumed.stderr
    run = vlascore.load_run(out)
    ids = [f"{t}-{s}" for t in ("PickCube", "PushCube") for s in range(3)]
    assert sorted(run.episodes["episode_id"]) == sorted(ids)  # no duplicates, none missing
    assert not run.steps.duplicated(["episode_id", "step"]).any()
    eps_a, steps_a = _subset(run, ids)
    eps_b, steps_b = _subset(rendered_run, ids)
    assert steps_a.equals(steps_b)
    assert eps_a.drop(columns=["frames_file"]).equals(eps_b.drop(columns=["frames_file"]))
    for eid in ids:  # every frames file is complete and readable
        frames, frame_steps = run.frames(eid)
        assert len(frames) == len(frame_steps) == int(run.episodes.set_index("episode_id").loc[eid, "num_steps"]) + 1
