"""Shared pieces of the board tests: test adapters, runs and bundles built once per session, zip surgery and a
snapshot of a folder tree (a rejection must leave it exactly as it was).

Not a conftest.py: tests/conftest.py is imported as the module `conftest`, and a second one would clash.
Each test module defines a `world` fixture calling `get_world`; the world itself is built once per session (a
module-level cache), whichever module asks first.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import ToyExpert

from vlascore import runner
from vlascore.adapters import ADAPTERS, Adapter, EpisodeContext, PolicyStep
from vlascore.backends import Observation
from vlascore.board import Board
from vlascore.board.bundle import MANIFEST_FILE, Manifest, ManifestEntry, pack
from vlascore.judging import load_judge
from vlascore.judging.engine import judge_run
from vlascore.suites import Suite, load_suite

XSS_NAME = "<script>alert(1)</script><img src=x onerror=alert(2)>"
XSS_NOTES = "notes <img src=y onerror=alert(3)> & <b>bold</b>"
XSS_REASONING = "I think <script>alert(4)</script><img src=z onerror=alert(5)> & more"


class BoardSilent(ToyExpert):
    """The toy expert without words: a specialist policy that succeeds on ToyPick."""

    name = "board-silent"
    reasons = False

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        return PolicyStep(super().act(obs, instruction).action)


class BoardNoisy(ToyExpert):
    """The toy expert with seeded action noise: succeeds on some seeds, not all."""

    name = "board-noisy"

    def reset(self, context: EpisodeContext) -> None:
        self.rng = np.random.default_rng(1000 + context.seed)

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        step = super().act(obs, instruction)
        noisy = np.clip(step.action + np.append(self.rng.normal(0, 0.4, 3), [0, 0, 0, 0]), -1, 1)
        return PolicyStep(noisy, reasoning=step.reasoning, intention=step.intention)


class BoardXss(Adapter):
    """Does nothing, and says something hostile in its reasoning and intention."""

    name = "board-xss"
    reasons = True

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        return PolicyStep(np.zeros(7), reasoning=XSS_REASONING, intention="stay <b>still</b> <script>alert(6)</script>")


for _cls in (BoardSilent, BoardNoisy, BoardXss):
    ADAPTERS.register(_cls.name, _cls)


def make_run(
    path: Path,
    model: str,
    episodes: int = 5,
    suite: Suite | None = None,
    judge: str | None = "grounded",
    tasks: list[str] | None = None,
) -> Path:
    """A toy run (judged with `judge` unless None)."""
    runner.run(model=model, suite=suite or load_suite("toy"), out=path, episodes=episodes, tasks=tasks)
    if judge is not None:
        judge_run(path, judge)
    return path


# -- the session's runs, bundles and boards -----------------------------------------------------------------
@dataclass
class World:
    """Runs, their bundles and two boards, shared (read-only) by the tests; copy before changing anything."""

    root: Path
    runs: dict[str, Path]
    bundles: dict[str, Path]
    names: dict[str, str]
    base_board: Path
    """A board holding the `expert` bundle only."""
    full_board: Path
    """A board holding every bundle."""


MODELS = {  # key -> (adapter, display name, judged)
    "expert": ("toy-expert", "Toy expert", True),
    "noisy": ("board-noisy", "Noisy expert", True),
    "xss": ("board-xss", XSS_NAME, True),
    "random": ("random", "Uniform random", True),
    "silent": ("board-silent", "Silent expert (unjudged)", False),
}
_WORLD: World | None = None


def build_world(root: Path) -> World:
    runs, bundles, names = {}, {}, {}
    for key, (adapter, name, judged) in MODELS.items():
        runs[key] = make_run(root / "runs" / key, adapter, judge="grounded" if judged else None)
        notes = XSS_NOTES if key == "xss" else f"the {adapter} adapter on the toy suite"
        bundles[key] = pack(
            runs[key], root / "bundles" / f"{key}.zip", name=name, notes=notes, url="https://example.org/model?a=1&b=2"
        ).path
        names[key] = name
    base = root / "base-board"
    Board(base).add(bundles["expert"])
    full = root / "full-board"
    for bundle in bundles.values():
        Board(full).add(bundle)
    return World(root, runs, bundles, names, base, full)


def get_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The session's world, built on first use (each test module's `world` fixture calls this)."""
    global _WORLD
    if _WORLD is None:
        _WORLD = build_world(tmp_path_factory.mktemp("world"))
    return _WORLD


def copy_board(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# -- looking at trees and zips ----------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every path under `root` -> (kind, sha256 of a file's bytes / a link's target)."""
    out: dict[str, tuple[str, str]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = ("link", str(path.readlink()))
        elif path.is_dir():
            out[rel] = ("dir", "")
        else:
            out[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def entries(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def manifest_for(files: dict[str, bytes]) -> bytes:
    listing = {
        n: ManifestEntry(sha256=hashlib.sha256(d).hexdigest(), size=len(d))
        for n, d in files.items()
        if n != MANIFEST_FILE
    }
    return Manifest(files=listing).model_dump_json(indent=2).encode()


Entry = tuple[str | zipfile.ZipInfo, bytes]


def write_zip(path: Path, items: list[Entry]) -> Path:
    """A zip with exactly these entries (duplicates and odd names allowed: that is the point)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in items:
                zf.writestr(name, data)
    return path


def rebundle(
    src: Path,
    dst: Path,
    replace: dict[str, bytes] | None = None,
    drop: tuple[str, ...] = (),
    extra: list[Entry] | None = None,
    fix_manifest: bool = True,
) -> Path:
    """A copy of a bundle with some files replaced or dropped, extra entries appended and (by default) a manifest
    that matches the new files (so a later check, not the manifest one, must catch the change)."""
    files = {n: d for n, d in entries(src).items() if n not in drop}
    files.update(replace or {})
    if fix_manifest:
        files[MANIFEST_FILE] = manifest_for(files)
    return write_zip(dst, [*files.items(), *(extra or [])])


def edit_json(data: bytes, edit: Any) -> bytes:
    obj = json.loads(data)
    edit(obj)
    return json.dumps(obj, indent=2).encode()


def forge_declared_size(bundle: Path, name: str, declared: int) -> None:
    """Rewrite the central-directory (and local-header) uncompressed size of entry `name` to `declared`."""
    data = bytearray(bundle.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo(name)
        pos = zf.start_dir  # type: ignore[attr-defined]
    data[info.header_offset + 22 : info.header_offset + 26] = declared.to_bytes(4, "little")
    while data[pos : pos + 4] == b"PK\x01\x02":
        n, m, k = (int.from_bytes(data[pos + o : pos + o + 2], "little") for o in (28, 30, 32))
        if data[pos + 46 : pos + 46 + n].decode() == name:
            data[pos + 24 : pos + 28] = declared.to_bytes(4, "little")
            break
        pos += 46 + n + m + k
    else:
        raise AssertionError(f"{name} not found in the central directory")
    bundle.write_bytes(bytes(data))


def drop_episode(run_dir: Path, episode_id: str) -> None:
    """Remove one episode (rows and frames) from a run, as if it had never been recorded."""
    conn = sqlite3.connect(run_dir / "traces.sqlite")
    with conn:
        conn.execute("DELETE FROM steps WHERE episode_id = ?", (episode_id,))
        conn.execute("DELETE FROM episodes WHERE episode_id = ?", (episode_id,))
    conn.close()
    (run_dir / "frames" / f"{episode_id}.npz").unlink()


def edited_grounded(path: Path) -> Path:
    """A copy of the grounded judge with other weights and thresholds (a new effective version)."""
    spec = yaml.safe_load(Path(load_judge("grounded").source).read_text())
    spec["params"]["weights"]["reasoning"] = {"objects": 0.9, "subgoals": 0.1}
    spec["params"]["weights"]["action"] = {"smoothness": 0.1, "efficiency": 0.1, "precision": 0.8}
    spec["params"]["action"]["ldlj_best"] = -5.0
    path.write_text(yaml.safe_dump(spec))
    return path
