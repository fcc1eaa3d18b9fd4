"""Plotly figures of a report as plain JSON-able dicts (data + layout), drawn client-side by the embedded plotly.js.

Names are HTML-escaped because plotly renders trace and axis text as (sanitised) pseudo-HTML; it decodes the
entities again for display.
"""

from __future__ import annotations

import html
from typing import Any

from vlascore.scoring import Estimate, RunResults, VlaScoreResult

MEAN_LABEL = "suite mean"
ALL_LABEL = "all tasks"
RADAR_AXES = ("R", "A", "I", "RA", "Sim.")
Figure = dict[str, Any]


def _pct(x: float) -> float:
    return round(100 * x, 2)


def _bar(value: float | None, lo: float | None, hi: float | None, what: str) -> tuple[Any, ...]:
    """(y, error below, error above, hover text) of one bar (all in %); an empty bar when there is no value."""
    if value is None or lo is None or hi is None:
        return (None, 0.0, 0.0, "no data")
    return (round(value, 2), round(value - lo, 2), round(hi - value, 2), f"{what}, 95% CI {lo:.1f}-{hi:.1f}")


def _trace(name: str, xs: list[str], bars: list[tuple[Any, ...]]) -> dict[str, Any]:
    return {
        "type": "bar",
        "name": html.escape(name),
        "x": [html.escape(x) for x in xs],
        "y": [b[0] for b in bars],
        "error_y": {
            "type": "data",
            "symmetric": False,
            "array": [b[2] for b in bars],
            "arrayminus": [b[1] for b in bars],
            "thickness": 1.2,
            "width": 4,
        },
        "customdata": [html.escape(b[3]) for b in bars],
        "hovertemplate": "%{x}: %{y:.1f}<br>%{customdata}<extra>%{fullData.name}</extra>",
    }


def _bar_layout(title: str, range_max: float = 105) -> dict[str, Any]:
    return {
        "barmode": "group",
        "yaxis": {"title": {"text": title}, "range": [0, range_max]},
        "xaxis": {"type": "category"},
        "legend": {"orientation": "h", "y": -0.2},
        "margin": {"t": 30, "r": 20, "b": 60, "l": 60},
        "height": 400,
    }


def success_chart(labels: list[str], results: list[RunResults]) -> Figure:
    """Per-task success rate of every run, with Wilson 95% error bars, and the suite mean."""
    tasks: list[str] = list(dict.fromkeys(t.task for r in results for t in r.tasks))
    data = []
    for label, res in zip(labels, results, strict=True):
        by_task = {t.task: t for t in res.tasks}
        bars = []
        for task in tasks:
            t = by_task.get(task)
            if t is None or t.success_rate is None or t.ci_low is None or t.ci_high is None:
                bars.append(_bar(None, None, None, ""))
                continue
            n = t.episodes if res.errored_as_failure else t.completed
            bars.append(_bar(_pct(t.success_rate), _pct(t.ci_low), _pct(t.ci_high), f"{t.successes}/{n} episodes"))
        if res.suite_mean is None or res.suite_ci_low is None or res.suite_ci_high is None:
            bars.append(_bar(None, None, None, ""))
        else:
            bars.append(
                _bar(
                    _pct(res.suite_mean),
                    _pct(res.suite_ci_low),
                    _pct(res.suite_ci_high),
                    f"mean of {len(res.tasks)} task(s)",
                )
            )
        data.append(_trace(label, [*tasks, MEAN_LABEL], bars))
    layout = _bar_layout("success rate (%)")
    layout["yaxis"]["ticksuffix"] = "%"
    return {"data": data, "layout": layout}


def _estimate_bar(e: Estimate | None, what: str) -> tuple[Any, ...]:
    if e is None:
        return _bar(None, None, None, "")
    return _bar(e.value, e.ci_low, e.ci_high, what)


def vla_chart(series: list[tuple[str, VlaScoreResult]]) -> Figure | None:
    """Per-task VLA Score of every (name, result), with bootstrap 95% error bars; None when nothing was judged."""
    if not series:
        return None
    tasks: list[str] = list(dict.fromkeys(t.task for _, v in series for t in v.tasks))
    data = []
    for name, v in series:
        by_task = {t.task: t for t in v.tasks}
        bars = [
            _estimate_bar(by_task[t].vla_score, f"{by_task[t].judged} judged")
            if t in by_task
            else _bar(None, None, None, "")
            for t in tasks
        ]
        bars.append(_estimate_bar(v.vla_score, f"{v.judged} judged"))
        data.append(_trace(name, [*tasks, ALL_LABEL], bars))
    return {"data": data, "layout": _bar_layout("VLA Score (Eq. 8, x 100)")}


def radar_chart(name: str, v: VlaScoreResult) -> Figure:
    """R, A, I, RA and Sim. of one run under one judge on a 0-100 radar; R and RA are gaps for specialists."""
    values = [v.reasoning, v.action, v.intention, v.alignment, v.sim]
    r = [None if e is None or e.value is None else round(e.value, 2) for e in values]
    axes = list(RADAR_AXES)
    trace = {
        "type": "scatterpolar",
        "name": html.escape(name),
        "r": [*r, r[0]],
        "theta": [*axes, axes[0]],
        "fill": "toself",
        "connectgaps": False,
        "hovertemplate": "%{theta}: %{r:.1f}<extra></extra>",
    }
    layout = {
        "polar": {"radialaxis": {"range": [0, 100], "tickvals": [25, 50, 75, 100]}},
        "showlegend": False,
        "margin": {"t": 30, "r": 40, "b": 30, "l": 40},
        "height": 300,
    }
    return {"data": [trace], "layout": layout}
