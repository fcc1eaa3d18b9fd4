"""`vlascore doctor` parses the Vulkan summary and prints the fix for each failure."""

from __future__ import annotations

import json
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


# -- CUDA: the real probe against stand-ins for torch and nvidia-smi ------------------------------------------------


def _fake_gpu_stack(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cuda: str | None, devices: list[str], smi: list[str] | None
) -> None:
    """A `torch` package built for `cuda` (None: the CPU build) that sees `devices`, and an `nvidia-smi` printing
    `smi` (None: no driver), found by the doctor's child process through PYTHONPATH and PATH."""
    torch = tmp_path / "site" / "torch"
    torch.mkdir(parents=True)
    (torch / "__init__.py").write_text(
        "from types import SimpleNamespace\n"
        f"__version__ = '2.13.0' + ('+cu' + CUDA.replace('.', '') if (CUDA := {cuda!r}) else '+cpu')\n"
        "version = SimpleNamespace(cuda=CUDA)\n"
        f"DEVICES = {devices!r}\n"
        "cuda = SimpleNamespace(is_available=lambda: bool(DEVICES), device_count=lambda: len(DEVICES),\n"
        "                       get_device_name=lambda i: DEVICES[i])\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if smi is not None:
        script = bin_dir / "nvidia-smi"
        script.write_text("#!/bin/sh\n" + "".join(f"echo '{line}'\n" for line in smi))
        script.chmod(0o755)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setattr(doctor, "available", lambda m: True)


H100 = "NVIDIA H100 80GB HBM3, 550.54.15"


@pytest.mark.parametrize(
    ("cuda", "devices", "smi", "status", "detail", "fix"),
    [
        (None, [], None, "ok", "CPU build and no NVIDIA driver", ""),
        (None, [], [H100], "warn", f"CPU build; nvidia-smi lists {H100}", "VLASCORE_TORCH_INDEX=https://download"),
        ("12.6", ["NVIDIA H100 80GB HBM3"], [H100], "ok", "(CUDA 12.6) sees 1 GPU(s): NVIDIA H100 80GB HBM3", ""),
        ("12.6", [], [H100], "warn", "built for CUDA 12.6 but sees no GPU; nvidia-smi lists", "driver must support"),
        ("12.6", [], None, "warn", "sees no GPU (nvidia-smi not found)", "install the NVIDIA driver"),
    ],
)
def test_cuda_check(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cuda: str | None,
    devices: list[str],
    smi: list[str] | None,
    status: str,
    detail: str,
    fix: str,
) -> None:
    _fake_gpu_stack(monkeypatch, tmp_path, cuda, devices, smi)
    check = doctor.check_cuda()
    assert (check.status, detail in check.detail, fix in check.fix) == (status, True, True), check


def test_a_torch_that_does_not_import_fails_the_cuda_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_gpu_stack(monkeypatch, tmp_path, None, [], None)
    (tmp_path / "site" / "torch" / "__init__.py").write_text("raise OSError('libcudart.so.12: cannot open')\n")
    check = doctor.check_cuda()
    assert check.status == "fail" and "libcudart.so.12: cannot open" in check.detail and "setup.sh" in check.fix


def test_the_cuda_check_reads_this_machines_torch() -> None:
    pytest.importorskip("torch")
    check = doctor.check_cuda()
    assert check.status in ("ok", "warn") and "torch 2." in check.detail


def test_doctor_json_lists_every_check_and_keeps_the_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    checks = [doctor.Check("python", "ok", "3.11"), doctor.Check("vulkan device", "fail", "none", doctor.VULKAN_FIX)]
    monkeypatch.setattr(doctor, "run_checks", lambda env_ids, backend="maniskill", gl=None: checks)
    result = CliRunner().invoke(app, ["doctor", "--json"])
    out = json.loads(result.stdout)
    assert result.exit_code == 1 and out["failed"] == ["vulkan device"] and out["suite"] == "tabletop"
    assert out["checks"] == [{"name": c.name, "status": c.status, "detail": c.detail, "fix": c.fix} for c in checks]
    assert "1 check(s) failed" in result.stderr
    monkeypatch.setattr(doctor, "run_checks", lambda env_ids, backend="maniskill", gl=None: checks[:1])
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["failed"] == []
