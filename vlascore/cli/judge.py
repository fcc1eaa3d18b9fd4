"""`vlascore judge [run|audit|list]`: verdicts per episode, judge audits, the judges shipped."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from vlascore.cli._common import (
    ENDPOINT,
    ApiKeyEnvOpt,
    BaseUrlOpt,
    CacheDirOpt,
    ConcurrencyOpt,
    DefaultToRun,
    JudgeModelOpt,
    JudgeOpt,
    KbOpt,
    MaxRetriesOpt,
    ProgressOpt,
    RetrievalOpt,
    RunArg,
    TimeoutOpt,
    console,
    endpoint,
    err,
    escape,
    fail,
    judge_context,
    judge_errors,
)
from vlascore.cli._tables import print_results, score_or_fail

judge_app = typer.Typer(
    cls=DefaultToRun,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    subcommand_metavar="RUN [OPTIONS] | COMMAND [ARGS]...",
    help=(
        "Judge a run's episodes: R, A, I, RA scores (0-10) per episode, then the VLA Score (Eq. 8) in "
        "`vlascore score`. `vlascore judge RUN [OPTIONS]` is `vlascore judge run RUN [OPTIONS]` (see "
        "`vlascore judge run --help` for its options).\n\n"
        "  vlascore judge runs/scripted                                   # offline grounded judge\n\n"
        "  vlascore judge runs/scripted -j vla-score --judge-model gpt-4o   "
        "# the paper's VLM judge ($OPENAI_API_KEY)\n\n"
        "  vlascore judge runs/scripted -j vla-score --judge-model Qwen/Qwen2.5-VL-7B-Instruct "
        "--base-url http://localhost:8000/v1\n\n"
        "  vlascore judge audit runs/scripted --against grounded           # reliability of a judge"
    ),
)


def register(app: typer.Typer) -> None:
    app.add_typer(judge_app, name="judge")


@judge_app.command("run")
def judge_run_cmd(
    run_dir: RunArg,
    judge: JudgeOpt = "grounded",
    judge_model: JudgeModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = ENDPOINT.api_key_env,
    concurrency: ConcurrencyOpt = ENDPOINT.concurrency,
    cache_dir: CacheDirOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ignore and do not fill the cache.")] = False,
    kb: KbOpt = None,
    retrieval: RetrievalOpt = True,
    episode: Annotated[
        list[str] | None, typer.Option("--episode", "-e", help="Judge only this episode id (repeatable); merged.")
    ] = None,
    timeout: TimeoutOpt = ENDPOINT.timeout_s,
    max_retries: MaxRetriesOpt = ENDPOINT.max_retries,
    price_in: Annotated[float | None, typer.Option("--price-in", help="USD per 1M prompt tokens.")] = None,
    price_out: Annotated[float | None, typer.Option("--price-out", help="USD per 1M completion tokens.")] = None,
    progress: ProgressOpt = True,
) -> None:
    """Judge every completed episode of a run and write RUN/judgements/LABEL.json; then print the VLA Score.

    The grounded judge needs no API. VLM judges call any OpenAI-compatible endpoint at temperature 0; replies are
    cached by content (judge version + model + request), so a re-run or an interrupted run makes no repeated calls.
    A reply that never matches the JSON contract (or an endpoint that fails, or frames that cannot be read) is
    recorded as failed with its reason (counted, excluded from means), never 0; a failed re-judge keeps the earlier
    valid verdict on the same episode. `--timeout` bounds each request in all, not each read.

    Exit codes: 0 every judged episode has a valid verdict; 1 some judgements failed in this pass (the file is
    written, earlier valid verdicts kept); 2 the pass could not run or was stopped before writing anything (bad
    options, the endpoint refused the first request or credentials, unreachable); 130 interrupted.

    Examples:

      vlascore judge runs/scripted

      OPENAI_API_KEY=... vlascore judge runs/scripted -j vla-score --judge-model gpt-4o -c 16

      vlascore judge runs/scripted -j vla-score --judge-model qwen2.5-vl --base-url http://localhost:8000/v1
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vlascore.judging.engine import judge_run

    if (price_in is None) != (price_out is None):
        raise fail("pass both --price-in and --price-out (USD per 1M tokens), or neither")
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}  cached {task.fields[cached]}"),
        TimeElapsedColumn(),
        console=err,
        disable=not progress,
    )
    bar_id = bar.add_task(f"judging {run_dir.name} ({judge})", total=None, failed=0, cached=0)
    counts = {"failed": 0, "cached": 0}

    def on_judgement(j: Any) -> None:
        counts["failed"] += j.status == "failed"
        counts["cached"] += j.cached
        bar.update(bar_id, advance=1, failed=counts["failed"], cached=counts["cached"])

    def on_start(total: int) -> None:
        bar.update(bar_id, total=total)
        bar.start()

    price = (price_in, price_out) if price_in is not None and price_out is not None else None
    try:
        settings = endpoint(judge_model, base_url, api_key_env, concurrency, timeout, max_retries)
        context = judge_context(settings, cache_dir, kb, retrieval, use_cache=not no_cache, price=price)
        result = judge_run(run_dir, judge, context, episode_ids=episode, on_start=on_start, on_judgement=on_judgement)
    except judge_errors() as exc:
        raise fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted; finished verdicts are cached: run the same command again to continue", 130) from None
    finally:
        bar.stop()
    u = result.usage
    failed = [j for j in result.judgements if j.status == "failed"]
    cost = (
        "unknown (model not in judges/pricing/prices.yaml; pass --price-in/--price-out)"
        if u.cost_usd is None
        else (f"${u.cost_usd:.4f}")
    )
    console.print(
        f"judged {len(result.judgements)} episode(s) with {escape(result.judge)} {result.judge_version}"
        + (f" ({escape(str(result.judge_model))})" if result.judge_model else "")
        + f" in {result.duration_s:.1f} s; failed {counts['failed']}",
        highlight=False,
        soft_wrap=True,
    )
    if result.judge_model:
        console.print(
            f"calls {u.calls}, cache hits {u.cache_hits}, tokens {u.prompt_tokens} in / "
            f"{u.completion_tokens} out, cost {cost}",
            highlight=False,
        )
    for j in failed[:5]:
        console.print(f"[red]failed[/] {escape(j.episode_id)}: {escape(str(j.failure_reason))}", highlight=False)
    if len(failed) > 5:
        console.print(f"... and {len(failed) - 5} more (see the judgement file)")
    if counts["failed"] > len(failed):
        console.print(
            f"{counts['failed'] - len(failed)} failed judgement(s) of this pass kept the earlier valid verdict",
            highlight=False,
        )
    print_results(score_or_fail(run_dir), run_dir)
    if counts["failed"]:
        raise typer.Exit(1)


@judge_app.command("audit")
def judge_audit_cmd(
    run_dir: RunArg,
    judge: JudgeOpt = "grounded",
    judge_model: JudgeModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = ENDPOINT.api_key_env,
    concurrency: ConcurrencyOpt = ENDPOINT.concurrency,
    repeats: Annotated[int, typer.Option("--repeats", "-k", min=1, help="Test-retest repeats (cache bypassed).")] = 3,
    against: Annotated[
        str | None, typer.Option("--against", help="Label of another judgement set of this run (e.g. grounded).")
    ] = None,
    injection: Annotated[bool, typer.Option("--injection/--no-injection", help="Run the injection probe.")] = True,
    max_episodes: Annotated[int, typer.Option("--max-episodes", "-n", min=1, help="Episodes sampled (seeded).")] = 20,
    cache_dir: CacheDirOpt = None,
    kb: KbOpt = None,
    retrieval: RetrievalOpt = True,
    timeout: TimeoutOpt = ENDPOINT.timeout_s,
    max_retries: MaxRetriesOpt = ENDPOINT.max_retries,
) -> None:
    """Measure a judge instead of trusting it: test-retest, agreement with another judge, injection probe.

    Writes RUN/audit/LABEL.json. The repeats bypass the cache, so a VLM audit costs about
    (repeats + 3 probes) x episodes requests.

    Examples:

      vlascore judge audit runs/scripted                               # the grounded judge

      vlascore judge audit runs/scripted -j vla-score --judge-model gpt-4o --against grounded -k 3 -n 20
    """
    from vlascore.judging.audit import audit_run

    try:
        settings = endpoint(judge_model, base_url, api_key_env, concurrency, timeout, max_retries)
        report = audit_run(
            run_dir,
            judge,
            judge_context(settings, cache_dir, kb, retrieval),
            repeats=repeats,
            against=against,
            injection=injection,
            max_episodes=max_episodes,
        )
    except judge_errors() as exc:
        raise fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc)) from None
    who = f"{report.judge} {report.judge_version}" + (f" ({report.judge_model})" if report.judge_model else "")
    console.print(
        f"audit of {escape(who)} on {len(report.episodes)} episode(s) of {escape(report.run_id)}; "
        f"{report.calls} call(s), {report.failed} failed judgement(s)",
        highlight=False,
        soft_wrap=True,
    )
    table = Table(title=f"test-retest ({report.repeats} repeats, cache bypassed)")
    for col in ("dimension", "mean |diff|", "all repeats equal", "within 1 point"):
        table.add_column(col, justify="right" if col != "dimension" else "left")
    for r in report.retest:
        table.add_row(
            r.dimension, f"{r.mean_abs_diff:.2f}", f"{100 * r.exact_agreement:.0f}%", f"{100 * r.within_one:.0f}%"
        )
    console.print(table)

    def num(x: float | None) -> str:
        return "n/a" if x is None else f"{x:+.2f}" if x < 0 else f"{x:.2f}"

    if report.agreement:
        table = Table(title=f"agreement with {report.against}")
        for col in ("dimension", "n", "Spearman", "weighted kappa", "mean diff"):
            table.add_column(col, justify="right" if col != "dimension" else "left")
        for a in report.agreement:
            table.add_row(a.dimension, str(a.n), num(a.spearman), num(a.weighted_kappa), num(a.mean_diff))
        console.print(table)
    if report.injection:
        table = Table(title="injection probe: score shift (injected - clean)")
        for col in ("probe", "dimension", "mean shift", "verdicts moved"):
            table.add_column(col, justify="right" if col in ("mean shift", "verdicts moved") else "left")
        for i in report.injection:
            style = "[red]" if abs(i.mean_shift) >= 0.5 else ""
            table.add_row(i.probe, i.dimension, f"{style}{i.mean_shift:+.2f}", f"{100 * i.moved:.0f}%")
        console.print(table)
    elif report.injection_note:
        console.print(f"injection probe: {escape(report.injection_note)}")
    console.print(f"audit written to {escape(str(run_dir / 'audit'))}/", highlight=False)


@judge_app.command("list")
def judge_list() -> None:
    """The judges shipped in judges/ (YAML + Jinja templates); pass your own YAML path to --judge."""
    from vlascore.judging import JudgeError, builtin_judge_paths, load_judge
    from vlascore.judging.catalog import AUTO_JUDGES

    table = Table(title="judges")
    for col in ("judge", "kind", "for", "version", "description"):
        table.add_column(col)
    for name, path in builtin_judge_paths().items():
        try:
            j = load_judge(path)
        except JudgeError as exc:
            table.add_row(name, "-", "-", "-", f"[red]{escape(str(exc))}[/]")
            continue
        table.add_row(j.name, j.kind, j.mode, j.effective_version, escape(j.description))
    for alias, (reasoning, specialist) in AUTO_JUDGES.items():
        table.add_row(alias, "alias", "auto", "-", f"{reasoning} for reasoning policies, {specialist} otherwise")
    console.print(table)
