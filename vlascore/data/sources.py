"""Where trajectories come from and where their pruned copy goes: a vlascore run directory or a LeRobot dataset.

A source lists its episodes, yields them as `Trajectory` objects (an episode that cannot be read is yielded as an
`EpisodeFailure` with the reason, never dropped silently), says what it holds (frames, intention, reasoning text),
and writes a copy of itself with some steps' reasoning masked.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlascore.adapters.conventions import to_matrix
from vlascore.data.trajectory import Trajectory, TrajectoryError
from vlascore.store import DB_FILE, FRAMES_DIR, RUN_FILE, RunStore


@dataclass(frozen=True)
class EpisodeFailure:
    """An episode the source could not turn into a trajectory, and why."""

    episode_id: str
    task: str
    reason: str


class Source(ABC):
    """A readable collection of episodes."""

    kind: str = ""

    def __init__(self, path: Path) -> None:
        self.path = path

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What identifies the source in the pruning record (kind, path, fingerprint...)."""

    @abstractmethod
    def holds(self) -> frozenset[str]:
        """Which of "frames", "intention", "reasoning" the source has at all."""

    @abstractmethod
    def episode_count(self) -> int: ...

    @abstractmethod
    def trajectories(self) -> Iterator[Trajectory | EpisodeFailure]:
        """Every episode, in the source's order."""

    @abstractmethod
    def write_pruned(self, out: Path, masked: dict[str, np.ndarray], dropped: set[str]) -> None:
        """Copy the source into the (new, empty) folder `out` with the reasoning of `masked[episode_id]` (step
        numbers) removed and the episodes in `dropped` left out."""


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link where the file system allows one (frames and videos are never rewritten in place), else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class RunSource(Source):
    """A vlascore run directory (run.json, traces.sqlite, frames/)."""

    kind = "vlascore-run"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.store = RunStore(path)
        self.run = self.store.read_run()
        # The recorded action is in the task's convention: its last element is the gripper command.
        self._open_sign: dict[str, int] = {}
        for task in self.run.suite_spec.get("tasks", []):
            if isinstance(task, dict) and isinstance(task.get("id"), str):
                space = task.get("action_space") or {}
                self._open_sign[task["id"]] = -1 if space.get("gripper_open") == -1 else 1
        self._episodes = self.store.episode_records()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": str(self.path),
            "run_id": self.run.run_id,
            "adapter": self.run.adapter,
            "suite": self.run.suite,
            "suite_fingerprint": self.run.suite_fingerprint,
        }

    def holds(self) -> frozenset[str]:
        have = {"frames"} if any(e.frames_file for e in self._episodes) else set()
        for column in ("intention", "reasoning"):
            (found,) = self.store.conn.execute(
                f"SELECT EXISTS (SELECT 1 FROM steps WHERE {column} IS NOT NULL AND {column} != '')"
            ).fetchone()
            if found:
                have.add(column)
        return frozenset(have)

    def episode_count(self) -> int:
        return len(self._episodes)

    def trajectories(self) -> Iterator[Trajectory | EpisodeFailure]:
        rows: dict[str, list[tuple[Any, ...]]] = {e.episode_id: [] for e in self._episodes}
        for row in self.store.step_rows(["episode_id", "step", "action", "ee_pose", "reasoning", "intention"], True):
            if row[0] in rows:
                rows[row[0]].append(row)
        for ep in self._episodes:
            try:
                yield self._trajectory(ep.episode_id, ep.task, rows.pop(ep.episode_id), ep.frames_file)
            except (TrajectoryError, ValueError, TypeError, IndexError) as exc:
                yield EpisodeFailure(ep.episode_id, ep.task, f"unreadable steps: {exc}")

    def _trajectory(self, eid: str, task: str, rows: list[tuple[Any, ...]], frames_file: str | None) -> Trajectory:
        if not rows:
            raise TrajectoryError("the episode has no steps")
        rows.sort(key=lambda r: r[1])
        steps = np.array([r[1] for r in rows], dtype=np.int64)
        poses_raw = [json.loads(r[3]) for r in rows]
        bad = next(
            (r[1] for r, p in zip(rows, poses_raw, strict=True) if not (isinstance(p, list) and len(p) == 7)), None
        )
        if bad is not None:
            raise TrajectoryError(f"step {bad}: ee_pose is not [x, y, z, qw, qx, qy, qz]")
        poses = np.array(poses_raw, dtype=np.float64)
        grip = np.array([_last(json.loads(r[2])) for r in rows], dtype=np.float64) * self._open_sign.get(task, 1)
        closed = np.zeros(len(rows), dtype=bool)
        state = False  # a zero command holds the previous state; episodes start open
        for i, g in enumerate(grip):
            state = bool(g < 0) if g != 0 else state
            closed[i] = state
        frames = None
        if frames_file and self.store.frames_path(eid).is_file():
            frames = _frames_loader(self.store, eid)
        return Trajectory(
            episode_id=eid,
            task=task,
            steps=steps,
            position=poses[:, :3],
            rotation=to_matrix(poses[:, 3:], "quaternion"),
            gripper_closed=closed,
            reasoning=[r[4] for r in rows],
            intention=[r[5] for r in rows],
            frames=frames,
        )

    def write_pruned(self, out: Path, masked: dict[str, np.ndarray], dropped: set[str]) -> None:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.path / RUN_FILE, out / RUN_FILE)
        target = sqlite3.connect(out / DB_FILE)
        try:
            self.store.conn.backup(target)  # a consistent copy even while the source is being written
            with target:
                target.execute(
                    "CREATE TEMP TABLE masked (episode_id TEXT, step INTEGER, PRIMARY KEY (episode_id, step))"
                )
                target.executemany(
                    "INSERT INTO masked VALUES (?, ?)",
                    ((eid, int(s)) for eid, steps in masked.items() for s in steps.tolist()),
                )
                target.execute(
                    "UPDATE steps SET reasoning = NULL WHERE EXISTS "
                    "(SELECT 1 FROM masked m WHERE m.episode_id = steps.episode_id AND m.step = steps.step)"
                )
                target.executemany("DELETE FROM steps WHERE episode_id = ?", ((e,) for e in sorted(dropped)))
                target.executemany("DELETE FROM episodes WHERE episode_id = ?", ((e,) for e in sorted(dropped)))
        finally:
            target.close()
        for ep in self._episodes:
            if ep.frames_file and ep.episode_id not in dropped and self.store.frames_path(ep.episode_id).is_file():
                link_or_copy(self.store.frames_path(ep.episode_id), out / FRAMES_DIR / f"{ep.episode_id}.npz")


def _last(action: Any) -> float:
    if not isinstance(action, list) or not action:
        raise TrajectoryError("an action is not a non-empty list of numbers")
    return float(action[-1])


def _frames_loader(store: RunStore, eid: str) -> Any:
    def load() -> tuple[np.ndarray, np.ndarray]:
        return store.frames(eid)

    return load
