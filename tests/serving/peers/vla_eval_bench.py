"""Runs in vla-eval's own environment, loaded by `vla-eval run` (benchmark: vla_eval_bench:ProbeBenchmark): a small
step benchmark whose observations are known (an image, a state vector, an instruction per step), which writes every
action it is given to a JSON file, so the test can check them against the served policy. Its images travel as
vla-eval's benchmark clients send them by default (PNG)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from observations import vla_eval as observation
from vla_eval.benchmarks.base import StepBenchmark, StepResult


class ProbeBenchmark(StepBenchmark):
    def __init__(self, out: str, steps: int = 5) -> None:
        super().__init__()
        self.out, self.steps = out, steps
        self.episode, self.step_index = -1, 0
        self.log: list[list[dict[str, Any]]] = []

    def get_tasks(self) -> list[dict[str, Any]]:
        return [{"name": "probe_task"}]

    def reset(self, task: dict[str, Any]) -> Any:
        self.episode += 1
        self.step_index = 0
        self.log.append([])
        return observation(self.episode, 0)

    def step(self, action: dict[str, Any]) -> StepResult:
        actions = np.asarray(action["actions"])
        self.log[-1].append(
            {"actions": actions.tolist(), "dtype": str(actions.dtype), "reasoning": action.get("reasoning")}
        )
        with open(self.out, "w") as f:
            json.dump(self.log, f)
        self.step_index += 1
        return StepResult(observation(self.episode, self.step_index), 0.0, self.step_index >= self.steps, {})

    def make_obs(self, raw_obs: Any, task: dict[str, Any]) -> dict[str, Any]:
        return raw_obs

    def get_step_result(self, step_result: StepResult) -> dict[str, Any]:
        return {"success": bool(step_result.done)}

    def get_metadata(self) -> dict[str, Any]:
        return {"max_steps": self.steps}
