"""`vlascore doctor` parses the Vulkan summary and prints the fix for each failure."""

from __future__ import annotations

import subprocess
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
    monkeypatch.setattr(doctor, "run_checks", lambda env_ids: [doctor.Check("python", "ok", "3.11"), failing])
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "FAIL  vulkan device" in result.stdout and "apt-get install -y -t bookworm-backports" in result.stdout
    assert "1 check(s) failed: vulkan device" in result.stderr
