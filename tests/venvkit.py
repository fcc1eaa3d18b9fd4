"""A cached virtual environment holding given PyPI packages, for tests against another project's real package whose
dependencies clash with ours (LeRobot's torch pin, openpi-client's numpy < 2, vla-eval).

Made once under the test cache (VLASCORE_TEST_CACHE, else ~/.cache/vlascore/test-envs) and reused while its package
list is unchanged; a lock keeps parallel test processes from building the same one twice. When pip cannot install
the packages (no index reachable, no wheel for this Python), the test is skipped with pip's reason.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import venv
from collections.abc import Callable
from pathlib import Path

import pytest


def cache_root() -> Path:
    base = os.environ.get("VLASCORE_TEST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vlascore", "test-envs"
    )
    return Path(base)


def run(
    python: Path, *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python ARGS` with the current environment plus `env`, output captured as text."""
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def cached_venv(
    name: str,
    packages: list[str],
    check: str,
    *,
    prepare: Callable[[Path, Path], None] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 1200,
) -> Path:
    """The python of the venv `name` with `packages` pip-installed; `check` is Python code that must run in it (the
    imports the test needs). `prepare(home, python)` runs before pip (e.g. to link a package in)."""
    home = cache_root() / name
    home.parent.mkdir(parents=True, exist_ok=True)
    python = home / "bin" / "python"
    ready = home / ".vlascore-ready"
    wanted = "\n".join(packages) + "\n"
    with open(home.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.is_file() and ready.read_text() == wanted and run(python, "-c", check, env=env).returncode == 0:
            return python
        if not python.exists():
            venv.create(home, with_pip=True)
        if prepare is not None:
            prepare(home, python)
        what = ", ".join(packages)
        try:
            done = run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages, timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.skip(f"installing {what} from PyPI timed out")
        if done.returncode != 0:
            reason = [line for line in done.stderr.strip().splitlines() if "is ignored" not in line][-1:]
            pytest.skip(f"{what} cannot be installed here: {reason}")
        checked = run(python, "-c", check, env=env)
        assert checked.returncode == 0, checked.stderr[-2000:]
        ready.write_text(wanted)
    return python
