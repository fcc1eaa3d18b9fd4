"""`vlascore run`: a policy on a suite, every step recorded in a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vlascore.cli._common import (
    DEFAULT_MAX_WAIT_MS,
    BackendArgOpt,
    MaxBatchSizeOpt,
    MaxWaitMsOpt,
    ModelArgOpt,
    ProgressOpt,
    RayAddressOpt,
    SuiteOpt,
    TasksOpt,
    default_run_dir,
    err,
    fail,
    output_folder,
    parse_model_args,
    split_ids,
)
from vlascore.cli._progress import RunProgress
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
        int,
        typer.Option(
            "--num-envs",
            min=1,
            help="Environments one worker steps at once, with one batched policy call per step (vectorised "
            "backends: ManiSkill's GPU simulation, toy).",
        ),
    ] = 1,
    workers: Annotated[
        int,
        typer.Option("--workers", "-w", min=1, help="Worker processes (or Ray actors), each with its own environment."),
    ] = 1,
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="per-worker: every worker loads its own copy of the adapter (cheap CPU policies); shared: one copy "
            "serves all workers, batching their requests (one GPU, a large model).",
        ),
    ] = "per-worker",
    max_batch_size: MaxBatchSizeOpt = None,
    max_wait_ms: MaxWaitMsOpt = None,
    executor: Annotated[
        str,
        typer.Option("--executor", help="local: worker processes on this machine; ray: Ray actors on a cluster."),
    ] = "local",
    ray_address: RayAddressOpt = None,
    policy_gpus: Annotated[
        float,
        typer.Option("--policy-gpus", min=0, help="GPUs the shared policy's Ray actor asks for (--executor ray)."),
    ] = 0.0,
    summary_every: Annotated[
        float,
        typer.Option(
            "--summary-every",
            min=1,
            help="Seconds between progress summaries when stderr is not a terminal (SLURM, CI, nohup).",
        ),
    ] = 60.0,
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

    Episodes run one after another in this process, or in parallel: --workers N worker processes (each with its own
    environment; results do not depend on N), one policy shared by all of them with dynamic batching (--policy
    shared), Ray actors on a cluster (--executor ray), several environments per worker (--num-envs). This process
    writes the run directory; Ctrl-C or SIGTERM stops every worker, and --resume continues. On a terminal a progress
    bar shows throughput and busy workers; otherwise one line per finished episode and a summary with the ETA.

    Examples:

      vlascore run -m scripted -s tabletop -n 5 -o runs/scripted

      vlascore run -m scripted -s tabletop -n 20 -o runs/scripted --resume   # extend to 20 seeds

      vlascore run -m random -t PickCube,PushCube -n 10 -o runs/random

      vlascore run -m replay -M source=runs/scripted -n 5 -o runs/replayed

      vlascore run -m openvla -M unnorm_key=bridge_orig -M device=cuda -n 10 -o runs/openvla

      vlascore run -m remote -M url=ws://gpu-box:8765 -n 10 -o runs/served   # a `vlascore serve` elsewhere

      vlascore run -m openvla -M unnorm_key=bridge_orig -s simpler-bridge -o runs/openvla-bridge   # ManiSkill 3 twins

      vlascore run -m openvla -M unnorm_key=fractal20220817_data -s simpler-google-vm -o runs/openvla-vm   # SimplerEnv

      vlascore run -m scripted -s tabletop -n 50 -w 4 -o runs/scripted   # 4 worker processes

      vlascore run -m openvla -M device=cuda -s tabletop -w 8 --policy shared --max-batch-size 8 -o runs/ov   # one GPU

      vlascore run -m openvla -M device=cuda -w 32 --executor ray --ray-address 10.0.0.5:6379 --policy shared \\
        --policy-gpus 1 -o runs/ov-cluster   # a Ray cluster; the run directory stays on this machine

      vlascore run -m openvla -M device=cuda --sim-backend gpu --num-envs 16 -o runs/ov-gpu-sim   # ManiSkill GPU sim
    """
    import signal
    import threading

    from vlascore import runner
    from vlascore.adapters import ConventionError
    from vlascore.backends import BackendError
    from vlascore.extras import MissingExtraError
    from vlascore.registry import UnknownPluginError
    from vlascore.scale import WorkerFailed
    from vlascore.scoring import score_and_write
    from vlascore.store import StoreError
    from vlascore.suites import SuiteError, load_suite

    if success_mode not in (None, "final", "ever"):
        raise fail(f"--success-mode must be final or ever, not {success_mode!r}")
    if policy not in ("per-worker", "shared"):
        raise fail(f"--policy must be per-worker or shared, not {policy!r}")
    if executor not in ("local", "ray"):
        raise fail(f"--executor must be local or ray, not {executor!r}")
    if (max_batch_size is not None or max_wait_ms is not None) and policy != "shared":
        raise fail("--max-batch-size and --max-wait-ms batch a shared policy's requests: add --policy shared")
    if executor != "ray" and (ray_address is not None or policy_gpus):
        raise fail("--ray-address and --policy-gpus are for Ray: add --executor ray")
    try:
        spec = load_suite(suite)
        if success_mode is not None:
            spec = spec.with_success_mode(success_mode)  # type: ignore[arg-type]
    except SuiteError as exc:
        raise fail(str(exc)) from None
    out = out or default_run_dir(model, spec.name)
    output_folder(out)
    task_ids = split_ids(tasks)
    if spec.backend != "maniskill" and sim_backend != "cpu":  # an option no other backend has: say so, never ignore it
        raise fail(
            f"--sim-backend selects ManiSkill's physics; suite {spec.name!r} runs on the {spec.backend!r} backend"
        )
    backend_options: dict[str, Any] = {"sim_backend": sim_backend} if spec.backend == "maniskill" else {}
    backend_options.update(parse_model_args(backend_arg or [], "--backend-arg"))
    pool = None
    if workers > 1 or policy == "shared" or executor == "ray":
        from vlascore.scale import make_executor

        try:
            pool = make_executor(
                executor,
                workers=workers,
                policy=policy,
                max_batch_size=max_batch_size or workers * num_envs,
                max_wait_ms=DEFAULT_MAX_WAIT_MS if max_wait_ms is None else max_wait_ms,
                ray_address=ray_address,
                policy_gpus=policy_gpus,
            )
        except ValueError as exc:
            raise fail(str(exc)) from None
    shown = RunProgress(
        f"{model} on {spec.name}",
        err,
        enabled=progress,
        workers=workers,
        busy=pool.busy if pool is not None else None,
        summary_every=summary_every,
    )

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGTERM (a scheduler cancelling the job, `kill`) stops the run like Ctrl-C: workers stopped, finished episodes
    # kept. A shell that starts us in the background leaves SIGINT ignored: set both. Only the main thread may.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
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
            num_envs=num_envs,
            executor=pool,
            on_start=shown.start,
            on_episode=shown.episode,
        )
    except (
        BackendError,
        SuiteError,
        StoreError,
        ConventionError,
        UnknownPluginError,
        MissingExtraError,
        ConnectionError,
        WorkerFailed,
        ValueError,
    ) as exc:
        shown.stop()
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        shown.stop()  # the last summary, then the hint
        raise fail(
            f"interrupted; finished episodes are saved. Continue with the same command plus --resume (out: {out})", 130
        ) from None
    finally:
        shown.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print_results(score_and_write(out), Path(out))
