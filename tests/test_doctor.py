"""`vlascore doctor` parses the Vulkan summary and prints the fix for each failure."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vlascore import doctor
from vlascore.cli import app

OLD_MESA = "deviceName = llvmpipe (LLVM 15.0.6, 256 bits)\ndriverInfo = Mesa 22.3.6 (LLVM 15.0.6)\n"
NEW_MESA = "deviceName = llvmpipe (LLVM 15.0.6, 256 bits)\ndriverInfo = Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)\n"
NVIDIA = "deviceName = NVIDIA H100 80GB HBM3\ndriverInfo = 550.54.15\n"


def _fake_vulkaninfo(monkeypatch: pytest.MonkeyPatch, stdout: str) -> None:
    monkeypatch.setattr(doctor.shutil, "which", lambda name: "/usr/bin/vulkaninfo")

    def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 0, stdout=stdout, stderr="")

    monkeypatch.setattr(doctor.subprocess, "run", run)


@pytest.mark.parametrize(
    ("summary", "status", "detail"),
    [
        (OLD_MESA, "fail", "Mesa 22.3 (SAPIEN rejects Mesa < 24.3)"),
        (NEW_MESA, "ok", "llvmpipe"),
        (NVIDIA, "ok", "NVIDIA H100"),
        ("", "fail", "lists no device"),
    ],
)
def test_vulkan_check(monkeypatch: pytest.MonkeyPatch, summary: str, status: str, detail: str) -> None:
    _fake_vulkaninfo(monkeypatch, summary)
    check = doctor.check_vulkan()
    assert check.status == status and detail in check.detail
    if status == "fail":
        assert "bookworm-backports" in check.fix and "mesa-vulkan-drivers" in check.fix


def test_doctor_cli_exits_non_zero_and_prints_fixes(monkeypatch: pytest.MonkeyPatch) -> None:
    failing = doctor.Check("vulkan device", "fail", "vulkaninfo lists no device", doctor.VULKAN_FIX)
    checks = [doctor.Check("python", "ok", "3.11"), failing]
    monkeypatch.setattr(doctor, "run_checks", lambda env_ids, backend="maniskill", gl=None: checks)
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "FAIL  vulkan device" in result.stdout and "apt-get install -y -t bookworm-backports" in result.stdout
    assert "1 check(s) failed: vulkan device" in result.stderr


def _fake_installed(monkeypatch: pytest.MonkeyPatch, modules: set[str], versions: dict[str, str]) -> None:
    monkeypatch.setattr(doctor, "available", lambda m: m in modules)
    monkeypatch.setattr(doctor, "_version", lambda dist: versions.get(dist, "?"))


def test_simpler_check_is_informational(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_installed(monkeypatch, set(), {})
    (check,) = doctor.check_simpler([])
    assert check.status == "warn" and "not installed" in check.detail
    assert "git clone https://github.com/simpler-env/SimplerEnv --recurse-submodules" in check.fix
    _fake_installed(monkeypatch, {"mani_skill2_real2sim"}, {"mani_skill2_real2sim": "0.5.3", "sapien": "2.2.2"})
    (check,) = doctor.check_simpler([])
    assert check.status == "ok" and check.detail == "mani_skill2_real2sim 0.5.3 with sapien 2.2.2"


def test_a_simpler_suite_fails_the_doctor_without_simplerenv(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_installed(monkeypatch, set(), {})
    (check,) = doctor.check_simpler([], "simpler")
    assert check.status == "fail" and "this suite's `simpler` backend needs it" in check.detail
    _fake_installed(monkeypatch, {"mani_skill2_real2sim"}, {"mani_skill2_real2sim": "0.5.3", "sapien": "3.0.3"})
    (check,) = doctor.check_simpler([], "simpler")
    assert check.status == "fail" and "sapien==2.2.2" in check.detail
    seen: list[tuple] = []
    monkeypatch.setattr(
        doctor, "run_checks", lambda env_ids, backend="maniskill", gl=None: seen.append((env_ids, backend)) or []
    )
    assert CliRunner().invoke(app, ["doctor", "-s", "simpler-google-vm"]).exit_code == 0
    assert seen == [([], "simpler")]


def test_simpler_next_to_maniskill3_cannot_coexist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MS_ASSET_DIR", str(tmp_path))
    for target in ("tasks/bridge_v2_real2sim_dataset", "robots/widowx"):
        (tmp_path / "data" / target).mkdir(parents=True)
        (tmp_path / "data" / target / "x").write_text("")
    versions = {"mani_skill2_real2sim": "0.5.3", "sapien": "3.0.3", "mani-skill": "3.0.1"}
    _fake_installed(monkeypatch, {"mani_skill2_real2sim", "mani_skill"}, versions)
    simpler, both, assets = doctor.check_simpler([])
    assert simpler.status == "warn" and "needs sapien 2.x" in simpler.detail
    assert both.status == "warn" and "cannot coexist" in both.detail and "only ManiSkill3 works" in both.detail
    assert assets.status == "ok" and assets.name == "ManiSkill3 Bridge assets"


def test_missing_bridge_packs_name_their_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MS_ASSET_DIR", str(tmp_path))
    _fake_installed(monkeypatch, {"mani_skill"}, {"sapien": "3.0.3"})
    checks = doctor.check_simpler([])
    packs = {c.name: c for c in checks if c.name.startswith("ManiSkill3 Bridge assets: ")}
    assert set(packs) == {"ManiSkill3 Bridge assets: bridge_v2_real2sim", "ManiSkill3 Bridge assets: widowx250s"}
    carrot = packs["ManiSkill3 Bridge assets: bridge_v2_real2sim"]
    assert carrot.status == "warn" and "not by this suite" in carrot.detail  # the checked suite does not use them
    assert carrot.fix == "python -m mani_skill.utils.download_asset bridge_v2_real2sim -y"
    used = doctor.check_simpler(["PutCarrotOnPlateInScene-v1"])
    assert all(c.status == "fail" for c in used if c.name.startswith("ManiSkill3 Bridge assets: "))
