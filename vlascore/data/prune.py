"""Dual-layer reasoning pruning: label every step with the scene and action layers, keep the reasoning text of the
steps the chosen rule (the method or an ablation) selects, and write a pruned copy of the source with the labels.

The action supervision of every step is kept; only the reasoning text of the other steps is removed. The copy is
built in a temporary folder beside the output and renamed into place at the end, so an interrupted prune leaves
nothing half-written and a re-run starts clean.
"""

from __future__ import annotations

import os
import shutil
import zlib
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlascore.data.kinematic import action_labels
from vlascore.data.labels import (
    LABELS_FILE,
    PRUNING_DIR,
    RECORD_FILE,
    Ablation,
    FailedEpisode,
    PruneRecord,
    TaskStats,
    write_labels,
)
from vlascore.data.opening import open_source
from vlascore.data.sources import EpisodeFailure, Source
from vlascore.data.trajectory import Trajectory, TrajectoryError
from vlascore.data.triggers import SceneTrigger, TriggerError, make_trigger
from vlascore.store import atomic_write_text

Progress = Callable[[int, int], None]


class PruneError(TrajectoryError):
    """A prune that cannot start or finish; the message says what to do."""


@dataclass
class EpisodeLabels:
    """One episode's per-step labels (arrays in step order)."""

    episode_id: str
    task: str
    step: np.ndarray
    scene: np.ndarray
    action: np.ndarray
    has_reasoning: np.ndarray
    kept: np.ndarray

    def block(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("episode_id", "task", "step", "scene", "action", "kept", "has_reasoning")}


def label_episode(traj: Trajectory, trigger: SceneTrigger) -> EpisodeLabels:
    """Both layers on one trajectory; `kept` is the dual rule (an ablation may replace it)."""
    scene = np.asarray(trigger.scene_labels(traj), dtype=bool)
    if scene.shape != (len(traj),):
        raise TriggerError(f"trigger {trigger.name!r} returned {scene.shape[0]} labels for {len(traj)} steps")
    action = action_labels(traj)
    has_reasoning = np.array([bool(t.strip()) for t in traj.reasoning], dtype=bool)
    return EpisodeLabels(
        traj.episode_id, traj.task, traj.steps, scene, action, has_reasoning, scene & action & has_reasoning
    )


def apply_ablation(
    episodes: list[EpisodeLabels], ablation: Ablation, keep_fraction: float | None = None, seed: int = 0
) -> float | None:
    """Set each episode's `kept` by `ablation`; returns the keep fraction the `random` ablation used."""
    if ablation == "dual":
        return None
    if ablation in ("no-action", "no-scene"):
        for e in episodes:
            e.kept = (e.scene if ablation == "no-action" else e.action) & e.has_reasoning
        return None
    if keep_fraction is None:  # as many as the method keeps over the whole source
        reasoning = sum(int(e.has_reasoning.sum()) for e in episodes)
        keep_fraction = sum(int(e.kept.sum()) for e in episodes) / reasoning if reasoning else 0.0
    for e in episodes:
        candidates = np.flatnonzero(e.has_reasoning)
        rng = np.random.default_rng([seed, zlib.crc32(e.episode_id.encode())])  # independent of episode order
        chosen = rng.choice(candidates, size=int(round(keep_fraction * len(candidates))), replace=False)
        e.kept = np.zeros(len(e.step), dtype=bool)
        e.kept[chosen] = True
    return keep_fraction


def statistics(episodes: list[EpisodeLabels]) -> list[TaskStats]:
    """Counts per task (in first-seen order), then "all"."""
    groups: dict[str, list[EpisodeLabels]] = defaultdict(list)
    for e in episodes:
        groups[e.task].append(e)

    def count(task: str, eps: list[EpisodeLabels]) -> TaskStats:
        return TaskStats(
            task=task,
            episodes=len(eps),
            steps=sum(len(e.step) for e in eps),
            reasoning_steps=sum(int(e.has_reasoning.sum()) for e in eps),
            scene_steps=sum(int(e.scene.sum()) for e in eps),
            action_steps=sum(int(e.action.sum()) for e in eps),
            kept_steps=sum(int(e.kept.sum()) for e in eps),
        )

    return [count(t, eps) for t, eps in groups.items()] + [count("all", episodes)]


def check_trigger_inputs(source: Source, trigger: SceneTrigger) -> None:
    missing = sorted(trigger.needs() - source.holds())
    if missing:
        raise PruneError(
            f"trigger {trigger.name!r} needs {', '.join(missing)}, which {source.path} does not hold: "
            "choose another --trigger (`vlascore data triggers` lists them)"
        )
    if "reasoning" not in source.holds():
        raise PruneError(f"{source.path} holds no reasoning text: there is nothing to prune")


def label_source(
    source: Source, trigger: SceneTrigger, workers: int | None = None, progress: Progress | None = None
) -> tuple[list[EpisodeLabels], list[FailedEpisode]]:
    """Label every episode (in parallel threads: frame decoding and numpy release the GIL)."""
    total = source.episode_count()
    done = 0
    labelled: list[EpisodeLabels] = []
    failed: list[FailedEpisode] = []

    def run(item: Trajectory | EpisodeFailure) -> EpisodeLabels | FailedEpisode:
        if isinstance(item, EpisodeFailure):
            return FailedEpisode(episode_id=item.episode_id, task=item.task, reason=item.reason)
        try:
            return label_episode(item, trigger)
        except Exception as exc:  # noqa: BLE001 - hostile files fail in many ways; one never stops the others
            return FailedEpisode(episode_id=item.episode_id, task=item.task, reason=f"{type(exc).__name__}: {exc}")

    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        for result in pool.map(run, source.trajectories()):
            (labelled if isinstance(result, EpisodeLabels) else failed).append(result)  # type: ignore[arg-type]
            done += 1
            if progress:
                progress(done, total)
    return labelled, failed


def prune(
    source_path: Path,
    out: Path,
    *,
    trigger: str = "frame-diff",
    trigger_options: dict[str, Any] | None = None,
    ablation: Ablation = "dual",
    keep_fraction: float | None = None,
    seed: int = 0,
    fields: dict[str, str] | None = None,
    overwrite: bool = False,
    view_episodes: int = 40,
    progress: Progress | None = None,
) -> PruneRecord:
    """Prune `source_path` into `out` (see the module docstring); returns the record written there."""
    source_path, out = Path(source_path), Path(out)
    src_abs, out_abs = source_path.resolve(), out.resolve()
    if out_abs == src_abs or src_abs in out_abs.parents or out_abs in src_abs.parents:
        raise PruneError(f"--out {out} must not be the source, inside it or above it: choose a new folder")
    if out.exists() and not (overwrite and (out / PRUNING_DIR / RECORD_FILE).is_file()):
        why = (
            "and is not a pruned copy" if (out.exists() and overwrite) else "(add --overwrite to replace a pruned copy)"
        )
        raise PruneError(f"--out {out} already exists {why}: choose a new folder")
    if keep_fraction is not None and not 0.0 <= keep_fraction <= 1.0:
        raise PruneError(f"--keep-fraction {keep_fraction} must be between 0 and 1")
    if keep_fraction is not None and ablation != "random":
        raise PruneError("--keep-fraction applies to --ablation random only")
    source = open_source(source_path, fields)
    scene = make_trigger(trigger, trigger_options)
    check_trigger_inputs(source, scene)
    episodes, failed = label_source(source, scene, progress=progress)
    if not episodes:
        reasons = "; ".join(f"{f.episode_id}: {f.reason}" for f in failed[:3])
        raise PruneError(f"no episode of {source_path} could be labelled ({reasons or 'the source is empty'})")
    used_fraction = apply_ablation(episodes, ablation, keep_fraction, seed)
    record = PruneRecord(
        source={**source.describe(), **({"fields": fields} if fields else {})},
        trigger=scene.describe(),
        ablation=ablation,
        keep_fraction=used_fraction,
        seed=seed,
        stats=statistics(episodes),
        failed=failed,
    )
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    if partial.exists():
        shutil.rmtree(partial)
    try:
        masked = {e.episode_id: e.step[e.has_reasoning & ~e.kept] for e in episodes}
        source.write_pruned(partial, masked, {f.episode_id for f in failed})
        write_labels(partial / PRUNING_DIR / LABELS_FILE, [e.block() for e in episodes])
        atomic_write_text(partial / PRUNING_DIR / RECORD_FILE, record.model_dump_json(indent=2))
        if view_episodes > 0:
            from vlascore.data.view import write_view

            write_view(partial, partial / PRUNING_DIR / "view.html", limit=view_episodes, name=out.name)
        if out.exists():
            shutil.rmtree(out)
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return record
