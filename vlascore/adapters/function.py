"""A plain function as a policy, for `vlascore.evaluate` and quick experiments: `fn(observation, instruction)`
returns the action (a vector in the task's convention, or a chunk of them) or a PolicyStep (action plus reasoning
and intention text)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from vlascore.adapters.base import Adapter, EpisodeContext, PolicyStep
from vlascore.backends.base import Observation
from vlascore.suites import ActionSpace

PolicyFunction = Callable[[Observation, str], Any]
"""`fn(obs, instruction)` -> an action array (or a (k, dim) chunk), or a PolicyStep."""


class FunctionPolicy(Adapter):
    """Wraps `fn` as an adapter. Without an `action_space` it speaks each task's own convention (the task's action
    space, as its YAML declares it); with one, vlascore converts it to each task's, as for any adapter. `reasons`:
    whether `fn` returns PolicyStep objects with reasoning text (then it is judged as a reasoning policy)."""

    name = "function"

    def __init__(
        self,
        fn: PolicyFunction,
        action_space: ActionSpace | None = None,
        reasons: bool = False,
        chunk_size: int = 1,
        name: str | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"a policy function must be callable, got {type(fn).__name__}")
        label = name or getattr(fn, "__qualname__", None) or type(fn).__name__
        super().__init__(function=f"{getattr(fn, '__module__', '?')}.{label}")  # what run.json records of it
        self.fn = fn
        self.name = label
        self.reasons = reasons
        self.chunk_size = chunk_size
        self.speaks_task_convention = action_space is None
        if action_space is not None:
            self.action_space = action_space

    def reset(self, context: EpisodeContext) -> None:
        if self.speaks_task_convention:
            self.action_space = context.task.action_space
        reset = getattr(self.fn, "reset", None)  # a callable object may keep per-episode state
        if callable(reset):
            reset(context)

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        out = self.fn(obs, instruction)
        return out if isinstance(out, PolicyStep) else PolicyStep(np.asarray(out, dtype=np.float64))
