"""`vlascore export`: a run's records to Parquet, JSON Lines, mp4, a LeRobot dataset or an MLflow run."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from vlascore.cli._common import RunArg, console, err, escape, fail

_HELP = """Export a run's records to the tools people use.

Formats (--to, repeatable):

  parquet, jsonl   episodes, steps and judgements tables (one row per episode / step / verdict; columns in
                   docs/export.md) and run.json; read them with pandas, DuckDB, Polars

  mp4              one video per episode, with a WebVTT caption file (instruction, stated intention and reasoning)
                   and a JSON sidecar mapping each video frame to its control step

  lerobot          a LeRobot-format dataset of the rollouts (frames, states, actions, instruction per episode)

  mlflow           an MLflow run: parameters, success and VLA Score metrics, results and judgement files as
                   artifacts (--tracking-uri, or $MLFLOW_TRACKING_URI; sqlite:///mlflow.db works offline)

Needs the `export` extra (pyarrow, av) and, for mlflow, the `track` extra. Judge and score the run first for the
judgement columns and VLA Score metrics.

Examples:

  vlascore export runs/scripted --to parquet -o exports/scripted

  vlascore export runs/scripted --to jsonl --to mp4 -o exports/scripted

  vlascore export runs/scripted --to mp4 -e PickCube-3 -o videos/

  vlascore export runs/scripted --to mlflow --tracking-uri sqlite:///mlflow.db --experiment vla-evals
"""


def register(app: typer.Typer) -> None:
    app.command("export", help=_HELP)(export_cmd)


def export_cmd(
    run_dir: RunArg,
    to: Annotated[list[str], typer.Option("--to", help="Format: parquet, jsonl, mp4, lerobot, mlflow (repeatable).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder [default: RUN/export].")] = None,
    episode: Annotated[
        list[str] | None, typer.Option("--episode", "-e", help="Export only this episode id (repeatable).")
    ] = None,
    fps: Annotated[
        float | None, typer.Option("--fps", min=0.1, help="mp4 frame rate [default: the task's control frequency].")
    ] = None,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="mlflow: the tracking URI.")] = None,
    experiment: Annotated[str, typer.Option("--experiment", help="mlflow: the experiment name.")] = "vlascore",
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Print each file as it is done.")] = True,
) -> None:
    from vlascore.export import EXPORTERS, ExportError
    from vlascore.registry import UnknownPluginError
    from vlascore.rundata import RunData
    from vlascore.store import StoreError

    try:
        run = RunData(run_dir)
        exporters = [EXPORTERS.get(name) for name in dict.fromkeys(to)]
    except (StoreError, UnknownPluginError) as exc:
        raise fail(str(exc)) from None
    if episode:
        unknown = sorted(set(episode) - set(run.episodes["episode_id"]))
        if unknown:
            raise fail(f"no episode(s) {', '.join(unknown)} in {run_dir}")
    out = out or run_dir / "export"
    if out.exists() and not out.is_dir():
        raise fail(f"--out {out} is a file: give a folder")
    options = {"fps": fps, "tracking_uri": tracking_uri, "experiment": experiment}
    started, last = time.monotonic(), [0.0]

    def say(done: int, total: int, what: str) -> None:
        now = time.monotonic()  # on a terminal every step; in a log (not a tty) at most every 5 s, and the last
        if progress and (sys.stderr.isatty() or done == total or now - last[0] >= 5):
            last[0] = now
            err.print(f"[dim]{done}/{total} {escape(what)} ({now - started:.0f} s)[/]", highlight=False, soft_wrap=True)

    written: list[Path] = []
    for cls in exporters:
        try:
            written += cls(**options).export(run, out / cls.name, episode, say)
        except (ExportError, StoreError, OSError) as exc:
            raise fail(f"{cls.name} export failed: {exc}", 1) from None
        console.print(f"[green]{cls.name}[/]: {escape(str(out / cls.name))}", highlight=False, soft_wrap=True)
    console.print(f"{len(written)} file(s) written in {time.monotonic() - started:.1f} s", highlight=False)
