"""The `vlascore` command line (Typer). Heavy modules are imported inside commands so --help stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

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
tasks_app = typer.Typer(help="List and validate task suites (YAML files in tasks/ or your own).", no_args_is_help=True)
models_app = typer.Typer(help="Registered policy adapters.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(models_app, name="models")


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
        table.add_row(
            r.task, _fmt_rate(r.success_rate, r.ci_low, r.ci_high), str(r.successes), str(r.episodes),
            f"[red]{r.errored}[/]" if r.errored else "0", f"{r.mean_steps:.1f}" if r.mean_steps is not None else "-",
        )  # fmt: skip
    table.add_section()
    table.add_row(
        "[bold]suite mean[/]", _fmt_rate(results.suite_mean, results.suite_ci_low, results.suite_ci_high),
        str(sum(r.successes for r in results.tasks)), str(results.episodes),
        f"[red]{results.errored}[/]" if results.errored else "0", "",
    )  # fmt: skip
    return table


def _print_results(results: RunResults, path: Path) -> None:
    console.print(results_table(results))
    notes = []
    if results.errored:
        how = "counted as failures" if results.errored_as_failure else "excluded from the rates"
        notes.append(f"{results.errored} errored episode(s) {how}; see `failure_reason` in the episodes table")
    if results.missing:
        notes.append(
            f"{results.missing} planned episode(s) not recorded yet: continue with `vlascore run ... --resume`"
        )
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"results written to {path / 'results.json'}")


@app.command("run")
def run_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Adapter name (see `vlascore models list`).")],
    suite: Annotated[str, typer.Option("--suite", "-s", help="Built-in suite name or a suite YAML path.")] = "tabletop",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory [default: runs/MODEL-SUITE].")] = None,
    episodes: Annotated[
        int | None,
        typer.Option("--episodes", "-n", min=1, help="Episodes per task (the first N seeds). [default: all seeds]"),
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
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Run a policy on a suite and record every step.

    Examples:

      vlascore run -m scripted -s tabletop -n 5 -o runs/scripted

      vlascore run -m scripted -s tabletop -n 20 -o runs/scripted --resume   # extend to 20 seeds

      vlascore run -m random -t PickCube,PushCube -n 10 -o runs/random

      vlascore run -m replay -M source=runs/scripted -n 5 -o runs/replayed
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

    try:
        spec = load_suite(suite)
    except SuiteError as exc:
        raise fail(str(exc)) from None
    out = out or Path("runs") / f"{model}-{spec.name}"
    task_ids = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    backend_options = {"sim_backend": sim_backend, "num_envs": num_envs} if spec.backend == "maniskill" else {}
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
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `vlascore run`.")],
    errored_as_failure: Annotated[
        bool, typer.Option("--errored-as-failure", help="Count errored episodes as failures instead of excluding them.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results JSON instead of a table.")] = False,
) -> None:
    """Per-task success rate with Wilson 95% intervals, the suite mean, episode and errored counts.

    Writes RUN_DIR/results.json. Example: vlascore score runs/scripted
    """
    from vlascore.scoring import score_and_write
    from vlascore.store import StoreError

    try:
        results = score_and_write(run_dir, errored_as_failure)
    except StoreError as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(results.model_dump_json(indent=2))
    else:
        _print_results(results, run_dir)


@app.command("report")
def report_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(metavar="RUN", help="Run directories written by `vlascore run`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path("report.html"),
) -> None:
    """One self-contained HTML report (works offline): per-task success with 95% intervals, a chart comparing
    the runs, and every episode with a filmstrip and the policy's reasoning timeline.

    Example: vlascore report runs/scripted runs/random -o report.html
    """
    from vlascore.report import write_report
    from vlascore.store import StoreError

    try:
        path = write_report(run_dirs, out)
    except StoreError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc}") from None
    size = path.stat().st_size / 1e6
    console.print(f"report written to {escape(str(path))} ({size:.1f} MB)", highlight=False, soft_wrap=True)


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
    table = Table(title=f"{s.name} (protocol {s.protocol_version}, fingerprint {s.fingerprint})")
    for col in ("task", "env", "category", "control", "camera", "max steps", "seeds", "instruction"):
        table.add_column(col, no_wrap=col in ("task", "env"))
    for t in s.tasks:
        table.add_row(t.id, t.env_id, t.category, t.control_mode, f"{t.camera} {t.resolution[0]}x{t.resolution[1]}",
                      str(t.max_steps), str(len(t.seeds)), t.instruction)  # fmt: skip
    console.print(table)


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
    """Registered adapters (built-in and from the `vlascore.adapters` entry-point group) and what each needs."""
    from vlascore.adapters import ADAPTERS

    table = Table(title="adapters")
    for col in ("name", "target", "reasons", "action space", "status"):
        table.add_column(col)
    for name in ADAPTERS.names():
        try:
            cls = ADAPTERS.get(name)
            space = cls.action_space
            table.add_row(name, ADAPTERS.target(name), "yes" if cls.reasons else "no",
                          f"{space.mode} {space.rotation} dim {space.dim}", "[green]ok[/]")  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - listing must survive one broken plugin
            table.add_row(name, ADAPTERS.target(name), "?", "?", f"[red]{escape(f'{type(exc).__name__}: {exc}')}[/]")
    console.print(table)


@app.command("doctor")
def doctor_cmd(
    suite: Annotated[str, typer.Option("--suite", "-s", help="Check the simulator assets of this suite.")] = "tabletop",
) -> None:
    """Check Python, dependencies and extras, the Vulkan device, rendering and simulator assets; print fixes."""
    from vlascore.doctor import run_checks
    from vlascore.suites import SuiteError, load_suite

    try:
        spec = load_suite(suite)
        env_ids = [t.env_id for t in spec.tasks] if spec.backend == "maniskill" else []
    except SuiteError as exc:
        raise fail(str(exc)) from None
    checks = run_checks(env_ids)
    style = {"ok": "[green]  ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
    for c in checks:
        console.print(f"{style[c.status]}  [bold]{escape(c.name)}[/]: {escape(c.detail)}", highlight=False)
        if c.fix and c.status != "ok":
            console.print(f"{'':>6}fix: {escape(c.fix)}", highlight=False)
    failed = [c.name for c in checks if c.status == "fail"]
    if failed:
        raise fail(f"{len(failed)} check(s) failed: {', '.join(failed)}", 1)
    console.print("[green]all required checks passed[/]")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
