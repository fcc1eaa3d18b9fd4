"""Self-contained HTML reports of runs: `vlascore report RUN [RUN...] -o report.html`."""

from __future__ import annotations

from vlascore.report.build import build_report, write_plotly_js, write_report

__all__ = ["build_report", "write_plotly_js", "write_report"]
