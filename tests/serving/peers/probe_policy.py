"""A policy whose actions say what it was given, served to other projects' clients by the protocol tests
(`vlascore serve -m tests/serving/peers/probe_policy.py:Probe`): each action row holds the image mean, the state
sum, the call's index in the episode, the resets so far, the instruction's length and the row's index in the chunk.
So a client can check, from the actions alone, that its observations arrived intact and where episodes began."""

from __future__ import annotations

import numpy as np

from vlascore.adapters.base import Adapter, EpisodeContext, PolicyStep
from vlascore.backends.base import Observation


class Probe(Adapter):
    name = "probe"

    def __init__(self, chunk: int = 1, execute: int = 0) -> None:
        super().__init__(chunk=chunk, execute=execute)
        self.chunk_size = int(chunk)
        self.execute_steps = int(execute) or None
        self.resets = 0
        self.calls = 0

    def reset(self, context: EpisodeContext) -> None:
        self.resets += 1
        self.calls = 0

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        image = -1.0 if obs.image is None else float(obs.image.astype(np.float64).mean()) / 255
        state = float(np.sum(obs.proprio.get("state", obs.proprio.get("qpos", np.zeros(1)))))
        rows = [
            [image, state / 100, self.calls / 100, self.resets / 100, len(instruction) / 100, row / 100, 1.0]
            for row in range(self.chunk_size)
        ]
        self.calls += 1
        action = np.asarray(rows if self.chunk_size > 1 else rows[0], dtype=np.float32)
        return PolicyStep(action, reasoning=f"call {self.calls} of episode {self.resets}")
