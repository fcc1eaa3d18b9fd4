"""`random`: uniform actions in each task's own convention; the floor every policy should beat.

Normalised tasks get actions uniform in [-scale, scale]. Tasks that take physical units (the SimplerEnv suites:
metres and radians) get position deltas uniform in +-0.02 * scale m and rotation deltas in +-0.1 * scale rad (a
small jitter, not the controller's full range), and the gripper entry in [-scale, scale].
"""

from __future__ import annotations

import numpy as np

from vlascore.adapters.base import Adapter, EpisodeContext, PolicyStep
from vlascore.backends.base import Observation


class RandomAdapter(Adapter):
    """Uniform random actions in [-scale, scale], seeded by the episode seed (so runs are reproducible)."""

    name = "random"
    speaks_task_convention = True
    METRIC_BOX = (0.02, 0.1)
    """Half-widths (metres, radians) of position and rotation deltas on tasks that take physical units."""

    def __init__(self, scale: float = 1.0, seed_offset: int = 0) -> None:
        super().__init__(scale=scale, seed_offset=seed_offset)
        self.scale = float(scale)
        self.seed_offset = int(seed_offset)
        self._rng = np.random.default_rng(seed_offset)
        self._box = np.full(self.action_space.dim, self.scale)  # until reset() reads the task's convention

    def reset(self, context: EpisodeContext) -> None:
        self._rng = np.random.default_rng(context.seed + self.seed_offset)
        self.action_space = context.task.action_space
        space = self.action_space
        self._box = np.full(space.dim, self.scale)
        if not space.normalized and space.mode.endswith("delta") and space.dim >= 4:
            pos, rot = self.METRIC_BOX
            self._box[:3], self._box[3:-1] = pos * self.scale, rot * self.scale

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        return PolicyStep(action=self._rng.uniform(-self._box, self._box))
