"""Build the self-contained HTML report of one or more runs (jinja2 template in leaderboard/templates/).

Everything is inlined: plotly.js from the installed `plotly` package, frames as small base64 PNG thumbnails,
so the file works offline and can be attached or archived as is. Steps are read once per run (only the
text columns) and grouped with pandas; frames files are decoded in a thread pool (zlib releases the GIL).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

from vlascore import __version__
from vlascore.images import png_data_uri, sample_indices, thumbnail
from vlascore.records import EpisodeRecord, utcnow
from vlascore.report.chart import success_chart
from vlascore.report.timeline import Segment, timelines
from vlascore.scoring import RunResults, score_run
from vlascore.store import LoadedRun, load_run

TEMPLATE = "report.html.j2"
MAX_FRAMES = 8
"""Thumbnails per episode filmstrip (first and last frame always included)."""
THUMB_SIDE = 96
"""Thumbnails are shrunk by an integer factor until their longer side is at most this many pixels."""
MAX_SEGMENTS = 200
"""Timeline segments shown per episode and kind; the rest are counted."""


@dataclass
class Thumb:
    uri: Markup
    step: int
    final: bool


@dataclass
class EpisodeView:
    """An episode's stored record plus what the report derives for it."""

    record: EpisodeRecord
    frames: list[Thumb] = field(default_factory=list)
    frames_note: str | None = None
    timeline: dict[str, list[Segment]] = field(default_factory=dict)
    hidden: dict[str, int] = field(default_factory=dict)


@dataclass
class RunView:
    anchor: str
    label: str
    path: str
    record: Any
    results: RunResults
    episodes: list[EpisodeView]
    adapter_config: str


def _step_texts(run: LoadedRun) -> pd.DataFrame:
    """Only the columns the timelines need, in one query (the full `run.steps` parses JSON for every row)."""
    return run.store.steps_frame(columns=["episode_id", "step", "intention", "reasoning"])


def _filmstrip(run: LoadedRun, episode_id: str, num_steps: int, max_frames: int,
               thumb_side: int) -> tuple[list[Thumb], str | None]:  # fmt: skip
    try:
        frames, steps = run.frames(episode_id)
    except Exception as exc:  # noqa: BLE001 - one unreadable frames file must not sink the whole report
        return [], f"frames unreadable: {type(exc).__name__}: {exc}"
    thumbs = []
    for i in sample_indices(len(frames), max_frames):
        uri = Markup(png_data_uri(thumbnail(frames[i], thumb_side)))  # base64: nothing to escape
        thumbs.append(Thumb(uri, int(steps[i]), final=int(steps[i]) >= num_steps))
    return thumbs, None if thumbs else "no frames stored"


def _episodes(run: LoadedRun, max_frames: int, thumb_side: int, pool: ThreadPoolExecutor) -> list[EpisodeView]:
    """Episodes in suite task order, then by seed, with their timelines and filmstrips."""
    eps = run.episodes
    if eps.empty:
        return []
    order = {t: i for i, t in enumerate(run.run.tasks)}
    eps = eps.assign(_order=eps["task"].map(order).fillna(len(order)))
    eps = eps.sort_values(["_order", "seed"], kind="stable")
    texts = timelines(_step_texts(run))
    views = []
    for row in eps.drop(columns="_order").to_dict("records"):
        # NULLs come back as None or NaN depending on the column's other values; the record wants None.
        record = EpisodeRecord.model_validate({k: None if v is None or v != v else v for k, v in row.items()})
        view = EpisodeView(record)
        for kind, by_episode in texts.items():
            segments = by_episode.get(record.episode_id, [])
            view.timeline[kind] = segments[:MAX_SEGMENTS]
            view.hidden[kind] = max(0, len(segments) - MAX_SEGMENTS)
        if not record.frames_file:
            view.frames_note = "no frames stored"
        views.append(view)
    todo = [v for v in views if v.frames_note is None]
    strips = pool.map(lambda v: _filmstrip(run, v.record.episode_id, v.record.num_steps, max_frames, thumb_side), todo)
    for view, (thumbs, note) in zip(todo, strips, strict=True):
        view.frames, view.frames_note = thumbs, note
    return views


def _labels(runs: list[LoadedRun]) -> list[str]:
    """Run names; the path where two runs share a name."""
    names = [r.run.run_id for r in runs]
    return [n if names.count(n) == 1 else str(r.path) for n, r in zip(names, runs, strict=True)]


def _fmt_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _environment() -> Any:
    import jinja2

    from vlascore.paths import data_dir

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(data_dir("leaderboard") / "templates"),
        autoescape=True,  # model names, instructions and reasoning are user-supplied
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _fmt_pct
    return env


def _plotly_js() -> Markup:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    if "</script" in js.lower():  # would end the inline <script> early
        raise RuntimeError("the installed plotly.js bundle cannot be inlined (contains '</script')")
    return Markup(js)


def build_report(paths: Sequence[str | Path], *, labels: Sequence[str] | None = None, max_frames: int = MAX_FRAMES,
                 thumb_side: int = THUMB_SIDE) -> str:  # fmt: skip
    """The report's HTML. Raises StoreError for a path that is not a run directory (before any other work).

    `labels` names the runs (e.g. a leaderboard's model names); default: run names, paths where they clash."""
    if not paths:
        raise ValueError("no run directories given")
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"{len(labels)} labels for {len(paths)} runs")
    runs = [load_run(p) for p in paths]
    labels = list(labels) if labels is not None else _labels(runs)
    results = [score_run(r) for r in runs]
    views = []
    try:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            for i, (run, label, res) in enumerate(zip(runs, labels, results, strict=True)):
                views.append(RunView(
                    anchor=f"run-{i + 1}", label=label, path=str(run.path), record=run.run, results=res,
                    episodes=_episodes(run, max_frames, thumb_side, pool),
                    adapter_config=json.dumps(run.run.adapter_config, sort_keys=True),
                ))  # fmt: skip
    finally:
        for run in runs:
            run.store.close()
    notes = []
    if len({(r.run.suite_fingerprint, r.run.protocol_version) for r in runs}) > 1:
        notes.append("These runs used different suite specs (fingerprint or protocol differ): their success "
                     "rates are not directly comparable.")  # fmt: skip
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            title="vlascore report: " + ", ".join(labels),
            generated_at=utcnow(),
            version=__version__,
            runs=views,
            notes=notes,
            chart=success_chart(labels, results),
            plotly_js=_plotly_js(),
            max_frames=max_frames,
        )
    )


def write_report(paths: Sequence[str | Path], out: str | Path = "report.html", **options: Any) -> Path:
    """Build the report and write it atomically to `out`; returns the path written."""
    html = build_report(paths, **options)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")  # explicit: reasoning text may be any language
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
