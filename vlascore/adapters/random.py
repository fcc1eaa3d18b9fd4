"""`random`: uniform actions in the task's normalised box; the floor every policy should beat."""

from __future__ import annotations

import numpy as np

from vlascore.adapters.base import Adapter, EpisodeContext, PolicyStep
from vlascore.backends.base import Observation


class RandomAdapter(Adapter):
    """Uniform random actions in [-scale, scale], seeded by the episode seed (so runs are reproducible)."""

    name = "random"

    def __init__(self, scale: float = 1.0, seed_offset: int = 0) -> None:
        super().__init__(scale=scale, seed_offset=seed_offset)
        self.scale = float(scale)
        self.seed_offset = int(seed_offset)
        self._rng = np.random.default_rng(seed_offset)

    def reset(self, context: EpisodeContext) -> None:
        self._rng = np.random.default_rng(context.seed + self.seed_offset)

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        return PolicyStep(action=self._rng.uniform(-self.scale, self.scale, size=self.action_space.dim))
