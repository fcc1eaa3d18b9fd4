"""A third-party adapter in its own package, found through the `vlascore.adapters` entry-point group."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "fixtures" / "vlascore-example-adapter"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install the example package (offline, no build isolation) into its own site directory."""
    pytest.importorskip("setuptools", reason="building the example package needs setuptools (the dev extra)")
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("src") / PACKAGE.name
    subprocess.run(["cp", "-r", str(PACKAGE), str(build)], check=True)  # keep build/ and egg-info out of tests/
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(build),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert list(target.glob("vlascore_example_adapter-*.dist-info/entry_points.txt"))
    return target


def vlascore_cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "vlascore.cli", *args], env=env, capture_output=True, text=True)


def test_models_list_discovers_the_installed_package(site: Path) -> None:
    out = vlascore_cli(site, "models", "list")
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if "example-hover" in line)
    assert "package vlascore-example-adapter 0.1.0" in row and "ok" in row and "axis_angle" in row


def test_it_passes_adapter_check(site: Path, tmp_path: Path) -> None:
    out = vlascore_cli(site, "adapter", "check", "example-hover", "-s", "tabletop")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "example-hover passes the adapter checks on 5 task(s)" in out.stdout
    assert "rotation axis_angle -> euler_xyz" in out.stdout  # the conversion to the task's convention is shown
    import json

    as_json = vlascore_cli(site, "adapter", "check", "example-hover", "-s", "tabletop", "--json")
    summary = json.loads(as_json.stdout)  # stdout holds the JSON alone
    assert summary["ok"] and {c["name"] for c in summary["reports"][0]["checks"]} >= {"determinism", "act_batch"}


def test_it_runs_an_episode(site: Path, tmp_path: Path) -> None:
    out = vlascore_cli(
        site, "run", "-m", "example-hover", "-s", "toy", "-n", "2", "-o", str(tmp_path / "r"), "--no-progress"
    )
    assert out.returncode == 0, out.stderr
    code = (
        "import vlascore, sys; r = vlascore.load_run(sys.argv[1]); "
        "print(r.run.adapter_info['conversions']['ToyPick']['steps']); print(r.steps['action'].iloc[0][-1])"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        check=True,
    ).stdout.splitlines()
    assert "gripper sign flipped" in shown[0] and float(shown[1]) == 1.0  # its -1 (open) arrives as the task's +1


def test_a_broken_plugin_is_listed_with_its_error(tmp_path: Path) -> None:
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[vlascore.adapters]\nbroken = no_such_module.policy:Policy\n")
    out = vlascore_cli(tmp_path, "models", "list")
    assert out.returncode == 0
    row = next(line for line in out.stdout.splitlines() if line.startswith("│ broken"))
    assert "ModuleNotFoundError" in row and "package broken-plugin 1.0" in row
    check = vlascore_cli(tmp_path, "adapter", "check", "broken", "-s", "toy")
    assert check.returncode == 1 and "construct" in check.stderr and "no_such_module" in check.stderr
