"""Build the self-contained HTML report of one or more runs (jinja2 template in leaderboard/templates/).

Sections: a summary table (Sim., R/A/I/RA and the VLA Score per run and judge, with intervals and counts), charts
(per-task success and VLA Score with error bars, a radar per model), paired comparisons on shared seeds with
significance tests, a failure breakdown, and an episode browser with a drill-down per episode (filmstrip and
flipbook, reasoning / intention timeline, action plot, every judge's scores and rationale). Runs with QA results
(`vlascore qa`) add a Multimodal QA section (report/qa.py); QA-only directories appear in that section only.

Everything is inlined (plotly.js from the installed `plotly` package, frames as small base64 PNGs), so the file
works offline and can be attached or archived as is. Each run's steps are read in one query; frames files are
decoded in a thread pool (zlib releases the GIL).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from markupsafe import Markup

from vlascore._version import __version__
from vlascore.judging.failure_modes import Taxonomy, load_taxonomy
from vlascore.judging.judgement import JudgementFile
from vlascore.records import utcnow
from vlascore.report.charts import Figure, radar_chart, success_chart, vla_chart
from vlascore.report.episodes import episode_rows, labels_by_task, ordered_episodes
from vlascore.report.failures import TERMINATIONS, RunFailures, run_failures
from vlascore.report.qa import QASection, is_qa_only, qa_anchor, qa_section
from vlascore.scoring import (
    PairedComparison,
    RunResults,
    VlaScoreResult,
    adjust,
    compare_runs,
    read_judgement_files,
    score_run,
    trajectory_scores,
)
from vlascore.store import LoadedRun, StoreError, atomic_write_text, load_run

TEMPLATE = "report.html.j2"
MAX_FRAMES = 8
"""Thumbnails per episode filmstrip (first and last frame always included)."""
THUMB_SIDE = 96
"""Thumbnails are shrunk by an integer factor until their longer side is at most this many pixels."""
FILMSTRIPS = 300
"""Episodes per run whose filmstrip is embedded (spread over the tasks): the bulk of a report's size."""
ALL_PAIRS_UP_TO = 5
"""With at most this many runs every pair is compared; with more, each run against the first (or --baseline)."""


@dataclass
class JudgeView:
    result: VlaScoreResult
    radar: Figure
    anchor: str


@dataclass
class RunView:
    index: int
    anchor: str
    label: str
    path: str
    record: Any
    results: RunResults
    judges: list[JudgeView]
    failures: RunFailures
    adapter_config: dict[str, Any] = field(default_factory=dict)


def _labels(names: list[str], paths: Sequence[str | Path]) -> list[str]:
    """Run names; the path where two runs share a name."""
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths, strict=True)]


def _fmt_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def _fmt_needed(d: Any) -> str:
    """A PairedDifference's `needed` pairs, and whether the comparison had them."""
    if d.needed is None:
        return "–" if d.diff == 0 or d.n < 2 else "> 100,000"
    return f"{d.needed:,} ({'enough' if d.enough else 'too few'})"


@lru_cache(maxsize=1)
def _environment() -> Any:
    """The template environment, built once per process (a board renders many reports)."""
    import jinja2

    from vlascore.paths import data_dir

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(data_dir("leaderboard") / "templates"),
        autoescape=True,  # model names, instructions, reasoning and judge text are user-supplied
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _fmt_pct
    env.filters["pval"] = _fmt_p
    env.globals["needed"] = _fmt_needed
    # `tojson` (which then escapes <, >, & and ' for HTML) through pydantic-core's serialiser: the episode data of a
    # big report serialises several times faster, and NaN becomes null, which JSON.parse accepts.
    env.policies["json.dumps_function"] = _dumps
    env.policies["json.dumps_kwargs"] = {}
    return env


def _dumps(obj: Any, **_: Any) -> str:
    import pydantic_core

    return pydantic_core.to_json(obj, inf_nan_mode="null").decode()


def _plotly_js() -> Markup:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    if "</script" in js.lower():  # would end the inline <script> early
        raise RuntimeError("the installed plotly.js bundle cannot be inlined (contains '</script')")
    return Markup(js)


def _pairs(n: int, baseline: int | None) -> list[tuple[int, int]]:
    if baseline is not None:
        return [(baseline, i) for i in range(n) if i != baseline]
    if n <= ALL_PAIRS_UP_TO:
        return list(itertools.combinations(range(n), 2))
    return [(0, i) for i in range(1, n)]


def _baseline_index(baseline: str | Path | None, paths: Sequence[str | Path], labels: list[str]) -> int | None:
    if baseline is None:
        return None
    for i, (p, label) in enumerate(zip(paths, labels, strict=True)):
        if str(baseline) in (label, str(p)) or Path(baseline).resolve() == Path(p).resolve():
            return i
    raise ValueError(f"--baseline {baseline!r} is none of the runs in the report ({', '.join(labels)})")


def build_report(
    paths: Sequence[str | Path],
    *,
    labels: Sequence[str] | None = None,
    episodes: Sequence[str] | None = None,
    baseline: str | Path | None = None,
    filmstrips: int = FILMSTRIPS,
    max_frames: int = MAX_FRAMES,
    thumb_side: int = THUMB_SIDE,
    plotly_src: str | None = None,
) -> str:
    """The report's HTML. Raises StoreError for a path that is not a run directory (before any other work). A
    directory holding QA results only (`vlascore qa`, no run.json) is shown in the Multimodal QA section only.

    `labels` names the runs (e.g. a leaderboard's model names; default: run names, paths where they clash);
    `episodes` limits the episode browser to these ids (with all their filmstrips); `baseline` (a label or path)
    is compared with every other run. `plotly_src`: a URL (e.g. a relative path) to load plotly.js from instead of
    inlining it, for sites with many reports (write the file with `write_plotly_js`); the default inlines it.
    """
    if not paths:
        raise ValueError("no run directories given")
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"{len(labels)} labels for {len(paths)} runs")
    qa_only = [is_qa_only(p) for p in paths]  # QA results without a simulated run: only in the QA section
    loaded = [None if q else load_run(p) for p, q in zip(paths, qa_only, strict=True)]
    found = [Path(p).resolve().name if r is None else r.run.run_id for p, r in zip(paths, loaded, strict=True)]
    names = list(labels) if labels is not None else _labels(found, paths)
    runs = [r for r in loaded if r is not None]
    sim = [i for i, r in enumerate(loaded) if r is not None]
    sim_paths, sim_names = [paths[i] for i in sim], [names[i] for i in sim]
    base = _baseline_index(baseline, sim_paths, sim_names)
    taxonomy = load_taxonomy()
    try:
        for run in runs:  # read here: a SQLite connection serves only the thread that opened it
            _check_known(run, episodes)
        judgements = [read_judgement_files(r.path) for r in runs]
        records = []
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            # Scoring (bootstraps in numpy) and filmstrips (zlib) run in the pool while this thread reads steps.
            futures = [
                pool.submit(_run_view, i, run, name, jfs, taxonomy)
                for i, (run, name, jfs) in enumerate(zip(runs, sim_names, judgements, strict=True))
            ]
            tables = []
            for i, (run, jfs) in enumerate(zip(runs, judgements, strict=True)):
                tables.append({jf.label: trajectory_scores(run, jf) for jf in jfs})
                records.extend(
                    episode_rows(
                        run,
                        i,
                        ordered_episodes(run, episodes),
                        [(jf, tables[i][jf.label]) for jf in jfs],
                        max_frames=max_frames,
                        thumb_side=thumb_side,
                        pool=pool,
                        filmstrips=len(run.episodes) if episodes is not None else filmstrips,
                    )
                )
            views = [f.result() for f in futures]
        comparisons = [
            compare_runs(
                runs[a],
                runs[b],
                (sim_names[a], sim_names[b]),
                (judgements[a], judgements[b]),
                tables=(tables[a], tables[b]),
            )
            for a, b in _pairs(len(runs), base)
        ]
        adjust(comparisons)
    finally:
        for run in runs:
            run.store.close()
    view_of = dict(zip(sim, views, strict=True))  # input index -> its simulated run's view
    qa = qa_section(
        list(paths),
        names,
        [view_of[i].anchor if i in view_of else "" for i in range(len(paths))],
        [view_of[i].results if i in view_of else None for i in range(len(paths))],
    )
    links = [
        {"anchor": view_of[i].anchor if i in view_of else qa_anchor(i), "label": names[i]} for i in range(len(paths))
    ]
    return _render(views, records, comparisons, taxonomy, max_frames, episodes is not None, plotly_src, qa, links)


def _check_known(run: LoadedRun, episodes: Sequence[str] | None) -> None:
    """Load the run's episodes (in this thread) and check that the `episodes` asked for exist."""
    if episodes is None:
        run.episodes  # noqa: B018 - loads the table
        return
    unknown = sorted(set(episodes) - set(run.episodes["episode_id"]))
    if unknown:
        raise StoreError(
            f"run {run.path} has no episode {', '.join(unknown[:5])}; its ids look like "
            f"{run.episodes['episode_id'].iloc[0] if len(run.episodes) else 'TASK-SEED'}"
        )


def _run_view(i: int, run: LoadedRun, name: str, jfs: list[JudgementFile], taxonomy: Taxonomy) -> RunView:
    results = score_run(run, judgements=jfs)
    judges = [
        JudgeView(result=v, radar=radar_chart(f"{name} · {v.label}", v), anchor=f"run-{i + 1}-judge-{k + 1}")
        for k, v in enumerate(results.vla)
    ]
    return RunView(
        index=i,
        anchor=f"run-{i + 1}",
        label=name,
        path=str(run.path),
        record=run.run,
        results=results,
        judges=judges,
        failures=run_failures(run.episodes, run.run.tasks, jfs, taxonomy),
        adapter_config=run.run.adapter_config,
    )


def _render(
    views: list[RunView],
    records: list[dict[str, Any]],
    comparisons: list[PairedComparison],
    taxonomy: Taxonomy,
    max_frames: int,
    focused: bool,
    plotly_src: str | None,
    qa: QASection | None = None,
    run_links: list[dict[str, str]] | None = None,
) -> str:
    notes = []
    if len({(v.record.suite_fingerprint, v.record.protocol_version) for v in views}) > 1:
        notes.append(
            "These runs used different suite specs (fingerprint or protocol differ): their success "
            "rates are not directly comparable, and they are not compared pair by pair."
        )
    if focused:
        notes.append(
            "This report shows only the episodes asked for (--episode) in its episode browser; the "
            "scores and comparisons cover the whole runs."
        )
    series = [(f"{v.label} · {j.result.label}", j.result) for v in views for j in v.judges]
    qa_labels = [v.label for v in qa.runs if v.qa_only] if qa else []
    data = {
        "runs": [
            {
                "label": v.label,
                "anchor": v.anchor,
                "judges": [j.result.label for j in v.judges],
                "actions": labels_by_task(v.record),
            }
            for v in views
        ],
        "modes": {m: mode.label for m, mode in taxonomy.modes.items()},
        "episodes": records,
    }
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            title="vlascore report: " + ", ".join([v.label for v in views] + qa_labels),
            generated_at=utcnow(),
            version=__version__,
            runs=views,
            run_links=run_links if run_links is not None else [{"anchor": v.anchor, "label": v.label} for v in views],
            qa=qa,
            qa_only=[v for v in qa.runs if v.qa_only] if qa else [],
            notes=notes,
            success_chart=success_chart([v.label for v in views], [v.results for v in views]) if views else None,
            vla_chart=vla_chart(series),
            comparisons=comparisons,
            radars=[{"id": f"{j.anchor}-radar", "figure": j.radar} for v in views for j in v.judges],
            terminations=TERMINATIONS,
            taxonomy=taxonomy,
            data=data,
            plotly_js=None if plotly_src or not views else _plotly_js(),
            plotly_src=plotly_src,
            max_frames=max_frames,
        )
    )


def write_plotly_js(path: str | Path) -> Path:
    """Write the installed plotly.js bundle to `path` (for reports built with `plotly_src`)."""
    out = Path(path)
    atomic_write_text(out, str(_plotly_js()))
    return out


def write_report(paths: Sequence[str | Path], out: str | Path = "report.html", **options: Any) -> Path:
    """Build the report and write it atomically to `out`; returns the path written."""
    html = build_report(paths, **options)
    out = Path(out)
    atomic_write_text(out, html)  # utf-8: reasoning text may be any language
    return out
