"""`vlascore plan`: how many episodes a comparison or an interval needs, before (or after) running them."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from vlascore.cli._common import JsonOpt, console, escape, fail, split_ids

_HELP = """How many episodes to run: the shared episodes (same tasks and seeds) two policies need for vlascore's
paired tests to detect a difference, and how wide a success rate's 95% interval is for N episodes.

**From two runs** (RUN_A RUN_B, already scored on shared seeds): for the success rate and each VLA Score both
runs were judged with, the difference seen, its p-value, and the pairs the test needs to detect a difference of
that size with the given power: whether the runs had enough, and how many episodes per task the next run needs.

**From assumed rates** (--rates A,B): the pairs McNemar's exact test needs to tell two success rates apart,
taking the policies' outcomes as independent (policies that succeed on the same easy scenes need fewer).

**Interval width** (--rate R with --episodes N,N,... and/or --width W): the Wilson 95% interval the score tables
show, for N episodes at rate R; the episodes that make it at most W wide.

Examples:

  vlascore plan --rates 0.60,0.75                    # pairs to tell 60% from 75% (80% power, alpha 0.05)

  vlascore plan --rates 0.60,0.75 -s tabletop        # ... and episodes per task over tabletop's 5 tasks

  vlascore plan --rate 0.7 --episodes 20,50,100      # how wide the interval is

  vlascore plan --rate 0.5 --width 0.1               # episodes for an interval at most 10 points wide

  vlascore plan runs/scripted runs/random            # did two runs have enough episodes? how many next time?
"""


def register(app: typer.Typer) -> None:
    app.command("plan", help=_HELP)(plan_cmd)


def _rates(text: str, what: str, count: int) -> list[float]:
    try:
        values = [float(v) for v in split_ids(text) or []]
    except ValueError:
        raise fail(f"{what} expects {count} comma-separated numbers in 0-1 (e.g. 0.6,0.75), got {text!r}") from None
    if len(values) != count or not all(0 <= v <= 1 for v in values):
        raise fail(f"{what} expects {count} comma-separated success rates in 0-1 (e.g. 0.6,0.75), got {text!r}")
    return values


def _per_task(pairs: int | None, tasks: int | None) -> str:
    if pairs is None:
        return "-"
    return f"{pairs:,}" + (f" ({math.ceil(pairs / tasks):,} per task x {tasks})" if tasks else "")


def plan_cmd(
    runs: Annotated[
        list[Path] | None,
        typer.Argument(metavar="[RUN_A RUN_B]", help="Two run directories of the same suite to plan from."),
    ] = None,
    rates: Annotated[str | None, typer.Option("--rates", help="Two assumed success rates A,B in 0-1.")] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", min=0, max=1, help="Assumed success rate (intervals).")
    ] = None,
    episodes: Annotated[
        str | None, typer.Option("--episodes", "-n", help="Comma-separated episode counts to show intervals for.")
    ] = None,
    width: Annotated[
        float | None, typer.Option("--width", min=0.001, max=0.999, help="Target interval width (0-1).")
    ] = None,
    suite: Annotated[
        str | None, typer.Option("--suite", "-s", help="Express pairs per task of this suite (name or YAML path).")
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", min=1e-6, max=0.5, help="Significance level.")] = 0.05,
    power: Annotated[float, typer.Option("--power", min=0.5, max=0.999, help="Power to detect the difference.")] = 0.8,
    as_json: JsonOpt = False,
) -> None:
    from vlascore.scoring import power as pw

    if not runs and rates is None and rate is None:
        raise fail("give two runs, --rates A,B, or --rate R with --episodes/--width; see `vlascore plan --help`")
    if runs and len(runs) != 2:
        raise fail(f"plan compares exactly two runs, got {len(runs)}")
    if (episodes or width) and rate is None:
        raise fail("--episodes and --width need --rate (the success rate to assume)")
    tasks = None
    if suite is not None:
        from vlascore.suites import SuiteError, load_suite

        try:
            tasks = len(load_suite(suite).tasks)
        except SuiteError as exc:
            raise fail(str(exc)) from None
    out: dict[str, Any] = {"alpha": alpha, "power": power}
    if rates is not None:
        a, b = _rates(rates, "--rates", 2)
        p10, p01 = pw.independent_discordance(a, b)
        pairs = pw.mcnemar_sample_size(p10, p01, alpha, power)
        out["rates"] = {"a": a, "b": b, "p10": p10, "p01": p01, "pairs": pairs, "tasks": tasks}
        if not as_json:
            if pairs is None:
                what = "the rates are equal" if a == b else f"more than {pw.MAX_EPISODES:,} pairs"
                console.print(f"success {100 * a:.1f}% vs {100 * b:.1f}%: cannot be planned ({what})")
            else:
                console.print(
                    f"success {100 * a:.1f}% vs {100 * b:.1f}%: {_per_task(pairs, tasks)} shared episodes for "
                    f"McNemar's exact test to detect it with {100 * power:.0f}% power at alpha {alpha:g} (outcomes "
                    "taken as independent; the same seeds for both policies)",
                    highlight=False,
                    soft_wrap=True,
                )
    if rate is not None:
        out["intervals"] = _intervals(rate, episodes, width, as_json)
    if runs:
        out["runs"] = _from_runs(runs, tasks, alpha, power, as_json)
    if as_json:
        print(json.dumps(out, indent=2))


def _intervals(rate: float, episodes: str | None, width: float | None, as_json: bool) -> dict[str, Any]:
    from vlascore.scoring import power as pw
    from vlascore.stats import wilson_interval

    counts = [int(n) for n in split_ids(episodes) or []] if episodes else []
    if any(n < 1 for n in counts):
        raise fail(f"--episodes expects positive counts, got {episodes!r}")
    if not counts and width is None:
        counts = [10, 20, 50, 100, 200, 500]
    rows = [
        {"episodes": n, "low": lo, "high": hi, "width": hi - lo}
        for n in counts
        for lo, hi in [wilson_interval(rate * n, n)]
    ]
    needed = pw.episodes_for_width(rate, width) if width is not None else None
    if not as_json:
        if rows:
            table = Table(title=f"Wilson 95% interval of a {100 * rate:.1f}% success rate")
            for col in ("episodes", "interval", "width (points)"):
                table.add_column(col, justify="right")
            for r in rows:
                table.add_row(
                    str(r["episodes"]), f"{100 * r['low']:.1f}-{100 * r['high']:.1f}", f"{100 * r['width']:.1f}"
                )
            console.print(table)
        if width is not None:
            what = f"{needed:,} episodes" if needed else f"more than {pw.MAX_EPISODES:,} episodes"
            console.print(f"an interval at most {100 * width:.1f} points wide at {100 * rate:.1f}%: {what}")
    return {"rate": rate, "rows": rows, "width": width, "episodes_for_width": needed}


@dataclasses.dataclass(frozen=True)
class PlanRow:
    metric: str
    task: str | None
    pairs: int
    diff: float
    p_value: float
    needed: int | None

    @property
    def enough(self) -> bool | None:
        return None if self.needed is None else self.pairs >= self.needed


def _from_runs(runs: list[Path], tasks: int | None, alpha: float, power: float, as_json: bool) -> list[dict[str, Any]]:
    from vlascore.scoring import compare_runs, read_judgement_files
    from vlascore.scoring import power as pw
    from vlascore.store import StoreError, load_run

    try:
        a, b = load_run(runs[0]), load_run(runs[1])
        cmp = compare_runs(
            a, b, (str(runs[0]), str(runs[1])), (read_judgement_files(runs[0]), read_judgement_files(runs[1]))
        )
    except StoreError as exc:
        raise fail(str(exc)) from None
    if not cmp.comparable or not cmp.overall:
        raise fail(f"nothing to plan from: {'; '.join(cmp.notes) or 'no shared episodes'}")
    tasks = tasks or len(a.run.tasks)
    rows = []
    for d in cmp.overall + cmp.tasks:
        if d.test == "mcnemar-exact":
            needed = pw.mcnemar_sample_size((d.a_only or 0) / d.n, (d.b_only or 0) / d.n, alpha, power)
        else:
            needed = pw.paired_sample_size(d.diff / 100, (d.sd or 0) / 100, alpha, power) if d.n > 1 else None
        rows.append(PlanRow(d.metric, d.task, d.n, d.diff, d.p_value, needed))
    if not as_json:
        table = Table(
            title=f"{escape(cmp.a)} vs {escape(cmp.b)}: {cmp.shared} shared episode(s)",
            caption=f"needed: pairs to detect a difference of the size seen with {100 * power:.0f}% power at "
            f"alpha {alpha:g}",
        )
        for col in ("metric", "task", "pairs", "difference", "p", "needed", "enough?"):
            table.add_column(col, justify="left" if col in ("metric", "task") else "right")
        for r in rows:
            enough = "-" if r.enough is None else "[green]yes[/]" if r.enough else "[yellow]no[/]"
            table.add_row(
                escape(r.metric),
                escape(r.task or "all"),
                str(r.pairs),
                f"{r.diff:+.1f}",
                f"{r.p_value:.3g}",
                "-" if r.needed is None else f"{r.needed:,}",
                enough,
            )
        console.print(table)
        for r in rows[: len(cmp.overall)]:
            if r.enough is False:
                console.print(
                    f"{escape(r.metric)}: run {_per_task(r.needed, tasks)} shared episodes to detect a "
                    "difference of this size",
                    highlight=False,
                    soft_wrap=True,
                )
        for note in cmp.notes:
            console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    return [dataclasses.asdict(r) | {"enough": r.enough} for r in rows]
