"""`vlascore score` (tables and results.json) and `vlascore report` (the HTML report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlascore.cli._common import JsonOpt, RunsArg, console, escape, fail
from vlascore.cli._tables import data_notes, print_combined, print_results, qa_table, score_or_fail


def register(app: typer.Typer) -> None:
    app.command("score")(score_cmd)
    app.command("report")(report_cmd)


def score_cmd(
    run_dirs: RunsArg,
    errored_as_failure: Annotated[
        bool, typer.Option("--errored-as-failure", help="Count errored episodes as failures instead of excluding them.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Per-task success rate with Wilson 95% intervals, the suite mean, episode and errored counts, and the VLA
    Score of each judgement; for runs with QA results (`vlascore qa`), the benchmark scores; and with QA results or
    several runs, the combined table: Sim, VLA Score, each QA benchmark, GR / WR / MM / Average, each summary stated
    with the columns it averaged.

    Writes RUN/results.json for simulated runs. With --json: one run without QA results prints its results.json;
    otherwise {"runs": [{"run", "results", "qa", "combined"}]}.

    Examples:

      vlascore score runs/scripted

      vlascore score runs/openvla runs/qwen-vl   # side by side
    """
    import json

    from vlascore.qa.records import read_results
    from vlascore.qa.summary import combined_row
    from vlascore.store import RUN_FILE, StoreError

    rows, payload, protocols = [], [], {}
    for run_dir in run_dirs:
        try:
            qa = read_results(run_dir)
        except StoreError as exc:
            raise fail(str(exc)) from None
        results = score_or_fail(run_dir, errored_as_failure) if (run_dir / RUN_FILE).is_file() or not qa else None
        row = combined_row(run_dir, results=results, qa=qa)
        rows.append(row)
        if results is not None:
            protocols[str(run_dir)] = f"{results.suite} (fingerprint {results.suite_fingerprint})"
        if as_json:
            payload.append(
                {
                    "run": str(run_dir),
                    "results": results.model_dump(mode="json") if results else None,
                    "qa": {k: r.model_dump(mode="json") for k, r in qa.items()},
                    "combined": row.model_dump(mode="json"),
                }
            )
            continue
        if results is not None:
            print_results(results, run_dir)
        if qa:
            console.print(qa_table(qa, f"multimodal QA of {escape(str(run_dir))}"))
            for note in data_notes(qa):
                console.print(f"[dim]{escape(note)}[/]", highlight=False, soft_wrap=True)
    if as_json:
        only = payload[0]
        print(
            json.dumps(only["results"], indent=2)
            if len(payload) == 1 and not only["qa"]
            else json.dumps({"runs": payload}, indent=2)
        )
    elif len(rows) > 1 or any(r.qa for r in rows):
        print_combined(rows)
    if len(set(protocols.values())) > 1 and not as_json:  # side by side, but not the same episodes
        listing = "; ".join(f"{run}: {p}" for run, p in protocols.items())
        console.print(
            f"[yellow]note:[/] these runs used different suites or protocols, so their simulated numbers "
            f"are not comparable: {escape(listing)}",
            highlight=False,
            soft_wrap=True,
        )


def report_cmd(
    run_dirs: RunsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path("report.html"),
    baseline: Annotated[
        str | None, typer.Option("--baseline", "-b", help="Compare every run with this one (a run path or name).")
    ] = None,
    episode: Annotated[
        list[str] | None,
        typer.Option("--episode", "-e", help="Show only this episode in the browser, with its filmstrip (repeatable)."),
    ] = None,
    filmstrips: Annotated[
        int, typer.Option("--filmstrips", min=0, help="Episodes per run with a filmstrip (spread over tasks).")
    ] = 300,
    frames: Annotated[int, typer.Option("--frames", min=2, help="Frames per filmstrip (first and last included).")] = 8,
) -> None:
    """One self-contained HTML report (works offline) of one or more runs: a summary table (Sim., R, A, I, RA and
    the VLA Score with 95% intervals), per-task charts and a radar per model, paired comparisons on shared seeds with
    significance tests, a failure breakdown, and an episode browser with a drill-down per episode (filmstrip,
    reasoning timeline, action plot, every judge's scores and rationale).

    Judge the runs first (`vlascore judge RUN`) for the VLA Score columns; unjudged runs show success only.

    Examples:

      vlascore report runs/scripted -o runs/scripted/report.html

      vlascore report runs/scripted runs/random -o compare.html

      vlascore report runs/a runs/b runs/c --baseline runs/a -o vs-a.html

      vlascore report runs/scripted -e PickCube-3 -e PickCube-7 -o two-episodes.html
    """
    from vlascore.judging import JudgeError
    from vlascore.report import write_report
    from vlascore.store import StoreError

    try:
        path = write_report(
            run_dirs, out, baseline=baseline, episodes=episode, filmstrips=filmstrips, max_frames=frames
        )
    except (StoreError, JudgeError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc}") from None
    size = path.stat().st_size / 1e6
    console.print(f"report written to {escape(str(path))} ({size:.1f} MB)", highlight=False, soft_wrap=True)
