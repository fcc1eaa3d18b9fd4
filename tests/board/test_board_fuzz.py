"""Randomly corrupted bundles (bit flips, truncation, reordered, dropped or repeated entries, zeroed or repeated
spans) fed to `leaderboard add` in a child process capped at 2,000,000 KB of address space (`ulimit -v 2000000`):
every one is refused with a one-line reason, within its deadline, and the board is unchanged (fuzz_bundles.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from boardkit import World, copy_board, get_world

LIMIT_KB = 2_000_000
EXAMPLES = 40


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return get_world(tmp_path_factory)


def test_corrupted_bundles_are_refused_in_bounded_memory(tmp_path: Path, world: World) -> None:
    board = copy_board(world.base_board, tmp_path / "board")  # it holds the `expert` bundle already
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    script = Path(__file__).with_name("fuzz_bundles.py")
    args = [str(world.bundles["expert"]), str(board), str(EXAMPLES), str(LIMIT_KB), str(tmp_path / "scratch")]
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=900, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["examples"] >= EXAMPLES // 2, summary  # hypothesis may stop early only on exhausted cases
    assert len(summary["reasons"]) >= 3, summary  # the corruptions reached several different checks
