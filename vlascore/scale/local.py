"""Local worker processes (`vlascore run --workers N`): the executor for one machine.

Workers are started with the `spawn` method (simulators, CUDA and torch do not survive fork) and talk to the driver
through pipes; the driver waits on the pipes and the processes' sentinels together, so a worker that dies (a
segfault in a simulator, an out-of-memory kill, kill -9) is noticed at once and its pipe drained of the episodes it
finished first. A shared policy lives in the driver: one thread per worker forwards that worker's requests to the
PolicyHost, whose Batcher gathers them across workers.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from vlascore.runner import Job, WorkerSetup
from vlascore.scale.batching import BatchStats
from vlascore.scale.executor import Declared, Event, Executor
from vlascore.scale.policy import PolicyHost
from vlascore.scale.worker import process_main

STOP_GRACE_S = 2.0
"""How long idle workers get to exit after `stop` before they are terminated."""


def exit_reason(exitcode: int | None) -> str:
    """A process's end in words: the signal that killed it, or its exit code."""
    if exitcode is None:
        return "stopped responding"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory, or kill -9)" if name == "SIGKILL" else " (a crash in native code)"
        return f"killed by {name}{hint if name in ('SIGKILL', 'SIGSEGV', 'SIGABRT', 'SIGBUS') else ''}"
    return f"exited with code {exitcode}"


class LocalExecutor(Executor):
    """N worker processes on this machine; see the module docstring."""

    kind = "local"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._context = multiprocessing.get_context("spawn")
        self._procs: dict[int, BaseProcess] = {}
        self._conns: dict[int, Connection] = {}
        self._pids: dict[int, int | None] = {}
        self._host: PolicyHost | None = None
        self._described: dict[str, Any] | None = None

    def prepare(self, setup: WorkerSetup) -> Declared:
        self.setup = setup
        adapter = setup.make_adapter()
        if self.policy == "shared":
            self._host = PolicyHost(adapter, self.max_batch_size, self.max_wait_ms)
            self._described = self._host.describe()
            return Declared(self._described["config"], self._described["info"])
        try:  # built here for the checks and the run record; each worker builds its own
            return Declared(dict(adapter.config), adapter.info())
        finally:
            adapter.close()

    def worker_pids(self) -> dict[int, int]:
        """Worker slot -> process id of the live workers."""
        return {slot: proc.pid for slot, proc in self._procs.items() if proc.pid is not None and proc.is_alive()}

    def _spawn(self, slot: int) -> None:
        assert self.setup is not None
        conn, child = self._context.Pipe()
        policy_child = None
        if self._host is not None:
            policy_conn, policy_child = self._context.Pipe()
            threading.Thread(
                target=self._serve, args=(policy_conn,), name=f"vlascore-policy-w{slot}", daemon=True
            ).start()
        os.environ["VLASCORE_DRIVER_PID"] = str(os.getpid())  # the worker checks it is still the driver's child
        proc = self._context.Process(
            target=process_main,
            args=(child, policy_child, self.setup, f"w{slot}", self._described),
            name=f"vlascore-worker-w{slot}",
        )
        proc.start()
        child.close()
        if policy_child is not None:
            policy_child.close()
        self._procs[slot], self._conns[slot], self._pids[slot] = proc, conn, proc.pid

    def _serve(self, conn: Connection) -> None:
        """Forward one worker's shared-policy requests; close its sessions when it goes away."""
        assert self._host is not None
        opened: list[int] = []
        try:
            while True:
                request = conn.recv()
                reply = self._host.handle(request)
                if request[0] == "open" and reply[0] == "ok":
                    opened.append(reply[1])
                conn.send(reply)
        except (EOFError, OSError):
            pass
        finally:
            for ident in opened:
                self._host.handle(("close", ident))
            conn.close()

    def _send(self, slot: int, jobs: list[Job]) -> None:
        self._conns[slot].send(("job", jobs))

    def _wait(self, timeout: float) -> list[Event]:
        owners: dict[Any, tuple[int, bool]] = {}
        for slot, conn in self._conns.items():
            owners[conn] = (slot, False)
            owners[self._procs[slot].sentinel] = (slot, True)
        if not owners:
            return []
        events: list[Event] = []
        ready = wait(list(owners), timeout)
        for obj in sorted(ready, key=lambda o: owners[o][1]):  # messages before deaths
            slot, is_sentinel = owners[obj]
            if slot not in self._conns:
                continue
            events += self._drain(slot)
            if is_sentinel:
                proc = self._procs.pop(slot)
                proc.join(5)
                self._conns.pop(slot).close()
                events.append(Event("died", slot, exit_reason(proc.exitcode)))
        return events

    def _drain(self, slot: int) -> list[Event]:
        conn, events = self._conns[slot], []
        try:
            while conn.poll():
                kind, payload = conn.recv()
                events.append(Event(kind, slot, payload))
        except (EOFError, OSError):
            pass  # the sentinel reports the death
        return events

    def _describe(self, slot: int) -> str:
        pid = self._pids.get(slot)
        return f"worker w{slot}" + (f" (pid {pid})" if pid is not None else "")

    def _stop(self) -> None:
        """Idle workers are asked to stop; busy ones (an interruption) are terminated at once; any left after the
        grace period are killed. Every process is joined: none is left behind."""
        busy = {slot for slot, state in self._slots.items() if state.working}
        for slot, conn in self._conns.items():
            if slot not in busy:
                try:
                    conn.send(("stop", None))
                except (OSError, ValueError):
                    pass
        for slot, proc in self._procs.items():
            if slot in busy and proc.is_alive():
                proc.terminate()
        for proc in self._procs.values():
            proc.join(STOP_GRACE_S)
        for proc in self._procs.values():
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for conn in self._conns.values():
            conn.close()
        self._procs.clear()
        self._conns.clear()
        if self._host is not None:
            self._host.close()

    def _policy_stats(self) -> BatchStats | None:
        return self._host.stats() if self._host is not None else None
