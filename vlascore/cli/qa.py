"""`vlascore qa`: the multimodal QA benchmarks through lmms-eval (docs/qa.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vlascore.cli._common import (
    ENDPOINT,
    ApiKeyEnvOpt,
    BaseUrlOpt,
    CacheDirOpt,
    ConcurrencyOpt,
    JudgeModelOpt,
    ModelArgOpt,
    ProgressOpt,
    console,
    default_run_dir,
    endpoint,
    err,
    escape,
    fail,
    parse_model_args,
)
from vlascore.cli._tables import data_notes, print_combined, qa_table
from vlascore.qa import MMVET_GRADER_MODEL


def register(app: typer.Typer) -> None:
    app.command("qa")(qa_cmd)


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


def qa_cmd(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Adapter with a VLM side (`vlascore models list`).")
    ] = None,
    benchmarks: Annotated[
        str, typer.Option("--benchmarks", "-b", help="Comma-separated benchmark names, or all.")
    ] = "all",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory [default: runs/MODEL-qa].")] = None,
    model_arg: ModelArgOpt = None,
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
    judge_model: JudgeModelOpt = MMVET_GRADER_MODEL,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = ENDPOINT.api_key_env,
    cache_dir: CacheDirOpt = None,
    concurrency: ConcurrencyOpt = ENDPOINT.concurrency,
    list_: Annotated[bool, typer.Option("--list", help="List the benchmarks and their datasets, then exit.")] = False,
    progress: ProgressOpt = True,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vlascore.extras import MissingExtraError
    from vlascore.judging.endpoint import JudgeAbort
    from vlascore.qa.benchmarks import load_benchmarks, resolve
    from vlascore.qa.run import QAOptions, run_qa
    from vlascore.registry import UnknownPluginError
    from vlascore.store import StoreError

    if list_:
        console.print("QA benchmarks (tasks/qa/benchmarks.yaml):")
        for b in load_benchmarks().benchmarks.values():
            hub = b.hub + (f" (config {b.config})" if b.config else "")
            line = f"dataset {hub}, split {b.split}; lmms-eval task {b.lmms_task}, metric {b.metric}"
            console.print(
                f"  [bold]{b.name}[/]  {escape(b.title)}: {escape(b.kind)}\n    {line}", soft_wrap=True, highlight=False
            )
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
    out = out or default_run_dir(model, "qa")
    grader = endpoint(judge_model, base_url, api_key_env, concurrency)
    options = QAOptions(limit=limit, seed=seed, rerun=rerun, grader=grader, cache_dir=cache_dir)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not progress,
    )
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
            bar.console.print(
                f"[red]failed[/] {escape(event['benchmark'])}: {escape(str(event.get('error')))}", highlight=False
            )

    try:
        outcome = run_qa(
            model=model,
            model_args=parse_model_args(model_arg or []),
            benchmarks=chosen,
            out=out,
            data=pairs,
            data_dir=data_dir,
            options=options,
            on_event=on_event,
        )
    except (MissingExtraError, StoreError, UnknownPluginError, JudgeAbort, ValueError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail(
            f"interrupted; finished benchmarks are saved in {out}/qa. Run the same command to continue", 130
        ) from None
    finally:
        bar.stop()
    if outcome.skipped:
        err.print(f"up to date, not asked again: {escape(', '.join(outcome.skipped))} (--rerun to ask again)")
    console.print(qa_table(outcome.results, escape(f"{model}: multimodal QA ({out})")))
    for note in data_notes(outcome.results):
        console.print(f"[dim]{escape(note)}[/]", highlight=False, soft_wrap=True)
    from vlascore.qa.summary import combined_row

    print_combined([combined_row(out)])
    failed = outcome.failed
    for name, r in failed.items():
        err.print(f"[red]{r.status}[/] {escape(name)}: {escape(r.failure_reason)}", highlight=False)
    if outcome.log is not None:
        err.print(f"lmms-eval log: {escape(outcome.log)}")
    if failed:
        raise fail(f"{len(failed)} benchmark(s) without a score: {', '.join(failed)}", 1)


qa_cmd.__doc__ = _QA_HELP
