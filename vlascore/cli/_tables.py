"""The rich tables the commands print: success and VLA Score tables, suite tasks, QA and the combined table; and
`score_or_fail` / `print_results`, which `run`, `judge` and `score` end with."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

from vlascore.cli._common import console, escape, fail

if TYPE_CHECKING:
    from vlascore.qa.records import QAResult
    from vlascore.qa.summary import CombinedRow
    from vlascore.scoring import RunResults


def _fmt_rate(rate: float | None, lo: float | None, hi: float | None) -> str:
    if rate is None:
        return "n/a"
    return f"{100 * rate:5.1f} ({100 * (lo or 0):.1f}-{100 * (hi or 0):.1f})"


def results_table(results: RunResults) -> Table:
    table = Table(
        title=f"{results.adapter} on {results.suite}",
        caption=f"run {results.run_id} | protocol {results.protocol_version} | fingerprint {results.suite_fingerprint}",
    )
    table.add_column("task")
    table.add_column("success % (95% CI)", justify="right", no_wrap=True)
    table.add_column("succ", justify="right")
    table.add_column("episodes", justify="right")
    table.add_column("errored", justify="right")
    table.add_column("steps", justify="right")
    for r in results.tasks:
        name = escape(r.task) + (f" [dim](mean of {len(r.groups)} {'x'.join(r.mean_over)})[/]" if r.groups else "")
        table.add_row(
            name,
            _fmt_rate(r.success_rate, r.ci_low, r.ci_high),
            str(r.successes),
            str(r.episodes),
            f"[red]{r.errored}[/]" if r.errored else "0",
            f"{r.mean_steps:.1f}" if r.mean_steps is not None else "-",
        )
    table.add_section()
    by_task = [r.task for r in results.tasks if r.success_rate is not None]
    n_cols = len(results.suite_mean_columns)
    label = (
        "suite mean"
        if results.suite_mean_columns in ([], by_task)
        else f"column {results.suite_mean_columns[0]}"
        if n_cols == 1
        else f"mean of {n_cols} columns"
    )
    table.add_row(
        f"[bold]{label}[/]",
        _fmt_rate(results.suite_mean, results.suite_ci_low, results.suite_ci_high),
        str(sum(r.successes for r in results.tasks)),
        str(results.episodes),
        f"[red]{results.errored}[/]" if results.errored else "0",
        "",
    )
    return table


def columns_table(results: RunResults) -> Table:
    """The suite's result columns and headline averages, each average with the columns it used."""
    table = Table(
        title=f"columns of {results.suite}",
        caption="a column is the unweighted mean of its tasks' rates; * counts in the suite mean",
    )
    table.add_column("column")
    table.add_column("key", style="dim")
    table.add_column("success %", justify="right")
    table.add_column("tasks")
    for c in results.columns:
        value = "n/a" if c.success_rate is None else f"{100 * c.success_rate:.1f}"
        missing = f" [yellow](missing {', '.join(c.missing)})[/]" if c.missing else ""
        table.add_row(
            escape(c.id) + (" *" if c.in_mean else ""), escape(c.key), value, escape(", ".join(c.tasks)) + missing
        )
    if results.averages:
        table.add_section()
    for a in results.averages:
        value = "n/a" if a.value is None else f"[bold]{100 * a.value:.1f}[/]"
        missing = f" [yellow](n/a: missing {', '.join(a.missing)})[/]" if a.missing else ""
        what = f"mean of {', '.join(a.columns)}" + missing
        table.add_row(f"[bold]{escape(a.id)}[/]", escape(a.title), value, what)
    return table


def _fmt_estimate(e: Any) -> str:
    if e is None:
        return "-"
    if e.value is None:
        return "n/a"
    # value, then the interval's low and high bounds on lines of their own (an 80-column terminal fits the table),
    # all at one precision: rounding then keeps lo <= value <= hi
    return f"{e.value:.1f}\n[dim]{e.ci_low:.1f}\n{e.ci_high:.1f}[/]"


def vla_table(v: Any) -> Table:
    """The paper's Table 4/5 layout: Sim., R, A, I, RA and the VLA Score (Eq. 8), each with its 95% interval."""
    who = f"{v.judge} {v.judge_version}" + (f", {v.judge_model}" if v.judge_model else "")
    table = Table(
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        title=f"VLA Score of {v.run_id} ({v.mode} policy) judged by {who}",
        caption=f"each cell: mean x 100, then its 95% interval (low, high): bootstrap stratified by task, "
        f"{v.n_boot} resamples (Sim.: Wilson); "
        + (
            "R and RA are not asked of specialists (Eq. 8: A*I*B)"
            if v.mode == "specialist"
            else "Eq. 8: ((R+A*I)/2)*RA*B"
        ),
    )
    table.add_column("task", no_wrap=True)
    for col in ("Sim.", "R", "A", "I", "RA", "VLA Score"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("n\n(failed)", justify="right")

    def row(name: str, r: Any) -> list[str]:
        failed = f"[red]({r.failed})[/]" if r.failed else "(0)"
        columns = (r.sim, r.reasoning, r.action, r.intention, r.alignment)
        return [name, *map(_fmt_estimate, columns), f"[bold]{_fmt_estimate(r.vla_score)}[/]", f"{r.judged}\n{failed}"]

    for t in v.tasks:
        table.add_row(*row(escape(t.task), t), end_section=True)
    table.add_section()
    table.add_row(*row("[bold]all[/]", v))
    return table


def print_results(results: RunResults, path: Path) -> None:
    console.print(results_table(results))
    if results.declares_columns:
        console.print(columns_table(results))
    for v in results.vla:
        console.print(vla_table(v))
    notes = []
    if results.errored:
        how = "counted as failures" if results.errored_as_failure else "excluded from the rates"
        notes.append(f"{results.errored} errored episode(s) {how}; see `failure_reason` in the episodes table")
    if results.missing:
        notes.append(
            f"{results.missing} planned episode(s) not recorded yet: continue with `vlascore run ... --resume`"
        )
    for v in results.vla:
        if v.failed:
            notes.append(
                f"{v.failed} failed judgement(s) of {v.label} are excluded from its means (see their "
                f"failure_reason in {path / 'judgements' / v.label}.json; re-run `vlascore judge` to retry)"
            )
        if v.unjudged:
            notes.append(f"{v.unjudged} episode(s) have no {v.label} judgement yet: run `vlascore judge` again")
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    console.print(f"results written to {escape(path / 'results.json')}")


def score_or_fail(run_dir: Path, errored_as_failure: bool = False) -> RunResults:
    from vlascore.scoring import score_and_write
    from vlascore.store import StoreError

    try:
        return score_and_write(run_dir, errored_as_failure)
    except StoreError as exc:
        raise fail(str(exc)) from None


def _task_settings(t: Any) -> dict[str, str]:
    size = f"{t.resolution[0]}x{t.resolution[1]}" if t.resolution else "native size"
    freq = (
        f"{t.control_freq:g} Hz control / {t.sim_freq} Hz physics"
        if t.control_freq and t.sim_freq
        else "simulator's frequencies"
    )
    return {
        "control": t.control_mode,
        "camera": f"{t.camera} {size}",
        "frequencies": freq,
        "success": t.success_mode,
        "max steps": str(t.max_steps),
    }


def suite_tasks_table(s: Any) -> Table:
    """A suite's tasks; settings every task shares go in the caption instead of a column of repeats."""
    settings = [_task_settings(t) for t in s.tasks]
    shared = [k for k in settings[0] if len({row[k] for row in settings}) == 1]
    caption = " | ".join(f"{k}: {settings[0][k]}" for k in shared)
    table = Table(
        title=f"{s.name} (protocol {s.protocol_version}, fingerprint {s.fingerprint}, backend {s.backend})",
        caption=caption,
    )
    own = [k for k in settings[0] if k not in shared]
    for col in ("task", "env", "category", *own, "episodes", "instruction"):
        table.add_column(col, no_wrap=col == "task")
    for t, row in zip(s.tasks, settings, strict=True):
        envs = sorted({t.cell(i).env_id for i in t.seeds}) if t.grid else [t.env_id]
        env = envs[0] if len(envs) == 1 else f"{t.env_id} (+{len(envs) - 1} more)"
        episodes = f"{len(t.seeds)} (grid)" if t.grid else str(len(t.seeds))
        table.add_row(t.id, env, t.category, *(row[k] for k in own), episodes, t.instruction)
    return table


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def qa_table(results: dict[str, QAResult], title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, caption="score in percent; OCRBench: correct per 1000 questions")
    for col, justify in (
        ("benchmark", "left"),
        ("score", "right"),
        ("MM scale", "right"),
        ("questions", "right"),
        ("status", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for name, r in results.items():
        status = "[green]ok[/]" if r.status == "ok" else f"[red]{r.status}[/]"
        subset = f" [yellow](first {r.limit})[/]" if r.subset else ""
        table.add_row(escape(f"{name}: {r.title}"), _fmt(r.score), _fmt(r.mm_value), f"{r.samples}{subset}", status)
    return table


def data_notes(results: dict[str, QAResult]) -> list[str]:
    return [f"{name} data: {r.data.describe()}" for name, r in results.items()]


def combined_table(rows: list[CombinedRow]) -> tuple[Table, list[str]]:
    """The combined table, one column per run (so it fits a terminal), and the notes that state each summary's
    columns."""
    from vlascore.qa.benchmarks import load_benchmarks

    present = {b for r in rows for b in r.qa}
    order = list(load_benchmarks().benchmarks)
    benches = [b for b in order if b in present] + sorted(present - set(order))
    names = list(dict.fromkeys(s for r in rows for s in r.summaries))
    table = Table(
        title="Combined: simulation, VLA Score, multimodal QA",
        box=box.SIMPLE_HEAD,
        caption="percent; OCRBench out of 1000 (MM: / 10); * partial, ~ subset (see notes)",
    )
    table.add_column("")
    for r in rows:
        table.add_column(escape(r.label), justify="right")
    table.add_row("Sim (success %)", *[_fmt(r.sim) for r in rows])
    table.add_row("VLA Score", *[_fmt(r.vla) for r in rows], end_section=True)
    for b in benches:
        table.add_row(
            b,
            *[(_fmt(r.qa.get(b)) + ("~" if b in r.qa_subset else "")) if b in r.qa else "" for r in rows],
            end_section=b == benches[-1],
        )
    for n in names:
        cells = []
        for r in rows:
            s = r.summaries.get(n)
            cells.append("-" if s is None or s.value is None else _fmt(s.value) + ("*" if s.partial else ""))
        table.add_row(f"[bold]{n}[/]", *cells)
    notes: list[str] = []
    for r in rows:
        notes += [f"{r.label}: {s.describe()}" for s in r.summaries.values() if s.value is not None]
        if r.qa_subset:
            notes.append(f"{r.label}: ~ run on a subset (--limit): {', '.join(r.qa_subset)}")
    for name in names:
        sets = {tuple(s.columns) for r in rows if (s := r.summaries.get(name)) is not None and s.value is not None}
        if len(sets) > 1:
            notes.append(f"{name} averages different columns in different runs: those values are not comparable")
    return table, notes


def print_combined(rows: list[CombinedRow]) -> None:

    table, notes = combined_table(rows)
    console.print(table)
    for note in notes:
        console.print(f"[dim]{escape(note)}[/]", highlight=False)
