"""The visual check of a pruned copy: one offline HTML page, per episode a timeline of the scene and action labels
and the kept steps (with the stated intention's changes for reference), the frames at the kept steps and the
reasoning text that was kept. Rendered from leaderboard/templates/pruning.html.j2, in the report's style."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlascore._version import __version__
from vlascore.data.labels import ABLATIONS, LABELS_FILE, PRUNING_DIR, read_labels, read_prune_record
from vlascore.data.opening import open_source
from vlascore.data.sources import EpisodeFailure
from vlascore.images import png_data_uri, sample_indices, thumbnail
from vlascore.records import utcnow
from vlascore.store import atomic_write_text

TEMPLATE = "pruning.html.j2"
FRAMES_PER_EPISODE = 10
"""Kept-step thumbnails per episode (spread over its kept steps)."""
THUMB_SIDE = 96


@dataclass
class Shot:
    step: int
    uri: str


@dataclass
class EpisodeView:
    episode_id: str
    task: str
    steps: int
    rows: dict[str, list[int]]
    """Row name -> 0/1 per step (scene, action, kept, reasoning)."""
    changes: list[int]
    """Step indices where the stated intention changes."""
    kept_text: list[tuple[int, str]]
    shots: list[Shot] = field(default_factory=list)
    note: str = ""


def choose_episodes(labels: Any, limit: int, wanted: list[str] | None) -> list[str]:
    """`wanted` if given (unknown ids refused), else up to `limit` episodes taken in turn from each task."""
    order = list(dict.fromkeys(labels["episode_id"].tolist()))
    if wanted:
        unknown = [w for w in wanted if w not in set(order)]
        if unknown:
            raise ValueError(f"no episode {', '.join(unknown)} in the labels (episodes: {', '.join(order[:5])}...)")
        return wanted
    by_task: dict[str, list[str]] = defaultdict(list)
    task_of = dict(zip(labels["episode_id"].tolist(), labels["task"].tolist(), strict=True))
    for eid in order:
        by_task[task_of[eid]].append(eid)
    picked: list[str] = []
    queues = list(by_task.values())
    while len(picked) < limit and any(queues):
        for q in queues:
            if q and len(picked) < limit:
                picked.append(q.pop(0))
    return picked


def _environment() -> Any:
    import jinja2

    from vlascore.paths import data_dir

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(data_dir("leaderboard") / "templates"),
        autoescape=True,  # policy text is untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_view(pruned: Path, *, limit: int = 40, episodes: list[str] | None = None, name: str | None = None) -> str:
    """The HTML page for the pruned copy at `pruned` (`name`: how the title calls it [default: its folder name])."""
    record = read_prune_record(pruned)
    labels = read_labels(pruned / PRUNING_DIR / LABELS_FILE)
    chosen = choose_episodes(labels, limit, episodes)
    fields = record.source.get("fields")
    source = open_source(pruned, fields if isinstance(fields, dict) else None)
    wanted = set(chosen)
    views: dict[str, EpisodeView] = {}
    grouped = {eid: g for eid, g in labels.groupby("episode_id", sort=False) if eid in wanted}
    for traj in source.trajectories():
        if isinstance(traj, EpisodeFailure) or traj.episode_id not in wanted:
            continue
        g = grouped[traj.episode_id].sort_values("step")
        row = {int(s): i for i, s in enumerate(traj.steps.tolist())}
        kept_steps = g["step"][g["kept"]].astype(int).tolist()
        texts = [t.strip() for t in traj.intention]
        view = EpisodeView(
            episode_id=traj.episode_id,
            task=traj.task,
            steps=len(g),
            rows={name: g[name].astype(int).tolist() for name in ("scene", "action", "kept", "has_reasoning")},
            changes=[int(traj.steps[i]) for i in range(1, len(texts)) if texts[i] != texts[i - 1]],
            kept_text=[(s, traj.reasoning[row[s]]) for s in kept_steps if s in row],
        )
        if traj.frames is None:
            view.note = "no frames stored for this episode"
        elif kept_steps:
            frames, frame_steps = traj.frames()
            for i in sample_indices(len(kept_steps), FRAMES_PER_EPISODE):
                s = kept_steps[i]
                k = int(np.searchsorted(frame_steps, s, side="right")) - 1  # the frame the policy saw at step s
                view.shots.append(Shot(s, png_data_uri(thumbnail(frames[max(k, 0)], THUMB_SIDE))))
        views[traj.episode_id] = view
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            title=f"Pruning check: {name or pruned.name}",
            version=__version__,
            generated_at=utcnow(),
            record=record,
            ablation_text=ABLATIONS[record.ablation],
            episodes=[views[e] for e in chosen if e in views],
            total_episodes=labels["episode_id"].nunique(),
        )
    )


def write_view(
    pruned: Path, out: Path, *, limit: int = 40, episodes: list[str] | None = None, name: str | None = None
) -> Path:
    atomic_write_text(out, render_view(pruned, limit=limit, episodes=episodes, name=name))
    return out
