"""Helpers for the scaling tests: a run's records without timings and provenance (what must not depend on how the
episodes were executed), and the processes a process has started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil

from vlascore.store import RunStore

EXECUTION_FIELDS = {"started_at", "duration_s", "policy_time_s", "sim_time_s", "worker", "node"}


def records(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(episodes, steps) of a run, sorted by episode id (and step), without the execution fields."""
    store = RunStore(path)
    try:
        episodes = sorted(
            ({k: v for k, v in e.model_dump().items() if k not in EXECUTION_FIELDS} for e in store.episode_records()),
            key=lambda e: e["episode_id"],
        )
        steps = store.steps_frame().sort_values(["episode_id", "step"]).to_dict("records")
    finally:
        store.close()
    return episodes, steps


def descendants(pid: int) -> list[psutil.Process]:
    """Every process below `pid` (children, their children...)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(processes: list[psutil.Process]) -> list[int]:
    """The pids among `processes` still running (zombies waiting to be reaped count as gone)."""
    out = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc.pid)
        except psutil.NoSuchProcess:
            pass
    return out
