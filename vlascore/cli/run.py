"""`vlascore run`: a policy on a suite, every step recorded in a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from vlascore.cli._common import (
    BackendArgOpt,
    ModelArgOpt,
    ProgressOpt,
    SuiteOpt,
    TasksOpt,
    err,
    fail,
    parse_model_args,
    split_ids,
)
from vlascore.cli._tables import print_results


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)


def run_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Adapter name (see `vlascore models list`).")],
    suite: SuiteOpt = "tabletop",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory [default: runs/MODEL-SUITE].")] = None,
    episodes: Annotated[
        int | None,
        typer.Option(
            "--episodes",
            "-n",
            min=1,
            help="Episodes per task: the first N seeds, or the first N cells of a grid task (SimplerEnv "
            "suites), which are not a representative sample. [default: all]",
        ),
    ] = None,
    tasks: TasksOpt = None,
    model_arg: ModelArgOpt = None,
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
        typer.Option(
            "--success-mode",
            help="final: success at the episode's last step (SimplerEnv's protocol); ever: "
            "the episode ends at its first success step. Changes the suite's "
            "fingerprint. [default: the suite's]",
        ),
    ] = None,
    backend_arg: BackendArgOpt = None,
    progress: ProgressOpt = True,
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
    task_ids = split_ids(tasks)
    backend_options = {"sim_backend": sim_backend, "num_envs": num_envs} if spec.backend == "maniskill" else {}
    backend_options.update(parse_model_args(backend_arg or []))
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ok {task.fields[ok]}  errored {task.fields[errored]}  success {task.fields[succ]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not progress,
    )
    counts = {"ok": 0, "errored": 0, "succ": 0, "todo": 0}
    bar_id = bar.add_task(f"{model} on {spec.name}", total=None, ok=0, errored=0, succ=0)
    plain = progress and not err.is_terminal  # a log file or a pipe: one line per episode instead of a live bar

    def on_start(todo: int, skipped: int) -> None:
        # Shown only once setup (suite, adapter, conventions, first env) has succeeded.
        if skipped:
            err.print(f"resuming: {skipped} finished episode(s) skipped, {todo} to run")
        counts["todo"] = todo
        bar.update(bar_id, total=todo)
        bar.start()

    def on_episode(ep: Any) -> None:
        counts["errored" if ep.status == "errored" else "ok"] += 1
        counts["succ"] += int(ep.success)
        if ep.status == "errored":
            bar.console.print(
                f"[red]errored[/] {escape(ep.episode_id)}: {escape(str(ep.failure_reason))}", highlight=False
            )
        if plain:
            done = counts["ok"] + counts["errored"]
            outcome = "errored" if ep.status == "errored" else "success" if ep.success else "failure"
            err.print(
                f"{done}/{counts['todo']} {escape(ep.episode_id)}: {outcome} in {ep.num_steps} steps, "
                f"{ep.duration_s:.0f} s (success {counts['succ']}/{done})",
                highlight=False,
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
            model=model,
            suite=spec,
            out=out,
            tasks=task_ids,
            episodes=episodes,
            model_args=parse_model_args(model_arg or []),
            backend_options=backend_options,
            resume=resume,
            retry_errored=retry_errored,
            frame_stride=frame_stride,
            on_start=on_start,
            on_episode=on_episode,
        )
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
    print_results(score_and_write(out), Path(out))
