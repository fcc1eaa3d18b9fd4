"""What every protocol of `vlascore serve` shares: the Speaker interface a connection handler implements, and the
episodes of clients whose protocol has no vlascore `reset` (openpi, vla-eval).

PolicyServer (server.py) accepts a connection, takes an adapter instance (or a batching session) from its pool, and
hands both to its protocol's Speaker, which converses until the client leaves. So the pool, the batching queue, the
client limit and the API key work the same for every protocol.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from vlascore.adapters.base import Adapter, EpisodeContext, PolicyStep
from vlascore.backends.base import Observation
from vlascore.serving.wire import ProtocolError, withheld_privileged
from vlascore.suites import ActionSpace, TaskSpec


@dataclass
class Connection:
    """One client's connection, as a Speaker sees it."""

    ws: Any
    peer: str
    log: Callable[[str], None]
    calls: int = 0
    """Requests answered so far (for the disconnect log line)."""


class Speaker(ABC):
    """One protocol's side of a connection of `vlascore serve`."""

    protocol: str = ""

    @abstractmethod
    def refuse(self, connection: Connection, error_type: str, message: str, code: int, traceback: str = "") -> None:
        """Turn the client away (busy server, failed adapter build) and close with `code`."""

    @abstractmethod
    def converse(self, connection: Connection, adapter: Adapter) -> None:
        """Serve the client with `adapter` until it disconnects (ConnectionClosed may propagate)."""


def close_with(connection: Connection, code: int, reason: str) -> None:
    """Close with a code and a reason (the reason is cut to WebSocket's 123 bytes)."""
    connection.ws.close(code, reason.encode()[:120].decode(errors="ignore"))


def _safe_id(name: str, fallback: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._+-")[:100]
    return cleaned or fallback


@dataclass
class ForeignEpisodes:
    """Episodes of a connection whose protocol has no vlascore `reset`: the adapter is reset at an episode's first
    observation, when its instruction is known, with a task made from what the client said (a name, a seed).

    `begin()` marks an episode boundary (openpi: the connection, or its `__ctrl__` message; vla-eval: episode_start).
    """

    adapter: Adapter
    source: str
    """`openpi` or `vla-eval`: the task's env_id and the fallback task name."""
    space: ActionSpace
    """The served adapter's convention, given to it as the task's (nothing converts on this side)."""
    started: int = 0
    """Episodes started on this connection."""
    _pending: bool = True
    _name: str = ""
    _seed: int | None = None
    _step: int = 0

    def begin(self, name: str = "", seed: Any = None) -> None:
        self._pending, self._name = True, str(name or "")
        self._seed = int(seed) if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else None

    def act(self, image: np.ndarray | None, state: np.ndarray | None, instruction: str) -> PolicyStep:
        """The adapter's answer to one observation (resetting it first at an episode's first one)."""
        if self._pending:
            self.started += 1
            seed = self._seed if self._seed is not None else self.started - 1
            task = TaskSpec(
                id=_safe_id(self._name, self.source),
                env_id=self.source,
                instruction=instruction or "(no instruction)",
                action_space=self.space,
                resolution=None if image is None else (int(image.shape[1]), int(image.shape[0])),
                seeds=[seed],
            )
            self._pending = False
            self._step = 0
            self.adapter.reset(EpisodeContext(task=task, seed=seed, episode_id=f"{task.id}-{self.started}"))
        proprio = {} if state is None else {"state": np.asarray(state)}
        obs = Observation(image=image, proprio=proprio, privileged=withheld_privileged(), step=self._step)
        step = self.adapter.act(obs, instruction)
        if not isinstance(step, PolicyStep):
            raise TypeError(f"act() must return a PolicyStep, got {type(step).__name__}")
        self._step += 1
        return step


def action_chunk(step: PolicyStep) -> np.ndarray:
    """The step's actions as a (k, dim) array, in the dtype the policy returned."""
    actions = np.asarray(step.action)
    if actions.dtype.kind not in "biuf":
        raise TypeError(f"act() returned a non-numeric action ({actions.dtype})")
    return actions[None, :] if actions.ndim == 1 else actions


def image_of(value: Any, preferred: tuple[str, ...] = ()) -> np.ndarray | None:
    """The camera image of an observation map: the first of the `preferred` keys that holds an image, else the first
    HxWx3 uint8 array found (nested maps searched in order, a few levels deep)."""
    for key in preferred:
        found = value.get(key) if isinstance(value, dict) else None
        if _is_image(found):
            return np.asarray(found)
    return next(_images(value, depth=3), None)


def _is_image(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.ndim == 3 and value.shape[2] == 3 and value.dtype == np.uint8


def _images(value: Any, depth: int) -> Iterator[np.ndarray]:
    if _is_image(value):
        yield value
    elif isinstance(value, dict) and depth > 0:
        for item in value.values():
            yield from _images(item, depth - 1)


def text_of(value: dict[str, Any], key: str, what: str) -> str:
    text = value.get(key, "")
    if not isinstance(text, str):
        raise ProtocolError(f"the {what} {key!r} must be text, got {type(text).__name__}")
    return text


def state_of(value: dict[str, Any], keys: tuple[str, ...]) -> np.ndarray | None:
    """The first of `keys` holding a numeric vector, flattened."""
    for key in keys:
        found = value.get(key)
        if isinstance(found, np.ndarray) and found.dtype.kind in "biuf":
            return found.reshape(-1)
        if isinstance(found, list) and all(isinstance(v, (int, float)) for v in found):
            return np.asarray(found, dtype=np.float64)
    return None
