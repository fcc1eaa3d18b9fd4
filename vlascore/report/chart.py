"""The success-rate chart: a plotly grouped bar per task (one trace per run) with Wilson 95% error bars."""

from __future__ import annotations

import html
from typing import Any

from vlascore.scoring import RunResults

MEAN_LABEL = "suite mean"


def _pct(x: float) -> float:
    return round(100 * x, 2)


def _bar(rate: float | None, lo: float | None, hi: float | None, what: str) -> tuple[Any, ...]:
    """(y %, error below %, error above %, hover text) of one bar; an empty bar when there is no rate."""
    if rate is None or lo is None or hi is None:
        return (None, 0.0, 0.0, "no completed episodes")
    return (_pct(rate), _pct(rate - lo), _pct(hi - rate), f"{what}, 95% CI {100 * lo:.1f}-{100 * hi:.1f}%")


def success_chart(labels: list[str], results: list[RunResults]) -> dict[str, Any]:
    """Plotly figure (data + layout) as plain JSON-able dicts, rendered client-side by the embedded plotly.js.

    Names are HTML-escaped because plotly renders trace and axis text as (sanitised) pseudo-HTML; it decodes
    the entities again for display.
    """
    tasks: list[str] = list(dict.fromkeys(t.task for r in results for t in r.tasks))
    data = []
    for label, res in zip(labels, results, strict=True):
        by_task = {t.task: t for t in res.tasks}
        bars = []
        for task in tasks:
            t = by_task.get(task)
            if t is None:
                bars.append(_bar(None, None, None, ""))
                continue
            n = t.episodes if res.errored_as_failure else t.completed
            bars.append(_bar(t.success_rate, t.ci_low, t.ci_high, f"{t.successes}/{n} episodes"))
        mean = f"mean of {len(res.tasks)} task(s)"
        bars.append(_bar(res.suite_mean, res.suite_ci_low, res.suite_ci_high, mean))
        data.append({
            "type": "bar",
            "name": html.escape(label),
            "x": [html.escape(t) for t in tasks] + [MEAN_LABEL],
            "y": [b[0] for b in bars],
            "error_y": {"type": "data", "symmetric": False, "array": [b[2] for b in bars],
                        "arrayminus": [b[1] for b in bars], "thickness": 1.2, "width": 4},
            "customdata": [html.escape(b[3]) for b in bars],
            "hovertemplate": "%{x}: %{y:.1f}%<br>%{customdata}<extra>%{fullData.name}</extra>",
        })  # fmt: skip
    layout = {
        "barmode": "group",
        "yaxis": {"title": {"text": "success rate (%)"}, "range": [0, 105], "ticksuffix": "%"},
        "xaxis": {"title": {"text": "task"}, "type": "category"},
        "legend": {"orientation": "h", "y": -0.2},
        "margin": {"t": 30, "r": 20, "b": 60, "l": 60},
        "height": 420,
    }
    return {"data": data, "layout": layout}
