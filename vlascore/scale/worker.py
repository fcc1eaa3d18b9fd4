"""An episode worker: one backend and a policy (its own adapter, or a proxy of the shared one), playing the jobs an
executor hands it through `runner.play_jobs`. `process_main` runs one in a local worker process; the Ray executor
wraps one in an actor."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
from collections import Counter
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from vlascore.adapters.base import Adapter
from vlascore.runner import EpisodeOutcome, Job, WorkerSetup, play_jobs
from vlascore.scale.policy import PolicyProxy, portable


class EpisodeWorker:
    """Plays jobs (episodes of one task) on its backend, keeping every env it built; stamps each episode with the
    worker's name and node (provenance)."""

    def __init__(self, setup: WorkerSetup, name: str, node: str, policy: Adapter | None = None) -> None:
        self.setup, self.name, self.node = setup, name, node
        self.batches: Counter[int] = Counter()
        """Vectorised envs: policy calls by batch size."""
        self.backend = setup.make_backend()
        try:
            self.adapter = policy if policy is not None else setup.make_adapter()
        except BaseException:
            self.backend.close()
            raise
        self.current: str | None = None

    def make(self, task_id: str) -> None:
        """Build (or switch to) the env of `task_id`; a failure here is a setup error that stops the run."""
        if task_id != self.current:
            self.backend.make(self.setup.suite.task(task_id))
            self.current = task_id

    def play(self, jobs: list[Job]) -> Iterator[EpisodeOutcome]:
        self.make(jobs[0][0])
        suite, stride = self.setup.suite, self.setup.frame_stride
        for outcome in play_jobs(self.backend, self.adapter, suite, jobs, stride, self.batches, self.current):
            outcome.episode = outcome.episode.model_copy(update={"worker": self.name, "node": self.node})
            yield outcome
        self.current = jobs[-1][0]

    def close(self) -> None:
        try:
            self.backend.close()
        finally:
            self.adapter.close()


def _exit_with_parent() -> None:
    """Linux: get SIGKILL when the driver dies, whatever kills it (kill -9 included), so no worker is orphaned."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    parent = os.environ.get("VLASCORE_DRIVER_PID")
    if parent and os.getppid() != int(parent):  # the driver died before prctl took effect
        os._exit(1)


def _pipe_call(conn: Connection) -> Any:
    def call(request: tuple[Any, ...]) -> Any:
        conn.send(request)
        return conn.recv()

    return call


def process_main(
    conn: Connection, policy_conn: Connection | None, setup: WorkerSetup, name: str, described: dict[str, Any] | None
) -> None:
    """A local worker process: messages to the driver are ("ready", node), ("made", task), ("episode", outcome),
    ("idle", None) after each job, and ("fatal", exception) for a setup failure (it then exits). Ctrl-C is the
    driver's to handle: the worker ignores SIGINT and is stopped by the driver."""
    _exit_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        policy = PolicyProxy(_pipe_call(policy_conn), described) if policy_conn is not None and described else None
        worker = EpisodeWorker(setup, f"{name} (pid {os.getpid()})", socket.gethostname(), policy)
    except BaseException as exc:  # noqa: BLE001 - reported to the driver, which stops the run with it
        conn.send(("fatal", portable(exc)))
        return
    try:
        conn.send(("ready", worker.node))
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            if message[0] == "stop":
                return
            jobs: list[Job] = message[1]
            try:
                worker.make(jobs[0][0])
                conn.send(("made", jobs[0][0]))
                for outcome in worker.play(jobs):
                    conn.send(("episode", outcome))
            except Exception as exc:  # noqa: BLE001 - an env that cannot be built stops the run, as in-process
                conn.send(("fatal", portable(exc)))
                return
            conn.send(("idle", dict(worker.batches)))
    finally:
        worker.close()
