"""`replay`: re-executes the recorded actions of another run, episode by episode (same task and seed).

Used to check determinism (a replay reproduces the recorded success flag) and to re-render or re-record
an episode. The source run's reasoning and intention are replayed with the actions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlascore.adapters.base import Adapter, EpisodeContext, PolicyStep
from vlascore.backends.base import Observation
from vlascore.suites import ActionSpace


class ReplayAdapter(Adapter):
    name = "replay"

    def __init__(self, source: str | Path | None = None) -> None:
        if source is None:
            raise ValueError("replay needs the run to replay: --model-arg source=runs/NAME")
        super().__init__(source=str(source))
        from vlascore.store import load_run

        self._source = load_run(source)
        info = self._source.run.adapter_info
        self.action_space = ActionSpace.model_validate(info.get("action_space", {}))
        self.chunk_size = 1  # recorded steps are single actions, whatever the source's chunking
        self.reasons = bool(info.get("reasons", False))
        self._queue: list[tuple[list[float], str | None, str | None]] = []
        self._episode = ""

    def reset(self, context: EpisodeContext) -> None:
        steps = self._source.steps
        rows = steps[steps["episode_id"] == context.episode_id]
        if rows.empty:
            raise ValueError(
                f"episode {context.episode_id!r} is not in the source run {self._source.path}; "
                "replay the same suite, tasks and seeds"
            )
        self._episode = context.episode_id
        self._queue = list(zip(rows["action"], rows["reasoning"], rows["intention"], strict=True))
        self._queue.reverse()

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        if not self._queue:
            raise RuntimeError(
                f"replay of {self._episode!r} ran past the recorded actions (simulator not deterministic?)"
            )
        action, reasoning, intention = self._queue.pop()
        return PolicyStep(action=np.asarray(action), reasoning=reasoning, intention=intention)
