"""`vlascore simreal`: SimplerEnv's sim-to-real metrics (MMRV, Pearson r) of simulated success rates against the
bundled real-robot ones (vlascore/scoring/simreal.py, docs/simreal.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from vlascore.cli._common import JsonOpt, console, escape, fail

if TYPE_CHECKING:
    from vlascore.scoring.simreal import Protocol, RealSuccessData, SimRealResult

_HELP = """Check a simulated evaluation against the real robot the way SimplerEnv does (Li et al., CoRL 2024,
arXiv:2405.05941): for each task, over the policies that have both a simulated and a real success rate,

**MMRV** (mean maximum rank violation, 0-1, lower is better: how badly the simulator mis-ranks policies, weighted
by their real gap) and **Pearson r** (higher is better).

Each POLICY=SIM names a policy with real-robot rates (SimplerEnv's rt-2-x, rt-1-converged, rt-1-15pct, rt-1-x,
rt-1-begin, octo-base, octo-small; or yours, from --real) and its simulated rates: a vlascore run directory (its
result columns, e.g. google_vm/pick_coke_can) or a YAML/JSON file of {column key: rate in 0-1}. --reference adds
SimplerEnv's own simulated rates of its policies (given pairs replace them); alone it reproduces the paper.

Examples:

  vlascore simreal --list          # bundled real rates, tasks, sources

  vlascore simreal --reference     # SimplerEnv's numbers: the paper's values

  vlascore simreal rt-1-converged=runs/rt1c rt-1-x=runs/rt1x octo-base=runs/octo

  vlascore simreal -p va rt-1-x=runs/rt1x-va octo-base=runs/octo-va

  vlascore simreal rt-1-x=rt1x.yaml octo-base=octo.yaml   # {column key: rate}

  vlascore simreal --reference mine=runs/mine --real real.yaml --json > simreal.json

A --real file maps each policy to {task id or column key: real success rate}, e.g.
`mine: {pick_coke_can: 0.6, move_near: 0.4}`; it may also replace bundled rates.
"""


def register(app: typer.Typer) -> None:
    app.command("simreal")(simreal_cmd)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pair_fmt(mmrv: float | None, r: float | None) -> str:
    return "-" if mmrv is None or r is None else f"{mmrv:.3f} / {r:.3f}"


def results_table(result: SimRealResult) -> Table:
    """One section per task: its policies' sim and real rates, MMRV and r (and the paper's, where it prints one);
    then the summaries."""
    from vlascore.scoring.simreal import PROTOCOL_TITLES

    table = Table(
        title=f"Sim-to-real agreement, {PROTOCOL_TITLES[result.protocol]}",
        box=box.SIMPLE_HEAD,
        caption="MMRV: 0-1, lower is better; Pearson r: higher is better; SimplerEnv: MMRV / r of "
        "SimplerEnv's own sim rates for the same policies; paper: MMRV / r as its figures print them "
        "(for its policies)",
    )
    # SimplerEnv's own sim rates for the same policies: the baseline, unless they are what is being compared
    baseline = any(t.simpler and t.simpler.model_dump() != {"mmrv": t.mmrv, "pearson": t.pearson} for t in result.tasks)
    cols = ["task", "policy", "sim", "real", "MMRV", "Pearson r", *(["SimplerEnv"] if baseline else []), "paper"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("task", "policy") else "right")
    for t in result.tasks:
        rows = sorted(t.rates, key=lambda r: -r.real)
        what = t.column or f"SimplerEnv {result.protocol} reference ({t.metric})"
        label = [f"[bold]{escape(t.task)}[/]", f"[dim]{escape(what)}[/]", f"[dim]real: {t.real_trials} trials[/]"]
        for i, row in enumerate(rows):
            first = i == 0
            table.add_row(
                label[i] if i < len(label) else "",
                escape(row.policy),
                _fmt(row.sim),
                _fmt(row.real),
                f"[bold]{t.mmrv:.3f}[/]" if first else "",
                f"[bold]{t.pearson:.3f}[/]" if first else "",
                *([_pair_fmt(t.simpler.mmrv, t.simpler.pearson) if first and t.simpler else ""] if baseline else []),
                _pair_fmt(t.paper.mmrv, t.paper.pearson) if first and t.paper else "",
                end_section=i == len(rows) - 1,
            )
    for s in result.summaries:
        table.add_row(
            f"[bold]{escape(s.id)}[/]",
            f"mean of {len(s.tasks)} tasks",
            "",
            "",
            f"[bold]{s.mmrv:.3f}[/]",
            f"[bold]{s.pearson:.3f}[/]",
            *([""] if baseline else []),
            _pair_fmt(s.paper.mmrv, s.paper.pearson) if s.paper else "",
            end_section=True,
        )
    return table


def _print_result(result: SimRealResult) -> None:
    from vlascore.scoring.simreal import NEITHER, PROTOCOL_TITLES

    console.print(results_table(result))
    grasp = " (grasp tasks: whether the object was grasped)" if any(t.metric == "grasp" for t in result.tasks) else ""
    console.print(
        f"[bold]compared:[/] simulated success ({PROTOCOL_TITLES[result.protocol]}) with real-robot "
        f"success{grasp}, per task, over the policies listed for it",
        highlight=False,
    )
    for what, sources in (("sim", result.sim_sources), ("real", result.real_sources)):
        grouped: dict[str, list[str]] = {}
        for policy, where in sources.items():
            grouped.setdefault(where, []).append(policy)
        for where, policies in grouped.items():
            console.print(f"  {what:<4} {escape(', '.join(policies))}: {escape(where)}", highlight=False)
    by_reason: dict[str, list[str]] = {}
    for s in result.skipped:
        by_reason.setdefault(s.reason, []).append(s.task)
    for reason, names in by_reason.items():
        console.print(f"[yellow]not compared[/] ({escape(reason)}): {escape(', '.join(names))}", highlight=False)
    for sid, reason in result.skipped_summaries.items():
        console.print(f"[yellow]summary {escape(sid)} not computed[/]: {escape(reason)}", highlight=False)
    for t in result.tasks:
        left_out = [f"{p} ({why})" for p, why in t.excluded.items() if why != NEITHER]
        if left_out:
            console.print(f"[yellow]left out[/] of {escape(t.task)}: {escape(', '.join(left_out))}", highlight=False)
        for w in t.warnings:
            console.print(f"[yellow]note:[/] {escape(t.task)}: {escape(w)}", highlight=False)
    console.print(f"[dim]metrics and data: {escape(result.citation)}; see docs/simreal.md[/]", highlight=False)


def _print_list(data: RealSuccessData) -> None:
    from vlascore.scoring.simreal import REAL_SUCCESS_FILE

    c = data.citation
    console.print(
        f"[bold]{escape(c.title)}[/]\n{escape(', '.join(c.authors))}\n{escape(c.venue)}, "
        f"arXiv:{c.arxiv}, code {escape(c.code)}",
        highlight=False,
    )
    for key, s in data.sources.items():
        console.print(f"  [bold]{key}[/]: {escape(s.repo)} @ {s.commit}: {escape(', '.join(s.files))}", highlight=False)
    console.print()
    pt = Table(title="Reference policies", box=box.SIMPLE_HEAD, title_justify="left")
    pt.add_column("policy")
    pt.add_column("title")
    pt.add_column("SimplerEnv checkpoint")
    for name, ref in data.policies.items():
        pt.add_row(name, escape(ref.title), escape(ref.checkpoint))
    console.print(pt)
    real = data.real_rates()
    for robot in dict.fromkeys(t.robot for t in data.tasks):
        tasks = [t for t in data.tasks if t.robot == robot]
        policies = [p for p in data.policies if any(p in real[t.id] for t in tasks)]
        table = Table(
            title=f"Real success rates: {robot} (tasks/{REAL_SUCCESS_FILE})",
            box=box.SIMPLE_HEAD,
            title_justify="left",
            caption="~ derived: the mean of open and close, as SimplerEnv does"
            if any(t.real.mean_of for t in tasks)
            else None,
        )
        for col in ("task", "metric", "trials", "sim columns"):
            table.add_column(col, no_wrap=True)
        for p in policies:
            table.add_column(p, justify="right")
        for t in tasks:
            rates = [_fmt(real[t.id].get(p)) + ("~" if t.real.mean_of and p in real[t.id] else "") for p in policies]
            keys = "\n".join(t.columns.values()) or "- (--reference only)"
            table.add_row(escape(t.id), t.metric, str(t.trials), escape(keys), *rates)
        console.print(table)
    console.print(
        "Grasp rows (Bridge's partial success) have no vlascore column yet: they are compared with "
        "--reference only. Not bundled: OpenVLA's unmerged real rates (see the data file).",
        highlight=False,
    )
    console.print(f"\nPlease cite:\n{escape(c.bibtex())}", highlight=False, soft_wrap=True)


def simreal_cmd(
    pairs: Annotated[
        list[str] | None,
        typer.Argument(metavar="POLICY=SIM", help="Policy name = a run directory or a YAML/JSON file of sim rates."),
    ] = None,
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            "-p",
            help="vm (Visual Matching), va (Variant Aggregation; no Bridge) or ms3 "
            "(the ManiSkill 3 Bridge twins of simpler-bridge).",
        ),
    ] = "vm",
    reference: Annotated[
        bool, typer.Option("--reference", help="Add SimplerEnv's own simulated rates of its reference policies.")
    ] = False,
    real: Annotated[
        Path | None, typer.Option("--real", help="YAML/JSON {policy: {task: real rate}}: your real-robot rates.")
    ] = None,
    tasks: Annotated[str | None, typer.Option("--tasks", "-t", help="Comma-separated task ids [default: all].")] = None,
    as_json: JsonOpt = False,
    list_: Annotated[bool, typer.Option("--list", help="Print the bundled policies, tasks and real rates.")] = False,
) -> None:
    from vlascore.scoring.simreal import (
        COLUMN_KEYS,
        PROTOCOL_TITLES,
        REAL_SUCCESS_FILE,
        SimRates,
        SimRealError,
        compare,
        load_real_success,
        read_real_rates,
        read_sim_rates,
        sim_rates_from_run,
        sims_by_task,
    )
    from vlascore.store import StoreError

    data = load_real_success()
    if list_:
        _print_list(data)
        return
    if protocol not in PROTOCOL_TITLES:
        raise fail(f"--protocol must be vm, va or ms3, got {protocol!r}")
    proto: Protocol = protocol  # type: ignore[assignment]
    if not pairs and not reference:
        raise fail("give POLICY=RUN_DIR (or POLICY=FILE) pairs for at least 2 policies, or --reference; see --help")
    sims: SimRates = {}
    sources: dict[str, str] = {}
    if reference:
        for policy, rates in data.reference_sims(proto).items():
            sims[policy] = rates
            sources[policy] = f"SimplerEnv's {PROTOCOL_TITLES[proto]} rates (tasks/{REAL_SUCCESS_FILE})"
    given: set[str] = set()
    try:
        for pair in pairs or []:
            policy, sep, where = pair.partition("=")
            policy, path = policy.strip(), Path(where.strip())
            if not sep or not policy or not where.strip():
                raise fail(f"expected POLICY=RUN_DIR or POLICY=FILE, got {pair!r}")
            if policy in given:
                raise fail(f"policy {policy!r} is given twice")
            given.add(policy)
            if path.is_dir():
                found = sim_rates_from_run(path)  # a run's other suites' columns are not compared
                columns, kind = {k: v for k, v in found.items() if k in COLUMN_KEYS}, "vlascore run"
            elif path.is_file():
                found = columns = read_sim_rates(path)
                kind = "sim-rate file"
            else:
                raise fail(f"{policy}: {path} is neither a run directory nor a file")
            by_task = sims_by_task(data, proto, columns)
            if not by_task:
                others = [p for p in PROTOCOL_TITLES if p != proto and sims_by_task(data, p, columns)]  # type: ignore[arg-type]
                hint = (
                    f"; it has {others[0]} columns: use --protocol {others[0]}"
                    if others
                    else "; run the policy on a SimplerEnv suite (e.g. simpler-google-vm)"
                )
                raise fail(
                    f"{policy}: {path} has no {PROTOCOL_TITLES[proto]} SimplerEnv column "
                    f"({', '.join(sorted(found)) or 'no columns'}){hint}"
                )
            sims[policy] = by_task
            sources[policy] = f"{path} ({kind}, {len(by_task)} column(s))"
        real_extra = read_real_rates(real, data) if real else None
        chosen = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
        result = compare(
            sims,
            proto,
            data=data,
            real_extra=real_extra,
            sim_sources=sources,
            real_extra_source=str(real) if real else "--real file",
            tasks=chosen,
        )
    except (SimRealError, StoreError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        _print_result(result)


simreal_cmd.__doc__ = _HELP
