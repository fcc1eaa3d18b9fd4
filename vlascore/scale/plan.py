"""The work plan: which episode a free worker plays next.

Building a task's environment takes seconds (ManiSkill) and switching between built ones is cheap, so a worker
keeps to the tasks it has built: it takes the next episode of its current task, else of a task it built earlier,
else of a task no other worker is on, else joins the task with the most episodes left. Results do not depend on the
order: an episode is fixed by its task and seed.
"""

from __future__ import annotations

from collections import Counter

from vlascore.runner import Job


class WorkPlan:
    """Episodes not handed out yet, by task in plan order; `take` gives a worker its next job (up to `batch`
    episodes of one task: a vectorised worker steps them together)."""

    def __init__(self, jobs: list[Job], batch: int = 1) -> None:
        self.batch = max(1, int(batch))
        self._left: dict[str, list[int]] = {}
        for task_id, seed in jobs:
            self._left.setdefault(task_id, []).append(seed)

    def __len__(self) -> int:
        return sum(len(seeds) for seeds in self._left.values())

    def chunks(self) -> int:
        """Jobs left if each took a full batch: the most workers that can be busy at once."""
        return sum(-(-len(seeds) // self.batch) for seeds in self._left.values())

    def take(self, built: list[str], busy: Counter[str]) -> list[Job]:
        """The next job of a worker that has built `built` (most recent first), given how many workers are busy on
        each task; [] when nothing is left."""
        task = next((t for t in built if self._left.get(t)), None)
        if task is None:
            task = next((t for t, seeds in self._left.items() if seeds and not busy[t]), None)
        if task is None:
            task = max((t for t, seeds in self._left.items() if seeds), key=lambda t: len(self._left[t]), default=None)
        if task is None:
            return []
        seeds, self._left[task] = self._left[task][: self.batch], self._left[task][self.batch :]
        return [(task, seed) for seed in seeds]

    def give_back(self, jobs: list[Job]) -> None:
        """Jobs handed out but never started (their worker stopped first): they go first again."""
        for task_id, seed in reversed(jobs):
            self._left.setdefault(task_id, []).insert(0, seed)
