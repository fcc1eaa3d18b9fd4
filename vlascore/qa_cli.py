"""`vlascore qa` and the QA / combined tables `vlascore score` prints (docs/qa.md).

Like serve_cli, this module imports vlascore.cli (consoles, `fail`, the -M parser, the judge options) only inside
functions, so vlascore.cli registers it at its bottom without an import cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from vlascore.qa.records import QAResult
    from vlascore.qa.summary import CombinedRow

_QA_HELP = """Ask a model's VLM side the multimodal QA benchmarks (MMMU, MM-Vet, MMStar, OCRBench, MMBench, TextVQA,
InfoVQA, DocVQA) through lmms-eval, and store the scores in a run directory next to (or without) a simulated run.

Needs the `qa` extra (lmms-eval). Scores: percent, OCRBench out of 1000; MM = their mean with OCRBench / 10.
MM-Vet is graded by an LLM through any OpenAI-compatible endpoint (--judge-model, --base-url), cached like other
judgements; a grade that fails is recorded as failed, and MM-Vet then has no score until a later call grades it.
A benchmark that fails is reported by name and exits 1; the others are kept. Finished benchmarks are skipped when
run again with the same settings (--rerun to ask again).

**Data.** By default each benchmark's Hugging Face dataset (the one lmms-eval names; `vlascore qa --list`) is
downloaded on first use into the Hugging Face cache: on a machine with internet, set HF_TOKEN if needed and run
as is. For a machine without internet, download elsewhere and point at the copy:

  huggingface-cli download --repo-type dataset lmms-lab-encoder/textvqa --local-dir /data/qa/textvqa

  vlascore qa -m vlm -M path=... --data-dir /data/qa            # /data/qa/NAME for each benchmark NAME

  vlascore qa -m vlm -M path=... --data textvqa=/data/qa/textvqa # one benchmark (repeatable)

A local copy is a folder of parquet files (a hub snapshot, or files written by `Dataset.to_parquet`, with the
benchmark's columns), a `save_to_disk` folder, or another hub id.

Examples:

  vlascore qa -m vlm -M path=Qwen/Qwen2.5-VL-3B-Instruct -b all -o runs/qwen-vl

  vlascore qa -m vlm -M path=... -b textvqa,docvqa --limit 100 -o runs/quick     # a subset: stated as such

  vlascore qa -m vlm -M path=... -b mmvet --judge-model gpt-4o-2024-11-20 -o runs/qwen-vl

  vlascore qa -m scripted-qa -M answers=answers.json -b textvqa --data textvqa=./tiny -o runs/check

  vlascore score runs/qwen-vl                                     # the QA table and the combined table
"""


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def qa_table(results: dict[str, QAResult], title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, caption="score in percent; OCRBench: correct per 1000 questions")
    for col, justify in (("benchmark", "left"), ("score", "right"), ("MM scale", "right"), ("questions", "right"),
                         ("status", "left")):  # fmt: skip
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
    table = Table(title="Combined: simulation, VLA Score, multimodal QA", box=box.SIMPLE_HEAD,
                  caption="percent; OCRBench out of 1000 (MM: / 10); * partial, ~ subset (see notes)")  # fmt: skip
    table.add_column("")
    for r in rows:
        table.add_column(escape(r.label), justify="right")
    table.add_row("Sim (success %)", *[_fmt(r.sim) for r in rows])
    table.add_row("VLA Score", *[_fmt(r.vla) for r in rows], end_section=True)
    for b in benches:
        table.add_row(b, *[(_fmt(r.qa.get(b)) + ("~" if b in r.qa_subset else "")) if b in r.qa else "" for r in rows],
                      end_section=b == benches[-1])  # fmt: skip
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
    from vlascore.cli import console

    table, notes = combined_table(rows)
    console.print(table)
    for note in notes:
        console.print(f"[dim]{escape(note)}[/]", highlight=False)


def qa_cmd(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Adapter with a VLM side (`vlascore models list`).")
    ] = None,
    benchmarks: Annotated[
        str, typer.Option("--benchmarks", "-b", help="Comma-separated benchmark names, or all.")
    ] = "all",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory [default: runs/MODEL-qa].")] = None,
    model_arg: Annotated[
        list[str] | None, typer.Option("--model-arg", "-M", help="Adapter option key=value (repeatable).")
    ] = None,
    data: Annotated[
        list[str] | None, typer.Option("--data", help="BENCHMARK=PATH_OR_HUB_ID: a local copy (repeatable).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Folder with a local copy per benchmark: DIR/<benchmark>.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Ask only the first N questions of each benchmark (a subset).")
    ] = None,
    rerun: Annotated[bool, typer.Option("--rerun", help="Ask again even where results are up to date.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed for lmms-eval and sampling models.")] = 0,
    judge_model: Annotated[
        str, typer.Option("--judge-model", help="Chat model that grades MM-Vet.")
    ] = "gpt-4o-2024-11-20",
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint for MM-Vet grading [default: OpenAI].")
    ] = None,
    api_key_env: Annotated[
        str, typer.Option("--api-key-env", help="Environment variable holding the API key (local servers need none).")
    ] = "OPENAI_API_KEY",
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Judgement cache [default: $VLASCORE_CACHE_DIR or ~/.cache/...].")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Grading requests in flight.")] = 8,
    list_: Annotated[bool, typer.Option("--list", help="List the benchmarks and their datasets, then exit.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress.")] = True,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vlascore.cli import console, err, fail, parse_model_args
    from vlascore.extras import MissingExtraError
    from vlascore.judging.vlm import JudgeAbort
    from vlascore.qa.benchmarks import load_benchmarks, resolve
    from vlascore.qa.run import QAOptions, run_qa
    from vlascore.registry import UnknownPluginError
    from vlascore.store import StoreError

    if list_:
        console.print("QA benchmarks (tasks/qa/benchmarks.yaml):")
        for b in load_benchmarks().benchmarks.values():
            hub = b.hub + (f" (config {b.config})" if b.config else "")
            line = f"dataset {hub}, split {b.split}; lmms-eval task {b.lmms_task}, metric {b.metric}"
            console.print(f"  [bold]{b.name}[/]  {escape(b.title)}: {escape(b.kind)}\n    {line}", soft_wrap=True,
                          highlight=False)  # fmt: skip
        return
    if model is None:
        raise fail("--model is required (an adapter with a VLM side, e.g. --model vlm -M path=...); see --help")
    pairs: dict[str, str] = {}
    for item in data or []:
        name, sep, where = item.partition("=")
        if not sep or not name.strip() or not where.strip():
            raise fail(f"--data expects BENCHMARK=PATH, got {item!r}")
        pairs[name.strip().lower()] = where.strip()
    try:
        chosen = resolve(benchmarks)
    except ValueError as exc:
        raise fail(str(exc)) from None
    out = out or Path("runs") / f"{model}-qa"
    options = QAOptions(limit=limit, seed=seed, rerun=rerun, judge_model=judge_model, base_url=base_url,
                        api_key_env=api_key_env, cache_dir=cache_dir, concurrency=concurrency)  # fmt: skip
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err, disable=not progress)  # fmt: skip
    ids: dict[str, Any] = {}

    def on_event(event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "start":
            bar.start()
            ids[event["benchmark"]] = bar.add_task(f"{model} {event['benchmark']}", total=None)
        elif kind == "answered":
            name = str(event["task"]).removeprefix("vlascore_")
            if name in ids:
                bar.update(ids[name], completed=event["done"], total=event["total"])
        elif kind == "done" and event.get("status") != "ok":
            bar.console.print(f"[red]failed[/] {escape(event['benchmark'])}: {escape(str(event.get('error')))}",
                              highlight=False)  # fmt: skip

    try:
        outcome = run_qa(model=model, model_args=parse_model_args(model_arg or []), benchmarks=chosen, out=out,
                         data=pairs, data_dir=data_dir, options=options, on_event=on_event)  # fmt: skip
    except (MissingExtraError, StoreError, UnknownPluginError, JudgeAbort, ValueError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail(f"interrupted; finished benchmarks are saved in {out}/qa. Run the same command to continue",
                   130) from None
    finally:
        bar.stop()
    if outcome.skipped:
        err.print(f"up to date, not asked again: {', '.join(outcome.skipped)} (--rerun to ask again)")
    console.print(qa_table(outcome.results, f"{model}: multimodal QA ({out})"))
    for note in data_notes(outcome.results):
        console.print(f"[dim]{escape(note)}[/]", highlight=False, soft_wrap=True)
    from vlascore.qa.summary import combined_row

    print_combined([combined_row(out)])
    failed = outcome.failed
    for name, r in failed.items():
        err.print(f"[red]{r.status}[/] {escape(name)}: {escape(r.failure_reason)}", highlight=False)
    if outcome.log is not None:
        err.print(f"lmms-eval log: {outcome.log}")
    if failed:
        raise fail(f"{len(failed)} benchmark(s) without a score: {', '.join(failed)}", 1)


qa_cmd.__doc__ = _QA_HELP
