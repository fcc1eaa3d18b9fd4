"""A shared policy across processes: the host that owns the adapter (and its Batcher), and the proxy each worker
plays with. They speak plain tuples through any `call(request) -> reply` function: a pipe to the driver (local
executor) or a Ray actor method (Ray executor).

Requests: ("open",) -> session id; ("reset", id, EpisodeContext) -> the fork's declaration; ("act", [ids],
[observations], [instructions]) -> a PolicyStep or an exception per id; ("close", id). Replies: ("ok", value) or
("error", exception).
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from typing import Any

from vlascore.adapters.base import Adapter, EpisodeContext, PolicyStep
from vlascore.backends.base import Observation
from vlascore.scale.batching import Batcher, BatchStats, Session, declaration

Call = Callable[[tuple[Any, ...]], Any]


class PolicyCallError(RuntimeError):
    """An exception from the shared policy that could not travel as itself (its type name leads the message)."""


def portable(exc: BaseException) -> Exception:
    """`exc` itself when it survives pickling, else a PolicyCallError naming it."""
    try:
        pickle.loads(pickle.dumps(exc))
        if isinstance(exc, Exception):
            return exc
    except Exception:  # noqa: BLE001 - unpicklable exceptions are common (extension types, lambdas in args)
        pass
    return PolicyCallError(f"{type(exc).__name__}: {exc}")


class PolicyHost:
    """Owns the shared adapter and its Batcher; `handle` answers one request (from any thread)."""

    def __init__(self, adapter: Adapter, max_batch_size: int = 1, max_wait_ms: float = 0.0) -> None:
        self.adapter = adapter
        self.batcher = Batcher(adapter, max_batch_size, max_wait_ms)
        self._sessions: dict[int, Session] = {}
        self._next = 0
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """What a proxy and the run record need: the adapter's config, info and declaration."""
        return {"config": dict(self.adapter.config), "info": self.adapter.info(), "declared": declaration(self.adapter)}

    def stats(self) -> BatchStats:
        return self.batcher.stats

    def handle(self, request: tuple[Any, ...]) -> tuple[str, Any]:
        try:
            kind = request[0]
            if kind == "open":
                session = self.batcher.session()
                with self._lock:
                    self._next += 1
                    self._sessions[self._next] = session
                    return ("ok", self._next)
            if kind == "reset":
                session = self._sessions[request[1]]
                session.reset(request[2])
                return ("ok", declaration(session))
            if kind == "act":
                sessions = [self._sessions[i] for i in request[1]]
                results = self.batcher.act_many(sessions, request[2], request[3])
                return ("ok", [r if isinstance(r, PolicyStep) else portable(r) for r in results])
            if kind == "close":
                with self._lock:
                    closing = self._sessions.pop(request[1], None)
                if closing is not None:
                    closing.close()
                return ("ok", None)
            raise ValueError(f"unknown shared-policy request {kind!r}")
        except Exception as exc:  # noqa: BLE001 - the worker's episode records it
            return ("error", portable(exc))

    def close(self) -> None:
        """Close every session, the batcher and the adapter."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()
        self.batcher.close()
        self.adapter.close()


def _reply(raw: tuple[str, Any]) -> Any:
    status, value = raw
    if status == "error":
        raise value
    return value


class PolicyProxy(Adapter):
    """A worker's stream of episodes on a shared policy in another process; forks are more sessions on it, and
    `act_each` sends all their requests in one call so that the host batches them."""

    def __init__(self, call: Call, described: dict[str, Any]) -> None:
        super().__init__(**described["config"])
        self._call, self._described = call, described
        for key, value in described["declared"].items():
            setattr(self, key, value)
        self._id: int | None = _reply(call(("open",)))

    def reset(self, context: EpisodeContext) -> None:
        for key, value in _reply(self._call(("reset", self._id, context))).items():
            setattr(self, key, value)

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        (result,) = _reply(self._call(("act", [self._id], [obs], [instruction])))
        if isinstance(result, Exception):
            raise result
        assert isinstance(result, PolicyStep)
        return result

    def fork(self) -> Adapter:
        return PolicyProxy(self._call, self._described)

    def act_each(
        self, forks: list[Adapter], observations: list[Observation], instructions: list[str]
    ) -> list[PolicyStep | Exception]:
        proxies = [f for f in forks if isinstance(f, PolicyProxy) and f._call is self._call]
        if len(proxies) != len(forks):
            return super().act_each(forks, observations, instructions)
        results: list[PolicyStep | Exception] = _reply(
            self._call(("act", [p._id for p in proxies], list(observations), list(instructions)))
        )
        return results

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = self._described["info"]
        return info

    def close(self) -> None:
        if self._id is not None:
            ident, self._id = self._id, None
            try:
                self._call(("close", ident))
            except Exception:  # noqa: BLE001 - the host may be gone already (shutting down)
                pass
