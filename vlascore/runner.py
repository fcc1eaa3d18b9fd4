"""The evaluation loop: suite x seeds -> episodes recorded in a run store.

This module is the one place that runs an episode: `play_episode` steps one environment, `play_vectorised` steps
the N environments of a vectorised backend at once with a boundary per environment; both record through
`_Episode`, so an episode's records are the same either way. `run` plans and checks a run, then plays its episodes
here or hands them to an executor (vlascore.scale: worker processes or Ray actors) that sends each outcome back;
the process that calls `run` commits every episode, so it is the run store's only writer.

Each episode is isolated: a policy that raises, returns NaN or a wrong shape (or a simulator error, or the death of
the worker running it) marks that episode `errored` with the reason and the run goes on. Each finished episode is
committed atomically, so `resume=True` continues a killed run from the first unfinished episode.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vlascore._version import __version__
from vlascore.adapters import ADAPTERS, Adapter, EpisodeContext, PolicyStep, adapt_to_tasks, make_adapter
from vlascore.adapters.base import validate_actions
from vlascore.backends import BACKENDS, Backend, Observation, StepResult, build_backend
from vlascore.provenance import git_revision, hardware, package_versions
from vlascore.records import (
    EpisodeRecord,
    EpisodeStatus,
    RunRecord,
    RunSession,
    StepRecord,
    Termination,
    utcnow,
)
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


Job = tuple[str, int]
"""One episode to play: (task id, seed)."""


@dataclass
class EpisodeOutcome:
    """A played episode: its record, its steps, and (until committed) its frames."""

    episode: EpisodeRecord
    steps: list[StepRecord]
    frames: list[np.ndarray] = field(default_factory=list)
    frame_steps: list[int] = field(default_factory=list)


@dataclass
class RunSummary:
    store: RunStore
    ran: int = 0
    skipped: int = 0
    errored: int = 0
    successes: int = 0
    episode_ids: list[str] = field(default_factory=list)


ProgressHook = Callable[[EpisodeRecord], None]


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a process needs to play this run's episodes: sent (pickled) to each worker, which builds its own
    backend and, unless the policy is shared, its own adapter. Classes travel by reference (module and name)."""

    suite: Suite
    model: str
    adapter_class: type[Adapter]
    model_args: dict[str, Any]
    backend_class: type[Backend]
    backend_options: dict[str, Any]
    tasks: list[str]
    """The planned tasks: the adapter's convention is checked (and any conversion planned) for each."""
    frame_stride: int = 1
    instance: Adapter | None = None
    """An adapter object the caller made (vlascore.evaluate): used as it is, in this process only."""

    @property
    def num_envs(self) -> int:
        return int(self.backend_options.get("num_envs", 1))

    def make_adapter(self) -> Adapter:
        """The adapter, checked to act and converted to every planned task's convention (raises before any step)."""
        adapter = self.instance or make_adapter(self.model, self.model_args, cls=self.adapter_class)
        if not adapter.acts:
            adapter.close()
            raise ValueError(
                f"adapter {self.model!r} does not act (it only answers questions): score it with `vlascore qa`"
            )
        try:  # every task's convention is checked (and any conversion planned) before the first step
            return adapt_to_tasks(adapter, [self.suite.task(t) for t in self.tasks])
        except Exception:
            adapter.close()
            raise

    def make_backend(self) -> Backend:
        return build_backend(self.backend_class, self.suite.backend, self.backend_options)


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


class _Episode:
    """One episode being recorded: the policy's pending actions (receding horizon: k of the n a call predicts), the
    steps, the frames kept, and how it ended. Both loops drive it the same way, which keeps their records equal."""

    def __init__(self, task: TaskSpec, seed: int, frame_stride: int) -> None:
        self.task, self.seed, self.frame_stride = task, seed, frame_stride
        self.eid = episode_id(task.id, seed)
        self.started, self.t0 = utcnow(), time.perf_counter()
        self.policy_s = self.sim_s = 0.0
        self.steps: list[StepRecord] = []
        self.frames: list[np.ndarray] = []
        self.frame_steps: list[int] = []
        self.success = False
        self.termination: Termination = "max_steps"
        self.status: EpisodeStatus = "ok"
        self.reason: str | None = None
        self.where = "reset"
        self.obs: Observation | None = None
        self.instruction = self.first_instruction = task.instruction
        self.queue: list[np.ndarray] = []
        self.out: PolicyStep | None = None
        self.index = 0
        self.frame: int | None = None

    @property
    def context(self) -> EpisodeContext:
        return EpisodeContext(task=self.task, seed=self.seed, episode_id=self.eid)

    @property
    def over(self) -> bool:
        return self.status == "errored" or self.termination != "max_steps" or self.index >= self.task.max_steps

    def begin(self, obs: Observation) -> None:
        self.obs = obs
        self.instruction = self.first_instruction = obs.instruction or self.task.instruction

    def asking(self) -> None:
        self.where = f"policy at step {self.index}"

    def plan(self, out: PolicyStep, adapter: Adapter) -> None:
        actions = validate_actions(out, adapter)
        self.out, self.queue = out, list(actions[: adapter.execute_steps])

    def _keep_frame(self, obs: Observation, index: int, force: bool = False) -> int | None:
        if obs.image is None or (index % self.frame_stride and not force):
            return None
        self.frames.append(obs.image)
        self.frame_steps.append(index)
        return len(self.frames) - 1

    def next_action(self) -> np.ndarray:
        """The next pending action; keeps the frame the policy saw for it."""
        assert self.obs is not None
        self.frame = self._keep_frame(self.obs, self.index)
        self.where = f"simulator at step {self.index}"
        return self.queue[0]

    def record(self, result: StepResult) -> None:
        assert self.obs is not None and self.out is not None
        action, task = self.queue.pop(0), self.task
        self.success = result.success if task.success_mode == "final" else (self.success or result.success)
        self.steps.append(
            _step_record(
                self.eid,
                self.index,
                self.obs,
                action,
                self.out.reasoning,
                self.out.intention,
                result.reward,
                self.success,
                self.frame,
            )
        )
        self.obs = result.observation
        self.instruction = self.obs.instruction or self.instruction  # multi-stage tasks move to their next subtask
        self.index += 1
        if task.success_mode == "ever" and self.success:
            self.termination = "success"
        elif result.terminated and task.success_mode == "ever":
            self.termination = "terminated"
        if self.over:
            self.queue.clear()

    def fail(self, exc: BaseException) -> None:
        self.status, self.termination, self.success = "errored", "error", False
        self.reason = f"{type(exc).__name__} in {self.where}: {exc}"
        self.queue.clear()

    def finish(self) -> EpisodeOutcome:
        if self.obs is not None and self.status == "ok":
            self._keep_frame(self.obs, len(self.steps), force=True)  # the final state, for judges and reports
        episode = EpisodeRecord(
            episode_id=self.eid,
            task=self.task.id,
            seed=self.seed,
            instruction=self.first_instruction,
            success=bool(self.success),
            num_steps=len(self.steps),
            termination=self.termination,
            status=self.status,
            failure_reason=self.reason,
            started_at=self.started,
            duration_s=time.perf_counter() - self.t0,
            policy_time_s=self.policy_s,
            sim_time_s=self.sim_s,
        )
        return EpisodeOutcome(episode, self.steps, self.frames, self.frame_steps)


def play_episode(
    backend: Backend, adapter: Adapter, task: TaskSpec, seed: int, frame_stride: int = 1
) -> EpisodeOutcome:
    """Play one episode on an already made backend; nothing is written (see `commit`)."""
    ep = _Episode(task, seed, frame_stride)
    try:
        adapter.reset(ep.context)
        t = time.perf_counter()
        obs = backend.reset(seed)
        ep.sim_s += time.perf_counter() - t
        ep.begin(obs)
        while not ep.over:
            if not ep.queue:
                ep.asking()
                t = time.perf_counter()
                assert ep.obs is not None
                ep.plan(adapter.act(ep.obs, ep.instruction), adapter)
                ep.policy_s += time.perf_counter() - t
            action = ep.next_action()
            t = time.perf_counter()
            result = backend.step(action)
            ep.sim_s += time.perf_counter() - t
            ep.record(result)
    except Exception as exc:  # noqa: BLE001 - isolation is the point: record and go on
        ep.fail(exc)
    return ep.finish()


def play_vectorised(
    backend: Backend,
    adapter: Adapter,
    task: TaskSpec,
    seeds: Iterable[int],
    frame_stride: int = 1,
    batches: Counter[int] | None = None,
) -> Iterator[EpisodeOutcome]:
    """Play `seeds` on the backend's num_envs environments of `task` (already made), yielding each episode as it
    ends; a freed environment starts the next seed. Each environment has a fork of `adapter` (its own episode
    state); the forks that need an action are answered by one `act_each` call, then every running environment
    takes one batched step. `batches` counts the policy calls by size."""
    n = backend.num_envs
    forks = [adapter.fork() for _ in range(n)]
    slots: dict[int, _Episode] = {}  # env slot -> its episode; a free slot has none
    pending = iter(seeds)
    try:
        while True:
            starts: dict[int, int] = {}
            for slot in range(n):
                if slot not in slots and (seed := next(pending, None)) is not None:
                    ep = slots[slot] = _Episode(task, seed, frame_stride)
                    try:
                        forks[slot].reset(ep.context)
                        starts[slot] = seed
                    except Exception as exc:  # noqa: BLE001 - that episode fails, the others go on
                        ep.fail(exc)
            if starts:
                t = time.perf_counter()
                try:
                    observations = backend.reset_envs(starts)
                except Exception as exc:  # noqa: BLE001
                    for slot in starts:
                        slots[slot].fail(exc)
                else:
                    dt = time.perf_counter() - t
                    for slot in starts:
                        slots[slot].sim_s += dt
                        slots[slot].begin(observations[slot])
            ended = sorted(slot for slot, ep in slots.items() if ep.over)
            for slot in ended:
                yield slots.pop(slot).finish()
            if ended:
                continue
            if not slots:
                return
            asking = sorted(slot for slot, ep in slots.items() if not ep.queue)
            if asking:
                for slot in asking:
                    slots[slot].asking()
                t = time.perf_counter()
                outs = adapter.act_each(
                    [forks[s] for s in asking],
                    [slots[s].obs for s in asking],  # type: ignore[misc]
                    [slots[s].instruction for s in asking],
                )
                dt = time.perf_counter() - t
                if batches is not None:
                    batches[len(asking)] += 1
                for slot, out in zip(asking, outs, strict=True):
                    ep = slots[slot]
                    ep.policy_s += dt
                    try:
                        if isinstance(out, Exception):
                            raise out
                        ep.plan(out, forks[slot])
                    except Exception as exc:  # noqa: BLE001
                        ep.fail(exc)
            stepping = sorted(slot for slot, ep in slots.items() if not ep.over)
            if not stepping:
                continue
            rows = {slot: slots[slot].next_action() for slot in stepping}
            actions = np.zeros((n, len(next(iter(rows.values())))))
            for slot, row in rows.items():
                actions[slot] = row
            t = time.perf_counter()
            try:
                results = backend.step_envs(actions)
            except Exception as exc:  # noqa: BLE001
                for slot in stepping:
                    slots[slot].fail(exc)
                continue
            dt = time.perf_counter() - t
            for slot in stepping:
                slots[slot].sim_s += dt
                slots[slot].record(results[slot])
    finally:
        for fork in forks:
            fork.close()


def lost_episode(task: TaskSpec, seed: int, reason: str, started: str, duration_s: float) -> EpisodeOutcome:
    """An episode whose worker died while playing it: errored with the reason, its steps lost with the worker."""
    return EpisodeOutcome(
        EpisodeRecord(
            episode_id=episode_id(task.id, seed),
            task=task.id,
            seed=seed,
            instruction=task.instruction,
            success=False,
            num_steps=0,
            termination="error",
            status="errored",
            failure_reason=reason,
            started_at=started,
            duration_s=duration_s,
            policy_time_s=0.0,
            sim_time_s=0.0,
        ),
        [],
    )


def commit(store: RunStore, outcome: EpisodeOutcome) -> EpisodeOutcome:
    """Write the episode's frames, then its rows in one transaction; the returned outcome holds no frames."""
    t = time.perf_counter()
    eid = outcome.episode.episode_id
    frames_file = store.write_frames(eid, outcome.frames, outcome.frame_steps)
    episode = outcome.episode.model_copy(
        update={"frames_file": frames_file, "duration_s": outcome.episode.duration_s + time.perf_counter() - t}
    )
    store.write_episode(episode, outcome.steps)
    return EpisodeOutcome(episode, outcome.steps)


def run_episode(
    backend: Backend, adapter: Adapter, task: TaskSpec, seed: int, store: RunStore, frame_stride: int = 1
) -> EpisodeOutcome:
    """Run one episode on an already made backend and commit it to `store`."""
    return commit(store, play_episode(backend, adapter, task, seed, frame_stride))


def play_jobs(
    backend: Backend,
    adapter: Adapter,
    suite: Suite,
    jobs: list[Job],
    frame_stride: int = 1,
    batches: Counter[int] | None = None,
    current: str | None = None,
) -> Iterator[EpisodeOutcome]:
    """Play `jobs` in order on one backend, building a task's env when the task changes (`current`: the task whose
    env is in use). A vectorised backend plays each run of consecutive jobs of one task together."""
    k = 0
    while k < len(jobs):
        task_id = jobs[k][0]
        end = k
        while end < len(jobs) and jobs[end][0] == task_id:
            end += 1
        task = suite.task(task_id)
        if task_id != current:
            backend.make(task)
            current = task_id
        seeds = [seed for _, seed in jobs[k:end]]
        if backend.num_envs > 1:
            yield from play_vectorised(backend, adapter, task, seeds, frame_stride, batches)
        else:
            for seed in seeds:
                yield play_episode(backend, adapter, task, seed, frame_stride)
        k = end


def _run_record(
    run_id: str,
    setup: WorkerSetup,
    adapter_config: dict[str, Any],
    adapter_info: dict[str, Any],
    plan: dict[str, list[int]],
    backend_config: dict[str, Any],
) -> RunRecord:
    suite = setup.suite
    return RunRecord(
        run_id=run_id,
        adapter=setup.model,
        adapter_config=adapter_config,
        adapter_info=adapter_info,
        suite=suite.name,
        suite_fingerprint=suite.fingerprint,
        protocol_version=suite.protocol_version,
        suite_spec=suite.model_dump(mode="json"),
        tasks=list(plan),
        seeds=plan,
        backend=suite.backend,
        backend_config=backend_config,
        vlascore_version=__version__,
        git_revision=git_revision(),
        package_versions=package_versions(),
        hardware=hardware(),
        frame_stride=setup.frame_stride,
    )


EXECUTION_KEYS = ("num_envs",)
"""Backend options that change how episodes are executed, not their results: a resume may change them."""


def _check_resumable(old: RunRecord, new: RunRecord) -> None:
    def results(config: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in config.items() if k not in EXECUTION_KEYS}

    problems = [
        f"{name}: recorded {a!r}, now {b!r}"
        for name, a, b in (
            ("suite fingerprint", old.suite_fingerprint, new.suite_fingerprint),
            ("adapter", old.adapter, new.adapter),
            ("adapter config", old.adapter_config, new.adapter_config),
            ("backend config", results(old.backend_config), results(new.backend_config)),
            ("frame stride", old.frame_stride, new.frame_stride),
        )
        if a != b
    ]
    if problems:
        raise StoreError("cannot resume: the run was made with different settings; " + "; ".join(problems))


def _resumed(store: RunStore, record: RunRecord) -> RunRecord:
    """The record of a run being resumed: its creation time, the union of old and new seeds, its sessions."""
    old = store.read_run()
    _check_resumable(old, record)
    seeds = {**old.seeds, **record.seeds}
    merged = {t: list(dict.fromkeys(old.seeds.get(t, []) + record.seeds.get(t, []))) for t in seeds}
    return record.model_copy(
        update={"created_at": old.created_at, "seeds": merged, "tasks": list(merged), "sessions": old.sessions}
    )


def _todo(store: RunStore, plan: dict[str, list[int]], retry_errored: bool) -> list[Job]:
    done = store.finished_episodes()
    rerun = {"errored"} if retry_errored else set()
    return [
        (task_id, seed)
        for task_id, seeds in plan.items()
        for seed in seeds
        if done.get(episode_id(task_id, seed)) in (None, *rerun)
    ]


@dataclass
class Declared:
    """The policy as the run record states it (built where it runs: the driver, or the Ray policy actor)."""

    config: dict[str, Any]
    info: dict[str, Any]


class Executor(Protocol):
    """What `run` needs of an executor (vlascore.scale.Executor: worker processes or Ray actors), declared here so
    this module, which the workers run, does not import the package that runs them."""

    def prepare(self, setup: WorkerSetup) -> Declared: ...

    def start(self, jobs: list[Job]) -> None: ...

    def results(self) -> Iterator[EpisodeOutcome]: ...

    def session(self) -> RunSession: ...

    def close(self) -> None: ...


class InlineExecutor:
    """Plays the episodes in this process, one after another (`num_envs` at once on a vectorised backend): the
    executor `run` uses when it is given none."""

    def __init__(self) -> None:
        self._setup: WorkerSetup | None = None
        self._adapter: Adapter | None = None
        self._backend: Backend | None = None
        self._jobs: list[Job] = []
        self._batches: Counter[int] = Counter()

    def prepare(self, setup: WorkerSetup) -> Declared:
        self._setup = setup
        self._adapter = setup.make_adapter()
        self._backend = setup.make_backend()
        return Declared(self._adapter.config, self._adapter.info())

    def start(self, jobs: list[Job]) -> None:
        assert self._setup is not None and self._backend is not None, "prepare() first"
        self._jobs = jobs
        if jobs:  # build the first env before the run is written: a setup failure leaves no half-made run behind
            self._backend.make(self._setup.suite.task(jobs[0][0]))

    def results(self) -> Iterator[EpisodeOutcome]:
        assert self._setup is not None and self._backend is not None and self._adapter is not None, "prepare() first"
        first = self._jobs[0][0] if self._jobs else None
        setup = self._setup
        yield from play_jobs(
            self._backend, self._adapter, setup.suite, self._jobs, setup.frame_stride, self._batches, first
        )

    def session(self) -> RunSession:
        num_envs = self._setup.num_envs if self._setup is not None else 1
        return RunSession(executor="inline", num_envs=num_envs, batch_sizes=dict(self._batches))

    def close(self) -> None:
        for part in (self._backend, self._adapter):
            if part is not None:
                part.close()


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
    num_envs: int = 1,
    executor: Executor | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_episode: ProgressHook | None = None,
    adapter: Adapter | None = None,
) -> RunSummary:
    """Run `model` on the suite's tasks and seeds, recording into `out`. Raises before any step on bad setup.
    `adapter`: an adapter object to run instead of building `model` (recorded under the name `model`); it runs in
    this process, so not with an executor.

    `num_envs` > 1 steps that many environments at once on a vectorised backend. `executor` (vlascore.scale) plays
    the episodes in worker processes or Ray actors; without one they are played here, one after another."""
    if frame_stride < 1:
        raise ValueError("frame_stride must be >= 1")
    if num_envs < 1:
        raise ValueError("num_envs must be >= 1")
    store = RunStore(out)
    if store.exists and not resume:
        raise StoreError(f"{store.path} already holds a run: pass --resume to continue it, or choose another --out")
    plan = plan_seeds(suite, tasks, episodes)
    backend_class = BACKENDS.get(suite.backend)
    if num_envs > 1 and not backend_class.vectorised:
        raise ValueError(
            f"backend {suite.backend!r} cannot step several environments in one process (--num-envs {num_envs}): "
            "drop --num-envs, and use --workers N for parallel episodes"
        )
    options = {**(backend_options or {}), **({"num_envs": num_envs} if num_envs > 1 else {})}
    if adapter is not None and executor is not None:
        raise ValueError("an adapter object runs in this process: leave out the executor (workers), or register it")
    setup = WorkerSetup(
        suite=suite,
        model=model,
        adapter_class=type(adapter) if adapter is not None else ADAPTERS.get(model),
        model_args=dict(model_args or {}),
        backend_class=backend_class,
        backend_options=options,
        tasks=list(plan),
        frame_stride=frame_stride,
        instance=adapter,
    )
    executor = executor if executor is not None else InlineExecutor()
    return _run_executor(executor, setup, store, plan, retry_errored, on_start, on_episode)


def _count(summary: RunSummary, outcome: EpisodeOutcome, on_episode: ProgressHook | None) -> None:
    summary.ran += 1
    summary.errored += outcome.episode.status == "errored"
    summary.successes += outcome.episode.success
    summary.episode_ids.append(outcome.episode.episode_id)
    if on_episode:
        on_episode(outcome.episode)


def _close_session(
    store: RunStore, record: RunRecord, session: RunSession, episodes: list[EpisodeRecord], began: float
) -> None:
    """Rewrite run.json with this invocation's session and its figures (also after an interruption)."""
    wall = time.perf_counter() - began
    update: dict[str, Any] = {"episodes": len(episodes), "wall_s": round(wall, 3)}
    if session.policy == "per-worker":
        busy = sum(e.policy_time_s for e in episodes)
        spent = sum(e.duration_s for e in episodes)
        update |= {"policy_busy_s": round(busy, 3), "policy_share": round(busy / spent, 4) if spent else None}
    elif wall > 0:
        update["policy_share"] = round(session.policy_busy_s / wall, 4)
    done = session.model_copy(update=update)
    store.write_run(record.model_copy(update={"sessions": [*record.sessions, done]}))


def _run_executor(
    executor: Executor,
    setup: WorkerSetup,
    store: RunStore,
    plan: dict[str, list[int]],
    retry_errored: bool,
    on_start: Callable[[int, int], None] | None,
    on_episode: ProgressHook | None,
) -> RunSummary:
    record: RunRecord | None = None
    began: float | None = None
    played: list[EpisodeRecord] = []
    try:
        backend = setup.make_backend()  # built here only to check the options and describe them; workers make envs
        backend_config = backend.describe()
        backend.close()
        declared = executor.prepare(setup)
        record = _run_record(store.path.name, setup, declared.config, declared.info, plan, backend_config)
        if store.exists:
            record = _resumed(store, record)
        todo = _todo(store, plan, retry_errored)
        executor.start(todo)  # workers up and their first envs built: a setup failure leaves no half-made run
        store.write_run(record)
        began = time.perf_counter()
        summary = RunSummary(store=store, skipped=sum(len(s) for s in plan.values()) - len(todo))
        if on_start:
            on_start(len(todo), summary.skipped)
        for outcome in executor.results():
            committed = commit(store, outcome)
            played.append(committed.episode)
            _count(summary, committed, on_episode)
    finally:
        executor.close()
        if record is not None and began is not None:
            _close_session(store, record, executor.session(), played, began)
        store.close()
    return summary
