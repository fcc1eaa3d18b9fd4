"""The `vlascore` command line (Typer). Heavy modules are imported inside commands so --help stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

if TYPE_CHECKING:
    from vlascore.scoring import RunResults

console = Console()
err = Console(stderr=True)

app = typer.Typer(
    name="vlascore",
    help=(
        "Score Vision-Language-Action robot policies: run them in simulated episodes, record per-step traces, "
        "and score success (and, with judges, the VLA Score).\n\n"
        "Quick start:\n\n"
        "  vlascore doctor\n\n"
        "  vlascore run --model scripted --suite tabletop --episodes 5 --out runs/scripted\n\n"
        "  vlascore score runs/scripted"
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)


class DefaultToRun(TyperGroup):
    """`vlascore judge RUN ...` is `vlascore judge run RUN ...`; the other subcommands keep their names."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer vendors click: its Context type
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


tasks_app = typer.Typer(help="List and validate task suites (YAML files in tasks/ or your own).", no_args_is_help=True)
models_app = typer.Typer(help="Registered policy adapters.", no_args_is_help=True)
adapter_app = typer.Typer(
    help="Check a policy adapter's conformance (like Gymnasium's env checker).", no_args_is_help=True
)
judge_app = typer.Typer(
    cls=DefaultToRun,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help=(
        "Judge a run's episodes: R, A, I, RA scores (0-10) per episode, then the VLA Score (Eq. 8) in "
        "`vlascore score`.\n\n"
        "  vlascore judge runs/scripted                                   # offline grounded judge\n\n"
        "  vlascore judge runs/scripted -j vla-score --judge-model gpt-4o   "
        "# the paper's VLM judge ($OPENAI_API_KEY)\n\n"
        "  vlascore judge runs/scripted -j vla-score --judge-model Qwen/Qwen2.5-VL-7B-Instruct "
        "--base-url http://localhost:8000/v1\n\n"
        "  vlascore judge audit runs/scripted --against grounded           # reliability of a judge"
    ),
)
app.add_typer(tasks_app, name="tasks")
app.add_typer(models_app, name="models")
app.add_typer(adapter_app, name="adapter")
app.add_typer(judge_app, name="judge")


def fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def parse_model_args(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are parsed as YAML scalars (numbers, booleans, lists)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise fail(f"--model-arg expects key=value, got {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


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
            name, _fmt_rate(r.success_rate, r.ci_low, r.ci_high), str(r.successes), str(r.episodes),
            f"[red]{r.errored}[/]" if r.errored else "0", f"{r.mean_steps:.1f}" if r.mean_steps is not None else "-",
        )  # fmt: skip
    table.add_section()
    by_task = [r.task for r in results.tasks if r.success_rate is not None]
    n_cols = len(results.suite_mean_columns)
    label = "suite mean" if results.suite_mean_columns in ([], by_task) else f"mean of {n_cols} columns"
    table.add_row(
        f"[bold]{label}[/]", _fmt_rate(results.suite_mean, results.suite_ci_low, results.suite_ci_high),
        str(sum(r.successes for r in results.tasks)), str(results.episodes),
        f"[red]{results.errored}[/]" if results.errored else "0", "",
    )  # fmt: skip
    return table


def columns_table(results: RunResults) -> Table:
    """The suite's result columns and headline averages, each average with the columns it used."""
    table = Table(title=f"columns of {results.suite}", caption="a column is the unweighted mean of its tasks' rates; "
                  "* counts in the suite mean")  # fmt: skip
    table.add_column("column")
    table.add_column("key", style="dim")
    table.add_column("success %", justify="right")
    table.add_column("tasks")
    for c in results.columns:
        value = "n/a" if c.success_rate is None else f"{100 * c.success_rate:.1f}"
        missing = f" [yellow](missing {', '.join(c.missing)})[/]" if c.missing else ""
        table.add_row(escape(c.id) + (" *" if c.in_mean else ""), escape(c.key), value,
                      escape(", ".join(c.tasks)) + missing)  # fmt: skip
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
    return f"{e.value:.1f}\n[dim]{e.ci_low:.0f}-{e.ci_high:.0f}[/]"


def vla_table(v: Any) -> Table:
    """The paper's Table 4/5 layout: Sim., R, A, I, RA and the VLA Score (Eq. 8), each with its 95% interval."""
    who = f"{v.judge} {v.judge_version}" + (f", {v.judge_model}" if v.judge_model else "")
    table = Table(
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        title=f"VLA Score of {v.run_id} ({v.mode} policy) judged by {who}",
        caption=f"mean x 100 with bootstrap 95% CI (stratified by task, {v.n_boot} resamples); "
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


def _print_results(results: RunResults, path: Path) -> None:
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
    console.print(f"results written to {path / 'results.json'}")


def _score(run_dir: Path, errored_as_failure: bool = False) -> RunResults:
    from vlascore.scoring import score_and_write
    from vlascore.store import StoreError

    try:
        return score_and_write(run_dir, errored_as_failure)
    except StoreError as exc:
        raise fail(str(exc)) from None


@app.command("run")
def run_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Adapter name (see `vlascore models list`).")],
    suite: Annotated[str, typer.Option("--suite", "-s", help="Built-in suite name or a suite YAML path.")] = "tabletop",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory [default: runs/MODEL-SUITE].")] = None,
    episodes: Annotated[
        int | None,
        typer.Option("--episodes", "-n", min=1,
                     help="Episodes per task: the first N seeds, or the first N cells of a grid task (SimplerEnv "
                          "suites), which are not a representative sample. [default: all]"),
    ] = None,
    tasks: Annotated[str | None, typer.Option("--tasks", "-t", help="Comma-separated task ids [default: all].")] = None,
    model_arg: Annotated[
        list[str] | None, typer.Option("--model-arg", "-M", help="Adapter option key=value (repeatable).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an existing run; finished episodes are skipped.")
    ] = False,
    retry_errored: Annotated[
        bool, typer.Option("--retry-errored", help="With --resume, run errored episodes again.")
    ] = False,
    sim_backend: Annotated[
        str, typer.Option("--sim-backend", help="ManiSkill physics: cpu or gpu (needs CUDA).")
    ] = "cpu",
    num_envs: Annotated[
        int, typer.Option("--num-envs", min=1, help="Parallel envs (GPU sim only; not supported yet).")
    ] = 1,
    frame_stride: Annotated[
        int, typer.Option("--frame-stride", min=1, help="Store every k-th frame (the last is always kept).")
    ] = 1,
    success_mode: Annotated[
        str | None,
        typer.Option("--success-mode", help="final: success at the episode's last step (SimplerEnv's protocol); ever: "
                                            "the episode ends at its first success step. Changes the suite's "
                                            "fingerprint. [default: the suite's]"),
    ] = None,
    backend_arg: Annotated[
        list[str] | None,
        typer.Option("--backend-arg", "-B", help="Backend option key=value (repeatable), e.g. the simpler backend's "
                                                 "data_dir=/path/to/ManiSkill2_real2sim/data."),
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Run a policy on a suite and record every step.

    Examples:

      vlascore run -m scripted -s tabletop -n 5 -o runs/scripted

      vlascore run -m scripted -s tabletop -n 20 -o runs/scripted --resume   # extend to 20 seeds

      vlascore run -m random -t PickCube,PushCube -n 10 -o runs/random

      vlascore run -m replay -M source=runs/scripted -n 5 -o runs/replayed

      vlascore run -m openvla -M unnorm_key=bridge_orig -M device=cuda -n 10 -o runs/openvla

      vlascore run -m remote -M url=ws://gpu-box:8765 -n 10 -o runs/served   # a `vlascore serve` elsewhere

      vlascore run -m openvla -M unnorm_key=bridge_orig -s simpler-bridge -o runs/openvla-bridge   # ManiSkill 3 twins

      vlascore run -m openvla -M unnorm_key=fractal20220817_data -s simpler-google-vm -o runs/openvla-vm   # SimplerEnv
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from vlascore import runner
    from vlascore.adapters import ConventionError
    from vlascore.backends import BackendError
    from vlascore.extras import MissingExtraError
    from vlascore.registry import UnknownPluginError
    from vlascore.scoring import score_and_write
    from vlascore.store import StoreError
    from vlascore.suites import SuiteError, load_suite

    if success_mode not in (None, "final", "ever"):
        raise fail(f"--success-mode must be final or ever, not {success_mode!r}")
    try:
        spec = load_suite(suite)
        if success_mode is not None:
            spec = spec.with_success_mode(success_mode)  # type: ignore[arg-type]
    except SuiteError as exc:
        raise fail(str(exc)) from None
    out = out or Path("runs") / f"{model}-{spec.name}"
    task_ids = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    backend_options = {"sim_backend": sim_backend, "num_envs": num_envs} if spec.backend == "maniskill" else {}
    backend_options.update(parse_model_args(backend_arg or []))
    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("ok {task.fields[ok]}  errored {task.fields[errored]}  success {task.fields[succ]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=not progress,
    )  # fmt: skip
    counts = {"ok": 0, "errored": 0, "succ": 0}
    bar_id = bar.add_task(f"{model} on {spec.name}", total=None, ok=0, errored=0, succ=0)

    def on_start(todo: int, skipped: int) -> None:
        # Shown only once setup (suite, adapter, conventions, first env) has succeeded.
        if skipped:
            err.print(f"resuming: {skipped} finished episode(s) skipped, {todo} to run")
        bar.update(bar_id, total=todo)
        bar.start()

    def on_episode(ep: Any) -> None:
        counts["errored" if ep.status == "errored" else "ok"] += 1
        counts["succ"] += int(ep.success)
        if ep.status == "errored":
            bar.console.print(
                f"[red]errored[/] {escape(ep.episode_id)}: {escape(str(ep.failure_reason))}", highlight=False
            )
        bar.update(
            bar_id,
            advance=1,
            description=f"{model} {ep.task}",
            ok=counts["ok"],
            errored=counts["errored"],
            succ=counts["succ"],
        )

    try:
        runner.run(
            model=model, suite=spec, out=out, tasks=task_ids, episodes=episodes,
            model_args=parse_model_args(model_arg or []), backend_options=backend_options, resume=resume,
            retry_errored=retry_errored, frame_stride=frame_stride, on_start=on_start, on_episode=on_episode,
        )  # fmt: skip
    except (
        BackendError,
        SuiteError,
        StoreError,
        ConventionError,
        UnknownPluginError,
        MissingExtraError,
        ValueError,
    ) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail(
            f"interrupted; finished episodes are saved. Continue with the same command plus --resume (out: {out})", 130
        ) from None
    finally:
        bar.stop()
    _print_results(score_and_write(out), Path(out))


@app.command("score")
def score_cmd(
    run_dirs: Annotated[
        list[Path], typer.Argument(metavar="RUN", help="Run directories (`vlascore run` and/or `vlascore qa`).")
    ],
    errored_as_failure: Annotated[
        bool, typer.Option("--errored-as-failure", help="Count errored episodes as failures instead of excluding them.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results JSON instead of tables.")] = False,
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
    from vlascore.qa_cli import data_notes, print_combined, qa_table
    from vlascore.store import RUN_FILE, StoreError

    rows, payload = [], []
    for run_dir in run_dirs:
        try:
            qa = read_results(run_dir)
        except StoreError as exc:
            raise fail(str(exc)) from None
        results = _score(run_dir, errored_as_failure) if (run_dir / RUN_FILE).is_file() or not qa else None
        row = combined_row(run_dir, results=results, qa=qa)
        rows.append(row)
        if as_json:
            payload.append({"run": str(run_dir), "results": results.model_dump(mode="json") if results else None,
                            "qa": {k: r.model_dump(mode="json") for k, r in qa.items()},
                            "combined": row.model_dump(mode="json")})  # fmt: skip
            continue
        if results is not None:
            _print_results(results, run_dir)
        if qa:
            console.print(qa_table(qa, f"multimodal QA of {escape(str(run_dir))}"))
            for note in data_notes(qa):
                console.print(f"[dim]{escape(note)}[/]", highlight=False, soft_wrap=True)
    if as_json:
        only = payload[0]
        print(json.dumps(only["results"], indent=2) if len(payload) == 1 and not only["qa"] else
              json.dumps({"runs": payload}, indent=2))  # fmt: skip
    elif len(rows) > 1 or any(r.qa for r in rows):
        print_combined(rows)


@app.command("report")
def report_cmd(
    run_dirs: Annotated[
        list[Path], typer.Argument(metavar="RUN", help="Run directories (`vlascore run` and/or `vlascore qa`).")
    ],
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
        path = write_report(run_dirs, out, baseline=baseline, episodes=episode, filmstrips=filmstrips,
                            max_frames=frames)  # fmt: skip
    except (StoreError, JudgeError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc}") from None
    size = path.stat().st_size / 1e6
    console.print(f"report written to {escape(str(path))} ({size:.1f} MB)", highlight=False, soft_wrap=True)


JudgeOpt = Annotated[
    str, typer.Option("--judge", "-j", help="Judge name (`vlascore judge list`), `vla-score` (picks the reasoning or "
                      "specialist VLM judge from the run), or a judge YAML path.")
]  # fmt: skip
JudgeModelOpt = Annotated[
    str | None,
    typer.Option("--judge-model", help="Chat model behind a VLM judge (e.g. gpt-4o, or your server's model)."),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="OpenAI-compatible endpoint (vLLM, llama.cpp, Ollama) [default: OpenAI]."),
]
ApiKeyEnvOpt = Annotated[
    str, typer.Option("--api-key-env", help="Environment variable holding the API key (local servers need none).")
]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Requests in flight at once.")]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Judgement cache [default: $VLASCORE_CACHE_DIR or ~/.cache/vlascore/judgements]."),
]
KbOpt = Annotated[Path | None, typer.Option("--kb", help="Retrieval knowledge base folder [default: judges/kb].")]


def _judge_options(base_url: str | None, api_key_env: str, cache_dir: Path | None, kb: Path | None,
                   retrieval: bool, timeout: float, max_retries: int) -> dict[str, Any]:  # fmt: skip
    return {"base_url": base_url, "api_key_env": api_key_env, "cache_dir": cache_dir, "kb_dir": kb,
            "retrieval": retrieval, "timeout_s": timeout, "max_retries": max_retries}  # fmt: skip


def _judge_errors() -> tuple[type[BaseException], ...]:
    from vlascore.judging import JudgeError
    from vlascore.judging.vlm import JudgeAbort
    from vlascore.store import StoreError

    return (JudgeError, JudgeAbort, StoreError, KeyError, ValueError)


@judge_app.command("run")
def judge_run_cmd(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="Run directory written by `vlascore run`.")],
    judge: JudgeOpt = "grounded",
    judge_model: JudgeModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    concurrency: ConcurrencyOpt = 8,
    cache_dir: CacheDirOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ignore and do not fill the cache.")] = False,
    kb: KbOpt = None,
    retrieval: Annotated[bool, typer.Option("--retrieval/--no-retrieval", help="Few-shot example from the KB.")] = True,
    episode: Annotated[
        list[str] | None, typer.Option("--episode", "-e", help="Judge only this episode id (repeatable); merged.")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request before it is retried.")] = 120.0,
    max_retries: Annotated[int, typer.Option("--max-retries", min=0, help="Retries on 429/5xx/timeouts.")] = 5,
    price_in: Annotated[float | None, typer.Option("--price-in", help="USD per 1M prompt tokens.")] = None,
    price_out: Annotated[float | None, typer.Option("--price-out", help="USD per 1M completion tokens.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Judge every completed episode of a run and write RUN/judgements/LABEL.json; then print the VLA Score.

    The grounded judge needs no API. VLM judges call any OpenAI-compatible endpoint at temperature 0; replies are
    cached by content (judge version + model + request), so a re-run or an interrupted run makes no repeated calls.
    A reply that never matches the JSON contract is recorded as failed (counted, excluded from means), never 0.

    Examples:

      vlascore judge runs/scripted

      OPENAI_API_KEY=... vlascore judge runs/scripted -j vla-score --judge-model gpt-4o -c 16

      vlascore judge runs/scripted -j vla-score --judge-model qwen2.5-vl --base-url http://localhost:8000/v1
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vlascore.judging.engine import judge_run

    if (price_in is None) != (price_out is None):
        raise fail("pass both --price-in and --price-out (USD per 1M tokens), or neither")
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("failed {task.fields[failed]}  cached {task.fields[cached]}"), TimeElapsedColumn(),
                   console=err, disable=not progress)  # fmt: skip
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
        result = judge_run(
            run_dir, judge, judge_model, concurrency=concurrency, episode_ids=episode, on_start=on_start,
            on_judgement=on_judgement, use_cache=not no_cache, price=price,
            **_judge_options(base_url, api_key_env, cache_dir, kb, retrieval, timeout, max_retries),
        )  # fmt: skip
    except _judge_errors() as exc:
        raise fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted; finished verdicts are cached: run the same command again to continue", 130) from None
    finally:
        bar.stop()
    u = result.usage
    failed = [j for j in result.judgements if j.status == "failed"]
    cost = "unknown (model not in judges/pricing/prices.yaml; pass --price-in/--price-out)" if u.cost_usd is None else (
        f"${u.cost_usd:.4f}")  # fmt: skip
    console.print(
        f"judged {len(result.judgements)} episode(s) with {escape(result.judge)} {result.judge_version}"
        + (f" ({escape(str(result.judge_model))})" if result.judge_model else "")
        + f" in {result.duration_s:.1f} s; failed {len(failed)}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    if result.judge_model:
        console.print(f"calls {u.calls}, cache hits {u.cache_hits}, tokens {u.prompt_tokens} in / "
                      f"{u.completion_tokens} out, cost {cost}", highlight=False)  # fmt: skip
    for j in failed[:5]:
        console.print(f"[red]failed[/] {escape(j.episode_id)}: {escape(str(j.failure_reason))}", highlight=False)
    if len(failed) > 5:
        console.print(f"... and {len(failed) - 5} more (see the judgement file)")
    _print_results(_score(run_dir), run_dir)


@judge_app.command("audit")
def judge_audit_cmd(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="Run directory written by `vlascore run`.")],
    judge: JudgeOpt = "grounded",
    judge_model: JudgeModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = "OPENAI_API_KEY",
    concurrency: ConcurrencyOpt = 8,
    repeats: Annotated[int, typer.Option("--repeats", "-k", min=1, help="Test-retest repeats (cache bypassed).")] = 3,
    against: Annotated[
        str | None, typer.Option("--against", help="Label of another judgement set of this run (e.g. grounded).")
    ] = None,
    injection: Annotated[bool, typer.Option("--injection/--no-injection", help="Run the injection probe.")] = True,
    max_episodes: Annotated[int, typer.Option("--max-episodes", "-n", min=1, help="Episodes sampled (seeded).")] = 20,
    cache_dir: CacheDirOpt = None,
    kb: KbOpt = None,
    retrieval: Annotated[bool, typer.Option("--retrieval/--no-retrieval", help="Few-shot example from the KB.")] = True,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request before it is retried.")] = 120.0,
    max_retries: Annotated[int, typer.Option("--max-retries", min=0, help="Retries on 429/5xx/timeouts.")] = 5,
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
        report = audit_run(
            run_dir, judge, judge_model, repeats=repeats, against=against, injection=injection,
            max_episodes=max_episodes, concurrency=concurrency,
            **_judge_options(base_url, api_key_env, cache_dir, kb, retrieval, timeout, max_retries),
        )  # fmt: skip
    except _judge_errors() as exc:
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
        console.print(f"injection probe: {report.injection_note}")
    console.print(f"audit written to {escape(str(run_dir / 'audit'))}/", highlight=False)


@judge_app.command("list")
def judge_list() -> None:
    """The judges shipped in judges/ (YAML + Jinja templates); pass your own YAML path to --judge."""
    from vlascore.judging import JudgeError, builtin_judge_paths, load_judge
    from vlascore.judging.definitions import AUTO_JUDGES

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


@tasks_app.command("list")
def tasks_list(
    suite: Annotated[str | None, typer.Argument(help="Show the tasks of this suite (name or YAML path).")] = None,
) -> None:
    """List the built-in suites, or the tasks of one suite. Example: vlascore tasks list tabletop"""
    from vlascore.suites import SuiteError, builtin_suite_paths, load_suite

    if suite is None:
        table = Table(title="suites")
        for col in ("suite", "protocol", "fingerprint", "backend", "tasks", "description"):
            table.add_column(col)
        for name, path in builtin_suite_paths().items():
            try:
                s = load_suite(path)
            except SuiteError as exc:
                table.add_row(name, "-", "-", "-", "-", f"[red]invalid: {exc}[/]")
                continue
            table.add_row(
                s.name, s.protocol_version, s.fingerprint, s.backend, str(len(s.tasks)), s.description.split(". ")[0]
            )
        console.print(table)
        return
    try:
        s = load_suite(suite)
    except SuiteError as exc:
        raise fail(str(exc)) from None
    console.print(suite_tasks_table(s))
    if s.columns or s.averages:
        console.print(f"columns: {', '.join(f'{c.id} = mean of {chr(43).join(c.tasks)}' for c in s.result_columns)}",
                      soft_wrap=True)  # fmt: skip
    for a in s.averages:
        console.print(f"average {a.id}: mean of {', '.join(a.columns)}", soft_wrap=True)


def _task_settings(t: Any) -> dict[str, str]:
    size = f"{t.resolution[0]}x{t.resolution[1]}" if t.resolution else "native size"
    freq = (f"{t.control_freq:g} Hz control / {t.sim_freq} Hz physics" if t.control_freq and t.sim_freq
            else "simulator's frequencies")  # fmt: skip
    return {"control": t.control_mode, "camera": f"{t.camera} {size}", "frequencies": freq,
            "success": t.success_mode, "max steps": str(t.max_steps)}  # fmt: skip


def suite_tasks_table(s: Any) -> Table:
    """A suite's tasks; settings every task shares go in the caption instead of a column of repeats."""
    settings = [_task_settings(t) for t in s.tasks]
    shared = [k for k in settings[0] if len({row[k] for row in settings}) == 1]
    caption = " | ".join(f"{k}: {settings[0][k]}" for k in shared)
    table = Table(title=f"{s.name} (protocol {s.protocol_version}, fingerprint {s.fingerprint}, backend {s.backend})",
                  caption=caption)  # fmt: skip
    own = [k for k in settings[0] if k not in shared]
    for col in ("task", "env", "category", *own, "episodes", "instruction"):
        table.add_column(col, no_wrap=col == "task")
    for t, row in zip(s.tasks, settings, strict=True):
        envs = sorted({t.cell(i).env_id for i in t.seeds}) if t.grid else [t.env_id]
        env = envs[0] if len(envs) == 1 else f"{t.env_id} (+{len(envs) - 1} more)"
        episodes = f"{len(t.seeds)} (grid)" if t.grid else str(len(t.seeds))
        table.add_row(t.id, env, t.category, *(row[k] for k in own), episodes, t.instruction)
    return table


@tasks_app.command("validate")
def tasks_validate(paths: Annotated[list[Path], typer.Argument(help="Suite YAML files to check.")]) -> None:
    """Check suite files without running anything; exits non-zero on the first invalid one.

    Example: vlascore tasks validate tasks/*.yaml
    """
    from vlascore.suites import SuiteError, load_suite_file

    bad = 0
    for path in paths:
        try:
            s = load_suite_file(path)
        except SuiteError as exc:
            err.print(f"[red]invalid[/] {escape(str(exc))}", highlight=False)
            bad += 1
            continue
        console.print(f"[green]ok[/] {path}: suite {s.name!r}, {len(s.tasks)} task(s), protocol {s.protocol_version}, "
                      f"fingerprint {s.fingerprint}")  # fmt: skip
    if bad:
        raise typer.Exit(1)


@models_app.command("list")
def models_list() -> None:
    """Registered adapters (built-in and from the `vlascore.adapters` entry-point group) and what each needs.

    A third-party package registers one in its pyproject.toml:

      [project.entry-points."vlascore.adapters"]
      myvla = "my_package.adapter:MyVLAAdapter"
    """
    from vlascore.adapters import ADAPTERS

    table = Table(title="adapters")
    for col in ("name", "from", "reasons", "QA", "action space", "chunk", "needs", "status"):
        table.add_column(col)
    for name in ADAPTERS.names():
        origin = f"{ADAPTERS.origin(name)}\n[dim]{escape(ADAPTERS.target(name))}[/]"
        try:
            cls = ADAPTERS.get(name)
            space = cls.action_space
            extras = ", ".join(f"vlascore[{e}]" for e in cls.extras)
            needs = "; ".join(x for x in (extras, cls.needs) if x) or "-"
            chunk = str(cls.chunk_size) + (f" (runs {cls.execute_steps})" if cls.execute_steps else "")
            acts = f"{space.mode} {space.rotation} dim {space.dim}" + ("" if space.normalized else " (units)")
            table.add_row(name, origin, "yes" if cls.reasons else "no", "yes" if cls.answers_questions else "no",
                          acts if cls.acts else "- (QA only)", "-" if not cls.acts else chunk, escape(needs),
                          "[green]ok[/]")  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - listing must survive one broken plugin
            table.add_row(name, origin, "?", "?", "?", "?", "?", f"[red]{escape(f'{type(exc).__name__}: {exc}')}[/]")
    console.print(table)
    console.print("[dim]Declared conventions are converted to each task's when they differ (see docs/adapters.md); "
                  "`vlascore adapter check NAME` tests one. QA: answers `vlascore qa` (a VLM side).[/]")  # fmt: skip


@adapter_app.command("check")
def adapter_check(
    model: Annotated[str, typer.Argument(help="Adapter name (see `vlascore models list`).")],
    model_arg: Annotated[
        list[str] | None, typer.Option("--model-arg", "-M", help="Adapter option key=value (repeatable).")
    ] = None,
    suite: Annotated[str, typer.Option("--suite", "-s", help="Suite whose tasks shape the observations.")] = "tabletop",
    tasks: Annotated[str | None, typer.Option("--tasks", "-t", help="Comma-separated task ids [default: all].")] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Calls per determinism / batch check.")] = 3,
    calls: Annotated[int, typer.Option("--calls", min=0, help="Timed calls for the latency figure.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Episode seed given to reset().")] = 0,
    max_latency_ms: Annotated[
        float | None, typer.Option("--max-latency-ms", help="Fail when the median call takes longer.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the findings as JSON here.")] = None,
) -> None:
    """Conformance checks for an adapter, like Gymnasium's env checker; exits 1 listing the problems.

    Checks: construction, info() serialisable, the declared convention against each task's (and the
    conversion used), output shapes and dtypes, finite values, bounds, binary gripper, reasoning text vs
    `reasons`, determinism under a seed, act_batch == act, and latency per call. Observations are synthetic,
    shaped like each task's (no simulator needed).

    Examples:

      vlascore adapter check scripted

      vlascore adapter check openvla -M path=/ckpt/openvla-7b -M unnorm_key=bridge_orig -s tabletop -t PickCube

      vlascore adapter check remote -M url=ws://gpu-box:8765 --max-latency-ms 500 --json check.json
    """
    import json

    from vlascore.adapters.check import check_adapter, summarise
    from vlascore.runner import make_adapter
    from vlascore.suites import SuiteError, load_suite

    try:
        spec = load_suite(suite)
        chosen = [spec.task(t.strip()) for t in tasks.split(",") if t.strip()] if tasks else list(spec.tasks)
    except SuiteError as exc:
        raise fail(str(exc)) from None
    options = parse_model_args(model_arg or [])
    reports = check_adapter(lambda: make_adapter(model, options), chosen, seed=seed, steps=steps,
                            timed_calls=calls, max_latency_ms=max_latency_ms)  # fmt: skip
    style = {"ok": "[green]  ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]", "skip": "[dim]skip[/]"}
    for r in reports:
        console.print(f"[bold]{escape(r.adapter)}[/] on [bold]{escape(r.task)}[/]")
        for c in r.checks:
            console.print(f"  {style[c.status]}  {escape(c.name)}: {escape(c.detail)}", highlight=False)
    if json_out:
        json_out.write_text(json.dumps(summarise(reports), indent=2))
    problems = [(r.task, c) for r in reports for c in r.problems]
    if problems:
        listing = "; ".join(f"{task}: {c.name}: {c.detail}" for task, c in problems)
        raise fail(f"{len(problems)} problem(s): {listing}", 1)
    console.print(f"[green]{model} passes the adapter checks on {len(reports)} task(s)[/]")


@app.command("doctor")
def doctor_cmd(
    suite: Annotated[
        str, typer.Option("--suite", "-s", help="Check the simulator and assets of this suite.")
    ] = "tabletop",
) -> None:
    """Check Python, dependencies and extras, the Vulkan device, rendering and simulator assets; print fixes.

    Examples:

      vlascore doctor                              # the embedded default (tabletop)

      vlascore doctor -s simpler-bridge            # ManiSkill 3 Bridge twins: are their asset packs downloaded?

      vlascore doctor -s simpler-google-vm         # SimplerEnv's own simulator: is it installed here?
    """
    from vlascore.doctor import run_checks
    from vlascore.suites import SuiteError, load_suite

    try:
        spec = load_suite(suite)
        env_ids = [t.env_id for t in spec.tasks] if spec.backend == "maniskill" else []
    except SuiteError as exc:
        raise fail(str(exc)) from None
    checks = run_checks(env_ids, spec.backend)
    style = {"ok": "[green]  ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
    for c in checks:
        console.print(f"{style[c.status]}  [bold]{escape(c.name)}[/]: {escape(c.detail)}", highlight=False)
        if c.fix and c.status != "ok":
            console.print(f"{'':>6}fix: {escape(c.fix)}", highlight=False)
    failed = [c.name for c in checks if c.status == "fail"]
    if failed:
        raise fail(f"{len(failed)} check(s) failed: {', '.join(failed)}", 1)
    console.print("[green]all required checks passed[/]")


from vlascore.kb_cli import kb_app  # noqa: E402 - kb_cli imports this module's helpers lazily

app.add_typer(kb_app, name="kb")

from vlascore.board_cli import leaderboard_app, submit_cmd  # noqa: E402 - board_cli imports this module lazily too

app.add_typer(leaderboard_app, name="leaderboard")
app.command("submit")(submit_cmd)

from vlascore.serve_cli import serve_cmd  # noqa: E402 - serve_cli imports this module lazily too

app.command("serve")(serve_cmd)

from vlascore.qa_cli import qa_cmd  # noqa: E402 - qa_cli imports this module lazily too

app.command("qa")(qa_cmd)

from vlascore.simreal_cli import simreal_cmd  # noqa: E402 - simreal_cli imports this module lazily too

app.command("simreal")(simreal_cmd)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
