"""The executor interface: how a run's episodes are played by workers, with two implementations (local processes in
vlascore.scale.local, Ray actors in vlascore.scale.ray_actors). The scheduling is here, once: workers start and
build their first environments before the run is written, free workers take jobs from the work plan (keeping to the
tasks they built), outcomes come back to the driver (`runner.run`, the run store's only writer), and a worker that
dies costs only the episodes it was playing, recorded `errored` with the reason, while a replacement takes its
place. Subclasses only move messages: spawn a worker, send it a job, wait for events, stop everything.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from vlascore.records import RunSession, utcnow
from vlascore.runner import Declared, EpisodeOutcome, Job, WorkerSetup, episode_id, lost_episode
from vlascore.scale.batching import BatchStats
from vlascore.scale.plan import WorkPlan

POLICY_MODES = ("per-worker", "shared")
WAIT_S = 1.0
"""Longest single wait for worker events: a stopped or dead worker is noticed within it."""


class WorkerFailed(RuntimeError):
    """A worker could not start (or died while starting): the run stops before anything is written."""


@dataclass
class Event:
    """Something a worker reported: ready (payload: node), made (task), episode (EpisodeOutcome), idle (its
    vectorised batch counts), fatal (the exception that stops the run) or died (the reason)."""

    kind: str
    slot: int
    payload: Any = None


@dataclass
class _Slot:
    ready: bool = False
    made: bool = False
    built: list[str] = field(default_factory=list)
    """Tasks whose env the worker has built, most recent first."""
    jobs: list[Job] = field(default_factory=list)
    """Episodes handed to it and not back yet."""
    working: bool = False
    """Between a job's dispatch and the worker's idle report."""
    started: str = ""
    t0: float = 0.0
    batches: dict[int, int] = field(default_factory=dict)


class Executor(ABC):
    """Plays a run's episodes on `workers` workers; `policy` is per-worker (each builds its own adapter) or shared
    (one adapter, with dynamic batching, serves every worker). `runner.run` calls prepare, start, results, close."""

    kind = ""

    def __init__(
        self, workers: int = 1, policy: str = "per-worker", max_batch_size: int = 8, max_wait_ms: float = 5.0
    ) -> None:
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        if policy not in POLICY_MODES:
            raise ValueError(f"--policy must be one of {', '.join(POLICY_MODES)}, not {policy!r}")
        if max_batch_size < 1 or max_wait_ms < 0:
            raise ValueError(f"--max-batch-size must be >= 1 and --max-wait-ms >= 0 ({max_batch_size}, {max_wait_ms})")
        self.workers, self.policy = int(workers), policy
        self.max_batch_size, self.max_wait_ms = int(max_batch_size), float(max_wait_ms)
        self.setup: WorkerSetup | None = None
        self.restarts = 0
        self._slots: dict[int, _Slot] = {}
        self._plan = WorkPlan([])
        self._buffer: list[EpisodeOutcome] = []
        self._closed = False

    # -- what an implementation provides ---------------------------------------------------------------------------

    @abstractmethod
    def prepare(self, setup: WorkerSetup) -> Declared:
        """Build and check the policy where it will run (raises on a bad model, options or convention)."""

    @abstractmethod
    def _spawn(self, slot: int) -> None:
        """Start worker `slot` (its first event is ready, fatal or died)."""

    @abstractmethod
    def _send(self, slot: int, jobs: list[Job]) -> None:
        """Hand worker `slot` a job: it answers made, one episode event per job entry, then idle."""

    @abstractmethod
    def _wait(self, timeout: float) -> list[Event]:
        """Events that arrive within `timeout` seconds (maybe none)."""

    @abstractmethod
    def _describe(self, slot: int) -> str:
        """The worker in words, for reasons: `worker w1 (pid 4242)`."""

    @abstractmethod
    def _stop(self) -> None:
        """Stop every worker and the shared policy, leaving no process behind (bounded in time)."""

    def _policy_stats(self) -> BatchStats | None:
        """The shared policy's measurements (None for per-worker policies)."""
        return None

    def _session_extra(self) -> dict[str, Any]:
        return {}

    # -- scheduling --------------------------------------------------------------------------------------------------

    def busy(self) -> int:
        """Workers playing an episode now."""
        return sum(1 for s in self._slots.values() if s.working)

    def in_flight(self) -> dict[int, list[str]]:
        """Worker slot -> ids of the episodes it is playing."""
        return {k: [episode_id(t, s) for t, s in slot.jobs] for k, slot in self._slots.items() if slot.jobs}

    def start(self, jobs: list[Job]) -> None:
        """Start the workers and give each its first job; returns once each has built that job's env (raises the
        first setup failure, having stopped everything)."""
        assert self.setup is not None, "prepare() first"
        self._plan = WorkPlan(jobs, self.setup.num_envs)
        try:
            for slot in range(min(self.workers, self._plan.chunks())):
                self._slots[slot] = _Slot()
                self._spawn(slot)
            while any(not s.ready for s in self._slots.values()):
                self._buffer += self._events(starting=True)
            for slot in list(self._slots):
                self._dispatch(slot)
            while any(s.working and not s.made for s in self._slots.values()):
                self._buffer += self._events(starting=True)
        except BaseException:
            self.close()
            raise

    def results(self) -> Iterator[EpisodeOutcome]:
        """Every episode's outcome as it comes back, until the plan is done."""
        while self._buffer:
            yield self._buffer.pop(0)
        while True:
            for slot, state in self._slots.items():
                if state.ready and not state.working:
                    self._dispatch(slot)
            if not len(self._plan) and not any(s.working for s in self._slots.values()):
                return
            yield from self._events(starting=False)

    def _dispatch(self, slot: int) -> None:
        state = self._slots[slot]
        busy = Counter(t for s in self._slots.values() for t, _ in s.jobs[:1])
        jobs = self._plan.take(state.built, busy)
        if not jobs:
            return
        task = jobs[0][0]
        state.made = task in state.built
        state.built = [task, *(t for t in state.built if t != task)]
        state.jobs, state.started, state.t0, state.working = list(jobs), utcnow(), time.perf_counter(), True
        self._send(slot, jobs)

    def _events(self, starting: bool) -> list[EpisodeOutcome]:
        out: list[EpisodeOutcome] = []
        for event in self._wait(WAIT_S):
            state = self._slots.get(event.slot)
            if state is None:
                continue
            if event.kind == "ready":
                state.ready = True
            elif event.kind == "made":
                state.made = True
            elif event.kind == "episode":
                outcome: EpisodeOutcome = event.payload
                key = (outcome.episode.task, outcome.episode.seed)
                if key in state.jobs:
                    state.jobs.remove(key)
                out.append(outcome)
            elif event.kind == "idle":
                self._plan.give_back(state.jobs)  # none, unless a worker returned fewer episodes than it was given
                state.jobs, state.working, state.batches = [], False, dict(event.payload or {})
            elif event.kind == "fatal":
                raise event.payload
            elif event.kind == "died":
                out += self._died(event.slot, str(event.payload), starting)
        return out

    def _died(self, slot: int, reason: str, starting: bool) -> list[EpisodeOutcome]:
        state = self._slots[slot]
        who = self._describe(slot)
        if starting or not state.ready:
            raise WorkerFailed(f"{who} died while starting: {reason}")
        assert self.setup is not None
        lost = [
            lost_episode(
                self.setup.suite.task(t), s, f"{who} died: {reason}", state.started, time.perf_counter() - state.t0
            )
            for t, s in state.jobs
        ]
        self.restarts += 1
        self._slots[slot] = _Slot()
        if len(self._plan):
            self._spawn(slot)
        else:
            del self._slots[slot]
        return lost

    # -- the end ----------------------------------------------------------------------------------------------------

    def session(self) -> RunSession:
        """What this executor did, for the run record."""
        stats = self._policy_stats()
        batches: Counter[int] = Counter()
        for state in self._slots.values():
            batches.update(state.batches)
        fields: dict[str, Any] = {}
        if stats is not None:
            batches.update(stats.batch_sizes)
            fields = {"policy_busy_s": round(stats.busy_s, 3), "policy_calls": stats.calls}
        assert self.setup is not None
        return RunSession(
            executor=self.kind,
            workers=self.workers,
            num_envs=self.setup.num_envs,
            policy=self.policy,
            max_batch_size=self.max_batch_size if self.policy == "shared" else 1,
            max_wait_ms=self.max_wait_ms if self.policy == "shared" else 0.0,
            batch_sizes=dict(sorted(batches.items())),
            worker_restarts=self.restarts,
            **fields,
            **self._session_extra(),
        )

    def close(self) -> None:
        """Stop every worker (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop()
