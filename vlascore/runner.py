"""The evaluation loop: suite x seeds -> episodes recorded in a run store.

Each episode is isolated: a policy that raises, returns NaN or a wrong shape (or a simulator error)
marks that episode `errored` with the reason and the run goes on. Each finished episode is committed
atomically, so `resume=True` continues a killed run from the first unfinished episode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlascore import __version__
from vlascore.adapters import Adapter, EpisodeContext, adapt_to_tasks, make_adapter
from vlascore.adapters.base import validate_actions
from vlascore.backends import Backend, Observation, make_backend
from vlascore.provenance import git_revision, hardware, package_versions
from vlascore.records import EpisodeRecord, EpisodeStatus, RunRecord, StepRecord, Termination, utcnow
from vlascore.store import RunStore, StoreError
from vlascore.suites import Suite, TaskSpec


def episode_id(task_id: str, seed: int) -> str:
    return f"{task_id}-{seed}"


def plan_seeds(suite: Suite, task_ids: list[str] | None = None, episodes: int | None = None) -> dict[str, list[int]]:
    """Task id -> seeds to run: the first `episodes` seeds of each selected task (all when None)."""
    tasks = [suite.task(t) for t in task_ids] if task_ids else list(suite.tasks)
    plan = {}
    for task in tasks:
        if episodes is not None and episodes > len(task.seeds):
            raise ValueError(
                f"--episodes {episodes} exceeds the {len(task.seeds)} seeds task {task.id!r} of suite "
                f"{suite.name!r} defines; add seeds to the suite YAML"
            )
        plan[task.id] = list(task.seeds[:episodes] if episodes is not None else task.seeds)
    return plan


@dataclass
class EpisodeOutcome:
    episode: EpisodeRecord
    steps: list[StepRecord]


@dataclass
class RunSummary:
    store: RunStore
    ran: int = 0
    skipped: int = 0
    errored: int = 0
    successes: int = 0
    episode_ids: list[str] = field(default_factory=list)


ProgressHook = Callable[[EpisodeRecord], None]


def _step_record(
    eid: str,
    index: int,
    obs: Observation,
    action: np.ndarray,
    reasoning: str | None,
    intention: str | None,
    reward: float,
    success: bool,
    frame: int | None,
) -> StepRecord:
    priv = obs.privileged
    return StepRecord(
        episode_id=eid,
        step=index,
        action=[float(a) for a in action],
        reasoning=reasoning,
        intention=intention,
        ee_pose=[float(v) for v in priv.ee_pose],
        gripper=float(priv.gripper),
        privileged={role: [float(v) for v in pose] for role, pose in priv.objects.items()},
        reward=reward,
        success=success,
        frame=frame,
    )


def run_episode(
    backend: Backend, adapter: Adapter, task: TaskSpec, seed: int, store: RunStore, frame_stride: int = 1
) -> EpisodeOutcome:
    """Run one episode on an already made backend and commit it to `store`."""
    eid = episode_id(task.id, seed)
    started, t0 = utcnow(), time.perf_counter()
    policy_s = sim_s = 0.0
    steps: list[StepRecord] = []
    frames: list[np.ndarray] = []
    first_instruction = task.instruction
    frame_steps: list[int] = []
    success = False
    termination: Termination = "max_steps"
    status: EpisodeStatus = "ok"
    reason: str | None = None
    where = "reset"
    obs: Observation | None = None

    def keep_frame(o: Observation, index: int, force: bool = False) -> int | None:
        if o.image is None or (index % frame_stride and not force):
            return None
        frames.append(o.image)
        frame_steps.append(index)
        return len(frames) - 1

    try:
        adapter.reset(EpisodeContext(task=task, seed=seed, episode_id=eid))
        t = time.perf_counter()
        obs = backend.reset(seed)
        sim_s += time.perf_counter() - t
        index = 0
        instruction = first_instruction = obs.instruction or task.instruction
        while index < task.max_steps:
            where = f"policy at step {index}"
            t = time.perf_counter()
            out = adapter.act(obs, instruction)
            actions = validate_actions(out, adapter)
            policy_s += time.perf_counter() - t
            for action in actions[: adapter.execute_steps]:  # receding horizon: run k of the n predicted
                frame = keep_frame(obs, index)
                where = f"simulator at step {index}"
                t = time.perf_counter()
                result = backend.step(action)
                sim_s += time.perf_counter() - t
                success = result.success if task.success_mode == "final" else (success or result.success)
                steps.append(
                    _step_record(eid, index, obs, action, out.reasoning, out.intention, result.reward, success, frame)
                )
                obs = result.observation
                instruction = obs.instruction or instruction  # multi-stage tasks move to their next subtask
                index += 1
                if task.success_mode == "ever" and success:
                    termination = "success"
                elif result.terminated and task.success_mode == "ever":
                    termination = "terminated"
                if termination != "max_steps" or index >= task.max_steps:
                    break
            if termination != "max_steps":
                break
    except Exception as exc:  # noqa: BLE001 - isolation is the point: record and go on
        status, termination, success = "errored", "error", False
        reason = f"{type(exc).__name__} in {where}: {exc}"
    if obs is not None and status == "ok":
        keep_frame(obs, len(steps), force=True)  # the final state, for judges and reports
    frames_file = store.write_frames(eid, frames, frame_steps)
    episode = EpisodeRecord(
        episode_id=eid,
        task=task.id,
        seed=seed,
        instruction=first_instruction,
        success=bool(success),
        num_steps=len(steps),
        termination=termination,
        status=status,
        failure_reason=reason,
        started_at=started,
        duration_s=time.perf_counter() - t0,
        policy_time_s=policy_s,
        sim_time_s=sim_s,
        frames_file=frames_file,
    )
    store.write_episode(episode, steps)
    return EpisodeOutcome(episode, steps)


def _run_record(
    run_id: str,
    adapter_name: str,
    adapter: Adapter,
    suite: Suite,
    plan: dict[str, list[int]],
    backend: Backend,
    frame_stride: int,
) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        adapter=adapter_name,
        adapter_config=adapter.config,
        adapter_info=adapter.info(),
        suite=suite.name,
        suite_fingerprint=suite.fingerprint,
        protocol_version=suite.protocol_version,
        suite_spec=suite.model_dump(mode="json"),
        tasks=list(plan),
        seeds=plan,
        backend=suite.backend,
        backend_config=backend.describe(),
        vlascore_version=__version__,
        git_revision=git_revision(),
        package_versions=package_versions(),
        hardware=hardware(),
        frame_stride=frame_stride,
    )


def _check_resumable(old: RunRecord, new: RunRecord) -> None:
    problems = [
        f"{name}: recorded {a!r}, now {b!r}"
        for name, a, b in (
            ("suite fingerprint", old.suite_fingerprint, new.suite_fingerprint),
            ("adapter", old.adapter, new.adapter),
            ("adapter config", old.adapter_config, new.adapter_config),
            ("backend config", old.backend_config, new.backend_config),
            ("frame stride", old.frame_stride, new.frame_stride),
        )
        if a != b
    ]
    if problems:
        raise StoreError("cannot resume: the run was made with different settings; " + "; ".join(problems))


def run(
    *,
    model: str,
    suite: Suite,
    out: str | Path,
    tasks: list[str] | None = None,
    episodes: int | None = None,
    model_args: dict[str, Any] | None = None,
    backend_options: dict[str, Any] | None = None,
    resume: bool = False,
    retry_errored: bool = False,
    frame_stride: int = 1,
    on_start: Callable[[int, int], None] | None = None,
    on_episode: ProgressHook | None = None,
) -> RunSummary:
    """Run `model` on the suite's tasks and seeds, recording into `out`. Raises before any step on bad setup."""
    if frame_stride < 1:
        raise ValueError("frame_stride must be >= 1")
    store = RunStore(out)
    if store.exists and not resume:
        raise StoreError(f"{store.path} already holds a run: pass --resume to continue it, or choose another --out")
    plan = plan_seeds(suite, tasks, episodes)
    adapter = make_adapter(model, model_args)
    if not adapter.acts:
        adapter.close()
        raise ValueError(f"adapter {model!r} does not act (it only answers questions): score it with `vlascore qa`")
    try:  # every task's convention is checked (and any conversion planned) before the first step
        adapter = adapt_to_tasks(adapter, [suite.task(t) for t in plan])
    except Exception:
        adapter.close()
        raise
    backend = make_backend(suite.backend, **(backend_options or {}))
    try:
        record = _run_record(store.path.name, model, adapter, suite, plan, backend, frame_stride)
        if store.exists:
            old = store.read_run()
            _check_resumable(old, record)
            merged = {t: list(dict.fromkeys(old.seeds.get(t, []) + s)) for t, s in {**old.seeds, **plan}.items()}
            record = record.model_copy(update={"created_at": old.created_at, "seeds": merged, "tasks": list(merged)})
        done = store.finished_episodes()
        rerun = {"errored"} if retry_errored else set()
        todo = [
            (task_id, seed)
            for task_id, seeds in plan.items()
            for seed in seeds
            if done.get(episode_id(task_id, seed)) in (None, *rerun)
        ]
        if todo:  # build the first env before writing anything: a setup failure leaves no half-made run behind
            backend.make(suite.task(todo[0][0]))
        store.write_run(record)
        summary = RunSummary(store=store, skipped=sum(len(s) for s in plan.values()) - len(todo))
        if on_start:
            on_start(len(todo), summary.skipped)
        current = todo[0][0] if todo else None
        for task_id, seed in todo:
            task = suite.task(task_id)
            if task_id != current:
                backend.make(task)
                current = task_id
            outcome = run_episode(backend, adapter, task, seed, store, frame_stride)
            summary.ran += 1
            summary.errored += outcome.episode.status == "errored"
            summary.successes += outcome.episode.success
            summary.episode_ids.append(outcome.episode.episode_id)
            if on_episode:
                on_episode(outcome.episode)
    finally:
        backend.close()
        adapter.close()
        store.close()
    return summary
