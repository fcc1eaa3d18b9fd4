"""What a judge sees of one episode: the instruction, the task spec, the steps (reasoning, intention,
actions, privileged state), the simulator's success flag B, and the frames; steps and frames are read on
first use, so a re-judge served from the cache reads neither."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property, partial
from pathlib import Path

import numpy as np
import pandas as pd

from vlascore.records import EpisodeRecord
from vlascore.store import LoadedRun, RunStore
from vlascore.suites import Suite, TaskSpec


@dataclass(frozen=True)
class JudgeInput:
    """One episode, ready to judge. `steps` has the StepRecord columns, in step order."""

    run_id: str
    episode: EpisodeRecord
    task: TaskSpec
    reasons: bool
    """The adapter's declaration: reasoning VLA (True) or specialist (False)."""
    load_steps: Callable[[], pd.DataFrame]
    load_frames: Callable[[], tuple[np.ndarray, np.ndarray]]
    """-> (frames N x H x W x 3, step index of each frame)."""
    frames_stat: tuple[int, int] | None = None
    """(size, mtime in ns) of the episode's frames file, part of `content_key`."""
    suite_fingerprint: str = ""
    """Fingerprint of the run's suite."""
    adapter: str = ""
    """Adapter that produced the run."""

    @property
    def key(self) -> tuple[str, str, str]:
        """(suite fingerprint, adapter, episode id): which knowledge-base entries record this same episode."""
        return (self.suite_fingerprint, self.adapter, self.episode_id)

    @cached_property
    def steps(self) -> pd.DataFrame:
        return self.load_steps()

    @property
    def episode_id(self) -> str:
        return self.episode.episode_id

    @property
    def success(self) -> bool:
        """B of Eq. 8: the simulator's flag, never the judge's."""
        return self.episode.success

    @cached_property
    def content_key(self) -> str | None:
        """Identifies the episode's recorded content without reading it: the run store never rewrites a committed
        episode in place (a re-executed one has a new start time and frames file), so its record and its frames
        file's size and mtime stand for its steps and frames. None when unknown (no frames file, edited texts)."""
        if self.frames_stat is None:
            return None
        blob = f"{self.run_id}\0{self.episode.model_dump_json()}\0{self.frames_stat}"
        return hashlib.sha256(blob.encode()).hexdigest()

    def with_texts(self, reasoning: Sequence[str | None], intention: Sequence[str | None]) -> JudgeInput:
        """A copy with other per-step texts (the audit's injection probe)."""
        steps = self.steps.copy()
        steps["reasoning"], steps["intention"] = list(reasoning), list(intention)
        return replace(self, load_steps=lambda: steps, frames_stat=None)


class _StepTable:
    """The steps of the judged episodes, read in one query on first use, from whichever thread needs them."""

    def __init__(self, path: Path, episode_ids: list[str]) -> None:
        self.path, self.ids = path, episode_ids
        self._by_episode: dict[str, pd.DataFrame] | None = None
        self._empty: pd.DataFrame | None = None
        self._lock = threading.Lock()

    def get(self, episode_id: str) -> pd.DataFrame:
        with self._lock:
            if self._by_episode is None:
                # its own connection: SQLite connections belong to one thread
                store = RunStore(self.path, read_only=True)
                try:
                    steps = store.steps_frame(self.ids)
                finally:
                    store.close()
                self._by_episode = dict(tuple(steps.groupby("episode_id", sort=False)))
                self._empty = steps.iloc[0:0]
        found = self._by_episode.get(episode_id)
        return (found if found is not None else self._empty).reset_index(drop=True)  # type: ignore[union-attr]


def episode_inputs(run: LoadedRun, episode_ids: list[str] | None = None) -> list[JudgeInput]:
    """Inputs for the run's completed episodes (errored ones are not judged), in run order."""
    suite = Suite.model_validate(run.run.suite_spec)
    reasons = bool(run.run.adapter_info.get("reasons", False))
    episodes = [e for e in run.store.episode_records() if e.status == "ok"]
    if episode_ids is not None:
        unknown = sorted(set(episode_ids) - {e.episode_id for e in episodes})
        if unknown:
            raise KeyError(f"no completed episode(s) {', '.join(unknown)} in run {run.run.run_id}")
        wanted = set(episode_ids)
        episodes = [e for e in episodes if e.episode_id in wanted]
    table = _StepTable(run.path, [e.episode_id for e in episodes])
    root = os.fspath(run.path)
    out = []
    for episode in episodes:
        eid = episode.episode_id
        try:
            stat = os.stat(os.path.join(root, episode.frames_file)) if episode.frames_file else None
        except FileNotFoundError:
            stat = None
        out.append(
            JudgeInput(
                run_id=run.run.run_id,
                episode=episode,
                task=suite.task(episode.task),
                reasons=reasons,
                load_steps=partial(table.get, eid),
                load_frames=partial(run.frames, eid),
                frames_stat=(stat.st_size, stat.st_mtime_ns) if stat else None,
                suite_fingerprint=run.run.suite_fingerprint,
                adapter=run.run.adapter,
            )
        )
    return out
