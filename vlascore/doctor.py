"""`vlascore doctor`: check the machine for what runs need, and print the fix for each failure."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

from vlascore.extras import available

Status = Literal["ok", "warn", "fail"]

CORE = ("typer", "pydantic", "pandas", "plotly", "jinja2", "openai", "numpy", "rich", "yaml")
EXTRAS = {
    "sim": ("mani_skill", "sapien", "gymnasium", "torch"),
    "qa": ("lmms_eval", "datasets"),
    "models": ("transformers", "torch"),
    "serve": ("websockets", "msgpack", "PIL"),
    "data": ("pyarrow", "av", "PIL"),
    "ray": ("ray",),
    "libero": ("libero", "robosuite", "mujoco", "bddl"),
}
DISTRIBUTIONS = {"yaml": "PyYAML", "libero": "hf-libero", "PIL": "pillow"}
"""Module -> the distribution that installs it, where their names differ."""
VULKAN_FIX = (
    "install Mesa >= 24.3's lavapipe (CPU Vulkan) from bookworm-backports: `bash scripts/setup.sh`, or by hand:\n"
    "  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)\n"
    '  echo "deb $uri bookworm-backports main" > /etc/apt/sources.list.d/backports.list\n'
    "  apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1"
)
# Rendering smoke test run in a child process: a missing driver can abort the interpreter.
_RENDER_PROBE = "import sapien; sapien.render.RenderSystem(); print('ok')"


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def check_python() -> Check:
    v = sys.version_info
    ok = v >= (3, 10)
    return Check(
        "python",
        "ok" if ok else "fail",
        f"{sys.version.split()[0]} at {sys.executable}",
        "" if ok else "use Python 3.10 or newer (3.11 recommended: the CPU torch wheel is cp311)",
    )


def check_core() -> Check:
    missing = [m for m in CORE if not available(m)]
    if missing:
        return Check(
            "core dependencies", "fail", f"missing: {', '.join(missing)}", "pip install -e .  (or pip install vlascore)"
        )
    return Check(
        "core dependencies",
        "ok",
        ", ".join(f"{m} {_version('PyYAML' if m == 'yaml' else m)}" for m in CORE[:4]) + ", ...",
    )


def check_extras() -> list[Check]:
    checks = []
    for extra, modules in EXTRAS.items():
        missing = [m for m in modules if not available(m)]
        required = extra == "sim"  # the embedded default suite needs it; the others are optional
        if not missing:
            versions = ", ".join(
                f"{DISTRIBUTIONS.get(m, m)} {_version(DISTRIBUTIONS.get(m, m.replace('_', '-')))}" for m in modules
            )
            checks.append(Check(f"extra [{extra}]", "ok", versions))
        else:
            fix = f"pip install 'vlascore[{extra}]'"
            if extra == "qa":
                from vlascore.qa import LMMS_EVAL_INSTALL

                fix = f"{LMMS_EVAL_INSTALL}  (or VLASCORE_EXTRAS=...,qa bash scripts/setup.sh)"
            if extra == "libero":
                from vlascore.backends.libero_setup import LIBERO_INSTALL

                fix = LIBERO_INSTALL
            if "torch" in missing:
                fix = "pip install torch==2.13.0 first (CPU build; a plain `torch` pulls CUDA wheels), then " + fix
            checks.append(
                Check(f"extra [{extra}]", "fail" if required else "warn", f"missing: {', '.join(missing)}", fix)
            )
    return checks


_TORCHVISION_PROBE = "import torchvision; print(torchvision.__version__)"


def check_qa() -> list[Check]:
    """lmms-eval's version and two breakages seen with it: filelock 4 (lmms-eval 0.7.3 patches filelock._api) and
    a PyPI torchvision next to the CPU torch (it does not import, and transformers' image processors then fail)."""
    if not available("lmms_eval"):
        return []
    from vlascore.qa import LMMS_EVAL_INSTALL, LMMS_EVAL_VERSION

    checks = []
    have = _version("lmms-eval")
    checks.append(
        Check(
            "lmms-eval version",
            "ok" if have == LMMS_EVAL_VERSION else "warn",
            f"{have} (vlascore's QA overlays are checked against {LMMS_EVAL_VERSION})",
            "" if have == LMMS_EVAL_VERSION else LMMS_EVAL_INSTALL,
        )
    )
    if not available("filelock._api"):
        checks.append(
            Check(
                "filelock for lmms-eval",
                "fail",
                f"filelock {_version('filelock')} has no _api module, which lmms-eval 0.7.3 patches",
                "pip install 'filelock<4'",
            )
        )
    if available("torchvision"):
        proc = subprocess.run([sys.executable, "-c", _TORCHVISION_PROBE], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            checks.append(
                Check(
                    "torchvision",
                    "fail",
                    f"installed but does not import: {tail}",
                    "pip uninstall -y torchvision (vlascore does not need it; PyPI has no CPU build "
                    "matching the CPU torch)",
                )
            )
    return checks


def check_vulkan() -> Check:
    if shutil.which("vulkaninfo"):
        out = subprocess.run(["vulkaninfo", "--summary"], capture_output=True, text=True, timeout=30).stdout
        names = re.findall(r"deviceName\s*=\s*(.+)", out)
        drivers = re.findall(r"driverInfo\s*=\s*(.+)", out)
        if not names:
            return Check("vulkan device", "fail", "vulkaninfo lists no device", VULKAN_FIX)
        mesa = re.search(r"Mesa (\d+)\.(\d+)", " ".join(drivers))
        if mesa and "llvmpipe" in " ".join(names) and (int(mesa[1]), int(mesa[2])) < (24, 3):
            return Check(
                "vulkan device",
                "fail",
                f"lavapipe from Mesa {mesa[1]}.{mesa[2]} (SAPIEN rejects Mesa < 24.3)",
                VULKAN_FIX,
            )
        return Check(
            "vulkan device", "ok", "; ".join(f"{n.strip()} ({d.strip()})" for n, d in zip(names, drivers, strict=False))
        )
    icds = [f for d in ("/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d") if os.path.isdir(d) for f in os.listdir(d)]
    if not icds:
        return Check("vulkan device", "fail", "no Vulkan driver (ICD) installed", VULKAN_FIX)
    return Check(
        "vulkan device",
        "warn",
        f"ICDs: {', '.join(icds)} (install vulkan-tools to inspect)",
        "apt-get install vulkan-tools",
    )


def check_rendering() -> Check:
    if not available("sapien"):
        return Check("sapien rendering", "warn", "skipped: sapien not installed", "pip install 'vlascore[sim]'")
    env = {**os.environ}
    env.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
    os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _RENDER_PROBE], capture_output=True, text=True, timeout=120, env=env
        )
    except subprocess.TimeoutExpired:
        return Check("sapien rendering", "fail", "render device probe timed out after 120 s", VULKAN_FIX)
    if proc.returncode == 0 and "ok" in proc.stdout:
        return Check("sapien rendering", "ok", "SAPIEN created a Vulkan render system")
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
    return Check("sapien rendering", "fail", f"SAPIEN cannot render: {tail[0]}", VULKAN_FIX)


def check_assets(env_ids: list[str]) -> Check:
    """The suite's env ids are registered and their assets are on disk (tabletop assets ship in the wheel)."""
    if not available("mani_skill"):
        return Check("simulator assets", "warn", "skipped: mani-skill not installed", "pip install 'vlascore[sim]'")
    probe = (
        "import sys, mani_skill.envs\n"
        "from mani_skill.utils.registration import REGISTERED_ENVS\n"
        "missing = [e for e in sys.argv[1:] if e not in REGISTERED_ENVS]\n"
        "print(' '.join(missing))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe, *env_ids], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return Check(
            "simulator assets",
            "fail",
            f"importing mani_skill failed: {proc.stderr.strip()[-300:]}",
            "reinstall: pip install --force-reinstall 'vlascore[sim]'",
        )
    missing = proc.stdout.split()
    if missing:
        return Check(
            "simulator assets",
            "fail",
            f"unknown env ids: {', '.join(missing)}",
            "upgrade mani-skill (pip install -U mani-skill) or fix the suite YAML",
        )
    return Check(
        "simulator assets", "ok", f"{len(env_ids)} env ids registered; tabletop assets ship in the mani-skill wheel"
    )


def check_runtime_dir() -> Check:
    d = os.environ.get("XDG_RUNTIME_DIR")
    if d and os.access(d, os.W_OK):
        return Check("XDG_RUNTIME_DIR", "ok", d)
    return Check(
        "XDG_RUNTIME_DIR",
        "warn",
        f"{d or 'unset'}: SAPIEN warns without a writable runtime dir",
        "export XDG_RUNTIME_DIR=/tmp/runtime-$UID (vlascore sets this itself for its runs)",
    )


def check_simpler(env_ids: list[str], backend: str = "maniskill") -> list[Check]:
    """SimplerEnv's ManiSkill2_real2sim (the `simpler` backend; sapien 2), whether it shares the environment with
    ManiSkill3 (sapien 3), and ManiSkill3's Bridge twin asset packs. Warnings only, except what the checked suite
    needs: its backend (`backend`: `simpler` needs mani_skill2_real2sim on sapien 2) and the packs of its tasks
    (`env_ids`)."""
    from vlascore.backends.assets import ASSET_PACKS, BRIDGE_TWINS, download_command, maniskill_asset_dir, missing_packs
    from vlascore.backends.simpler import SIMPLER_INSTALL

    checks = []
    sapien = _version("sapien")
    sapien2 = sapien.startswith("2.")
    needed_here: Literal["fail", "warn"] = "fail" if backend == "simpler" else "warn"
    if not available("mani_skill2_real2sim"):
        why = (
            "this suite's `simpler` backend needs it"
            if backend == "simpler"
            else "only suites on the "
            "`simpler` backend (simpler-google-vm, simpler-google-va, simpler-widowx, simpler-dualvla) need it"
        )
        checks.append(Check("SimplerEnv (mani_skill2_real2sim)", needed_here, f"not installed; {why}", SIMPLER_INSTALL))
    else:
        detail = f"mani_skill2_real2sim {_version('mani_skill2_real2sim')} with sapien {sapien}"
        checks.append(
            Check(
                "SimplerEnv (mani_skill2_real2sim)",
                "ok" if sapien2 else needed_here,
                detail + ("" if sapien2 else " (it needs sapien 2.x: sapien==2.2.2)"),
                "" if sapien2 else SIMPLER_INSTALL,
            )
        )
        if available("mani_skill"):
            works = "SimplerEnv" if sapien2 else "ManiSkill3"
            checks.append(
                Check(
                    "ManiSkill3 next to SimplerEnv",
                    "warn",
                    f"mani-skill {_version('mani-skill')} needs sapien 3 and mani_skill2_real2sim needs "
                    f"sapien 2.2.2; they cannot coexist, and with sapien {sapien} only {works} works",
                    "keep them in separate environments: ManiSkill3 with pip install 'vlascore[sim]', "
                    f"SimplerEnv without it: {SIMPLER_INSTALL}",
                )
            )
    if available("mani_skill"):
        needed: dict[str, list[str]] = {}
        for env_id in BRIDGE_TWINS:
            for pack in missing_packs(env_id):
                needed.setdefault(pack, []).append(env_id)
        root = maniskill_asset_dir()
        for pack, envs in needed.items():
            used = any(e in env_ids for e in envs)
            checks.append(
                Check(
                    f"ManiSkill3 Bridge assets: {pack}",
                    "fail" if used else "warn",
                    f"not downloaded ({root / ASSET_PACKS[pack]} is missing or empty); needed by "
                    f"{', '.join(envs)}" + ("" if used else ", not by this suite"),
                    download_command([pack]),
                )
            )
        if not needed:
            checks.append(Check("ManiSkill3 Bridge assets", "ok", f"{', '.join(ASSET_PACKS)} under {root}"))
    return checks


# Joins the cluster as a short-lived driver in a child process (Ray's own state stays out of this one) and prints
# its size: nodes, CPUs, GPUs.
_RAY_PROBE = (
    "import json, logging, os, sys; os.environ.setdefault('RAY_USAGE_STATS_ENABLED', '0'); "
    "from vlascore.scale.ray_actors import loopback_only; sys.argv[2] == 'loopback' and loopback_only(); import ray; "
    "kw = {'_node_ip_address': '127.0.0.1'} if sys.argv[2] == 'loopback' else {}; "
    "ray.init(address=sys.argv[1], log_to_driver=False, logging_level=logging.ERROR, **kw); "
    "r = ray.cluster_resources(); "
    "print(json.dumps([sum(1 for n in ray.nodes() if n.get('Alive')), r.get('CPU', 0), r.get('GPU', 0)]))"
)


# Run in a child process: importing torch takes seconds and a broken CUDA install can abort the interpreter.
_CUDA_PROBE = (
    "import json, torch; n = torch.cuda.device_count() if torch.cuda.is_available() else 0; "
    "print(json.dumps([torch.__version__, torch.version.cuda, [torch.cuda.get_device_name(i) for i in range(n)]]))"
)
CUDA_TORCH_FIX = (
    "install torch's CUDA build: VLASCORE_TORCH_INDEX=https://download.pytorch.org/whl/cu126 bash scripts/setup.sh "
    "(or pip install torch --index-url https://download.pytorch.org/whl/cu126; pick the cuXYZ your driver supports)"
)


def _nvidia_gpus() -> list[str]:
    """The GPUs the NVIDIA driver lists (`name, driver version`), empty without a driver."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def check_cuda() -> Check:
    """Whether torch can use a GPU: its build (CPU or CUDA), the GPUs it sees and those the driver lists. In-process
    checkpoints (OpenVLA and the other baselines) need one; the default suite, tiny models and `remote` do not."""
    name = "CUDA (torch)"
    if not available("torch"):
        return Check(name, "warn", "skipped: torch is not installed", "pip install 'vlascore[models]'")
    driver = _nvidia_gpus()
    try:
        out = subprocess.run([sys.executable, "-c", _CUDA_PROBE], capture_output=True, text=True, timeout=120)
        torch_version, cuda, devices = json.loads(out.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return Check(name, "fail", "importing torch did not finish within 120 s", "reinstall torch")
    except (ValueError, IndexError):
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return Check(name, "fail", f"torch does not import: {last}", "reinstall torch: bash scripts/setup.sh")
    if devices:
        seen = f"{len(devices)} GPU(s): {', '.join(devices)}"
        return Check(name, "ok", f"torch {torch_version} (CUDA {cuda}) sees {seen}")
    listed = f"; nvidia-smi lists {'; '.join(driver)}" if driver else ""
    if cuda is None:
        if not driver:
            return Check(
                name,
                "ok",
                f"torch {torch_version} is the CPU build and no NVIDIA driver is here: in-process checkpoints run "
                "on the CPU (slow for 7B models; serve them from a GPU machine and use -m remote)",
            )
        return Check(name, "warn", f"torch {torch_version} is the CPU build{listed}", CUDA_TORCH_FIX)
    why = f"torch {torch_version} is built for CUDA {cuda} but sees no GPU{listed or ' (nvidia-smi not found)'}"
    fix = (
        f"the driver must support CUDA {cuda} (nvidia-smi shows the highest it supports); else install the torch "
        "build that matches it: " + CUDA_TORCH_FIX.removeprefix("install torch's CUDA build: ")
        if driver
        else "install the NVIDIA driver (nvidia-smi must list the GPU), or the CPU build of torch on a machine "
        "without one: VLASCORE_TORCH_INDEX=https://download.pytorch.org/whl/cpu bash scripts/setup.sh"
    )
    return Check(name, "warn", why, fix)


def check_ray() -> Check:
    """Ray's version (the `ray` extra behind --executor ray)."""
    if available("ray"):
        return Check("ray", "ok", f"ray {_version('ray')} (--executor ray)")
    return Check("ray", "warn", "not installed: --executor ray is unavailable", "pip install 'vlascore[ray]'")


def check_ray_cluster(address: str) -> Check:
    """Whether a Ray cluster answers at `address`, and its size (nodes, CPUs, GPUs)."""
    name = "ray cluster"
    fix = "start the head with `ray start --head --port=6379`, the other nodes with `ray start --address HEAD:6379`"
    if not available("ray"):
        return Check(name, "fail", f"cannot probe {address}: ray is not installed", "pip install 'vlascore[ray]'")
    from vlascore.scale.ray_actors import LOOPBACK, gcs_endpoint, unreachable

    try:
        endpoint = gcs_endpoint(address)
        why = unreachable(address)
    except ValueError as exc:
        return Check(name, "fail", str(exc), "pass --ray-address HOST:PORT")
    if why is not None:
        return Check(name, "fail", f"nothing answers at {address}: {why}", fix)
    loopback = "loopback" if endpoint is not None and endpoint[0] in LOOPBACK else "-"
    try:
        out = subprocess.run(
            [sys.executable, "-c", _RAY_PROBE, address, loopback], capture_output=True, text=True, timeout=90
        )
    except subprocess.TimeoutExpired:
        return Check(name, "fail", f"{address} accepts connections, but Ray did not join it within 90 s", fix)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return Check(name, "fail", f"{address} accepts connections, but joining it failed: {last}", fix)
    nodes, cpus, gpus = json.loads(out.stdout.strip().splitlines()[-1])
    return Check(name, "ok", f"{address} is reachable: {nodes} node(s), {cpus:g} CPU(s), {gpus:g} GPU(s)")


def check_libero(gl: str | None = None) -> list[Check]:
    """What a suite on the `libero` backend needs: hf-libero and its packages, the asset folder, LIBERO's config file
    (written on first use, so LIBERO does not ask for it on stdin) and MuJoCo's offscreen rendering."""
    from vlascore.backends import libero_setup as ls

    checks = []
    packages = ls.missing_packages()
    checks.append(
        Check(
            "LIBERO packages",
            "fail" if packages else "ok",
            f"missing: {', '.join(packages)}"
            if packages
            else f"hf-libero {_version('hf-libero')}, robosuite {_version('robosuite')}, mujoco {_version('mujoco')}",
            ls.LIBERO_INSTALL if packages else "",
        )
    )
    assets = ls.missing_assets()
    checks.append(
        Check(
            "LIBERO assets",
            "fail" if assets else "ok",
            assets or str(ls.asset_dir()),
            ls.ASSETS_INSTALL if assets else "",
        )
    )
    config = ls.config_dir() / "config.yaml"
    if config.is_file():
        checks.append(Check("LIBERO config", "ok", str(config)))
    else:
        folder = next((p for p in (config.parent, *config.parent.parents) if p.exists()), None)
        writable = folder is not None and folder.is_dir() and os.access(folder, os.W_OK)
        checks.append(
            Check(
                "LIBERO config",
                "ok" if writable else "fail",
                f"{config} is written on first use" if writable else f"{config} cannot be written",
                "" if writable else "set LIBERO_CONFIG_PATH to a writable folder",
            )
        )
    try:
        gl_name = ls.gl_backend(gl)
    except ValueError as exc:
        checks.append(Check("MuJoCo rendering", "fail", str(exc), "use -B gl=egl or -B gl=osmesa"))
        return checks
    if not ls.available_mujoco():
        checks.append(Check("MuJoCo rendering", "fail", "skipped: mujoco not installed", ls.LIBERO_INSTALL))
        return checks
    problem = ls.render_problem(gl_name)
    checks.append(
        Check(
            "MuJoCo rendering",
            "fail" if problem else "ok",
            problem or f"MUJOCO_GL={gl_name} renders offscreen",
            ls.RENDER_FIX[gl_name] if problem else "",
        )
    )
    return checks


def run_checks(env_ids: list[str], backend: str = "maniskill", gl: str | None = None) -> list[Check]:
    """Every check; `env_ids` are the ManiSkill env ids of the suite checked, `backend` its backend (`gl`: the
    MuJoCo GL backend a LIBERO suite renders with; a Ray cluster is probed by `check_ray_cluster`, when an address
    is given)."""
    return [
        check_python(),
        check_core(),
        *check_extras(),
        *check_qa(),
        check_vulkan(),
        check_rendering(),
        check_assets(env_ids),
        *check_simpler(env_ids, backend),
        *(check_libero(gl) if backend == "libero" else []),
        check_runtime_dir(),
        check_cuda(),
        check_ray(),
    ]
