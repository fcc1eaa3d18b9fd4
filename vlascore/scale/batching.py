"""Dynamic batching in front of one adapter: many concurrent episodes, one copy of the model.

A `Batcher` owns an adapter and a thread that makes every call to it (adapters are not thread-safe, and a GPU runs
one forward at a time anyway). Each stream of episodes opens a `Session` — an Adapter whose calls are queued to the
batcher and answered on the session's own fork of the adapter (its own episode state; see `Adapter.fork`). Act
requests that arrive within `max_wait_ms` of the first are gathered, up to `max_batch_size`, and answered by one
`act_each` call: one batched forward pass for adapters that batch (`act_forks`). A batch also goes as soon as every
open session is waiting, since no other request can come.

Anything that receives requests can submit them: the local executor's pipe threads, the Ray policy actor, and the
policy server's connection handlers (`vlascore serve --max-batch-size`) all hand a Session's calls to one Batcher.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from vlascore.adapters.base import Adapter, EpisodeContext, PolicyStep
from vlascore.backends.base import Observation

DECLARED = ("action_space", "chunk_size", "execute_steps", "reasons", "uses_privileged_state", "name")
"""What a proxy of an adapter copies from it: what the runner reads to validate and execute its actions."""


class BatcherClosed(RuntimeError):
    """The shared policy was shut down while a request was waiting."""


def declaration(adapter: Adapter) -> dict[str, Any]:
    """The attributes a proxy mirrors (they may change at reset: a task's convention, converted to)."""
    return {k: getattr(adapter, k) for k in DECLARED}


@dataclass
class BatchStats:
    """What a shared policy measured: batch sizes, requests answered, and the time it spent computing."""

    batch_sizes: Counter[int] = field(default_factory=Counter)
    """Batch size -> number of batched calls of that size."""
    calls: int = 0
    """Act requests answered."""
    busy_s: float = 0.0
    """Seconds spent in the adapter (resets and act calls)."""

    def merge(self, other: BatchStats) -> None:
        self.batch_sizes.update(other.batch_sizes)
        self.calls += other.calls
        self.busy_s += other.busy_s


@dataclass
class _Request:
    kind: str
    """open, reset, act or close."""
    session: Session
    payload: Any = None
    result: Any = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


_STOP = object()


class Batcher:
    """Serves one adapter to many sessions, batching their act requests (see the module docstring)."""

    def __init__(self, adapter: Adapter, max_batch_size: int = 1, max_wait_ms: float = 0.0) -> None:
        if max_batch_size < 1 or max_wait_ms < 0:
            raise ValueError(f"--max-batch-size must be >= 1 and --max-wait-ms >= 0 ({max_batch_size}, {max_wait_ms})")
        self.adapter = adapter
        self.max_batch_size = int(max_batch_size)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self.stats = BatchStats()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._open = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="vlascore-batcher", daemon=True)
        self._thread.start()

    # -- what sessions call (any thread) --------------------------------------------------------------------------

    def session(self) -> Session:
        """A new stream of episodes with its own fork of the adapter."""
        session = Session(self)
        self._call(_Request("open", session))
        return session

    def act_many(
        self, sessions: list[Session], observations: list[Observation], instructions: list[str]
    ) -> list[PolicyStep | Exception]:
        """Several sessions' act requests submitted at once (one worker stepping several environments)."""
        requests = [_Request("act", s, (o, i)) for s, o, i in zip(sessions, observations, instructions, strict=True)]
        for request in requests:
            self._submit(request)
        out: list[PolicyStep | Exception] = []
        for request in requests:
            self._wait(request)
            out.append(request.result if request.error is None else _exception(request.error))
        return out

    def close(self) -> None:
        """Stop the thread; requests still queued fail with BatcherClosed. Does not close the adapter."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        self._thread.join(10)

    def _submit(self, request: _Request) -> None:
        with self._lock:
            if self._closed:
                raise BatcherClosed("the shared policy has been shut down")
            self._queue.put(request)

    def _wait(self, request: _Request) -> None:
        while not request.done.wait(0.5):
            if not self._thread.is_alive():
                raise BatcherClosed("the shared policy has been shut down")

    def _call(self, request: _Request) -> Any:
        self._submit(request)
        self._wait(request)
        if request.error is not None:
            raise request.error
        return request.result

    # -- the batcher thread ----------------------------------------------------------------------------------------

    def _loop(self) -> None:
        acts: list[_Request] = []
        deadline = 0.0
        while True:
            if acts:
                timeout = deadline - time.perf_counter()
                try:
                    item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
                except queue.Empty:
                    item = None
            else:
                item = self._queue.get()
            if item is _STOP:
                self._answer(acts)
                self._drain()
                return
            if item is None:  # the wait is over
                self._answer(acts)
                acts = []
                continue
            request: _Request = item
            if request.kind != "act":
                self._handle(request)
            else:
                if not acts:
                    deadline = time.perf_counter() + self.max_wait_s
                acts.append(request)
            if acts and (len(acts) >= self.max_batch_size or len(acts) >= self._open):
                self._answer(acts)  # full, or every open session is waiting: nothing else can come
                acts = []

    def _handle(self, request: _Request) -> None:
        t = time.perf_counter()
        session = request.session
        try:
            if request.kind == "open":
                session.fork_of = self.adapter.fork()
                self._open += 1
            elif request.kind == "reset":
                assert session.fork_of is not None
                session.fork_of.reset(request.payload)
                request.result = declaration(session.fork_of)
            elif request.kind == "close":
                if session.fork_of is not None:
                    self._open -= 1
                    fork, session.fork_of = session.fork_of, None
                    fork.close()
        except Exception as exc:  # noqa: BLE001 - the session's caller gets it
            request.error = exc
        self.stats.busy_s += time.perf_counter() - t
        request.done.set()

    def _answer(self, acts: list[_Request]) -> None:
        if not acts:
            return
        live = [r for r in acts if r.session.fork_of is not None]
        for r in acts:
            if r.session.fork_of is None:
                r.error = BatcherClosed("act on a closed session")
        t = time.perf_counter()
        try:
            results = self.adapter.act_each(
                [r.session.fork_of for r in live],  # type: ignore[misc]
                [r.payload[0] for r in live],
                [r.payload[1] for r in live],
            )
        except Exception as exc:  # noqa: BLE001 - act_each isolates calls; this is the adapter itself failing
            results = [exc] * len(live)
        self.stats.busy_s += time.perf_counter() - t
        self.stats.batch_sizes[len(live)] += 1
        self.stats.calls += len(live)
        for request, result in zip(live, results, strict=True):
            if isinstance(result, Exception):
                request.error = result
            else:
                request.result = result
        for request in acts:
            request.done.set()

    def _drain(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Request):
                item.error = BatcherClosed("the shared policy has been shut down")
                item.done.set()


def _exception(error: BaseException) -> Exception:
    return error if isinstance(error, Exception) else RuntimeError(f"{type(error).__name__}: {error}")


class Session(Adapter):
    """One stream of episodes on a Batcher: an Adapter whose calls are answered, in the batcher's thread, by its own
    fork of the shared adapter. Its declaration follows the fork's (a task's convention, after reset)."""

    def __init__(self, batcher: Batcher) -> None:
        super().__init__(**batcher.adapter.config)
        self._batcher = batcher
        self.fork_of: Adapter | None = None
        """The fork answering this session (set and used in the batcher's thread)."""
        for key, value in declaration(batcher.adapter).items():
            setattr(self, key, value)

    def reset(self, context: EpisodeContext) -> None:
        for key, value in self._batcher._call(_Request("reset", self, context)).items():
            setattr(self, key, value)

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        result: PolicyStep = self._batcher._call(_Request("act", self, (obs, instruction)))
        return result

    def fork(self) -> Adapter:
        return self._batcher.session()

    def act_each(
        self, forks: list[Adapter], observations: list[Observation], instructions: list[str]
    ) -> list[PolicyStep | Exception]:
        sessions = [f for f in forks if isinstance(f, Session) and f._batcher is self._batcher]
        if len(sessions) != len(forks):
            return super().act_each(forks, observations, instructions)
        return self._batcher.act_many(sessions, observations, instructions)

    def info(self) -> dict[str, Any]:
        return self._batcher.adapter.info()

    def close(self) -> None:
        if self.fork_of is not None:
            try:
                self._batcher._call(_Request("close", self))
            except BatcherClosed:
                pass
