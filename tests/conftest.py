"""Shared fixtures: test adapters registered in the real registry, small suites built in tmp dirs."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from vlascore.adapters import ADAPTERS, Adapter, EpisodeContext, PolicyStep
from vlascore.backends import Observation
from vlascore.judging.base import JudgeContext
from vlascore.judging.endpoint import Endpoint
from vlascore.suites import Suite, load_suite

pytest_plugins = ["browser"]  # tests/browser.py: chromium `browser` and `page` fixtures

os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
os.makedirs(os.environ["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist workers load readline, which exports COLUMNS=80 and LINES=24: vlascore.cli's rich Console, made at
    # import, would then keep 80 columns and ignore the COLUMNS that the CLI tests give CliRunner (wrapped tables).
    for var in ("COLUMNS", "LINES"):
        os.environ.pop(var, None)


class ToyExpert(Adapter):
    """Moves to the cube, closes, carries it to the goal: succeeds on ToyPick; narrates its phase."""

    name = "toy-expert"
    reasons = True
    uses_privileged_state = True

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        p = obs.privileged
        ee, cube, goal = p.ee_pose[:3], p.objects["cube"][:3], p.objects["goal"][:3]
        if not p.is_grasped:
            delta, grip, phase = cube - ee, (-1.0 if np.linalg.norm(cube - ee) < 0.02 else 1.0), "reach the cube"
        else:
            delta, grip, phase = goal - ee, -1.0, "carry the cube to the goal"
        move = np.clip(delta / 0.05, -1, 1)
        return PolicyStep(
            np.array([*move, 0, 0, 0, grip]), reasoning=f"Plan: grasp then carry. Now: {phase}", intention=phase
        )


class FlakyPolicy(ToyExpert):
    """Fails in one chosen way at step 3 of seed 1 (the `mode` option)."""

    name = "flaky"

    def __init__(self, mode: str = "raise") -> None:
        super().__init__(mode=mode)
        self.mode = mode

    def reset(self, context: EpisodeContext) -> None:
        self.seed, self.t = context.seed, 0

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        step, self.t = self.t, self.t + 1
        if self.seed == 1 and step == 3:
            if self.mode == "raise":
                raise RuntimeError("boom at step 3")
            if self.mode == "nan":
                return PolicyStep(np.full(7, np.nan))
            if self.mode == "shape":
                return PolicyStep(np.zeros(5))
        return super().act(obs, instruction)


ADAPTERS.register("toy-expert", ToyExpert)
ADAPTERS.register("flaky", FlakyPolicy)


@pytest.fixture
def toy_suite() -> Suite:
    return load_suite("toy")


def small_suite(base: Suite, tasks: list[str], seeds: list[int], max_steps: int | None = None) -> Suite:
    """A copy of `base` restricted to `tasks`, with the given seeds (and horizon)."""
    update: dict[str, object] = {"seeds": seeds}
    if max_steps is not None:
        update["max_steps"] = max_steps
    return base.model_copy(update={"tasks": [base.task(t).model_copy(update=update) for t in tasks]})


def write_suite(suite: Suite, path: Path) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(suite.model_dump(mode="json"), sort_keys=False))
    return path


def jctx(model: str | None = None, **options: object) -> JudgeContext:
    """A JudgeContext from flat keywords: endpoint settings (base_url, api_key_env, timeout_s, max_retries,
    concurrency) go into its Endpoint with `model`, the rest (cache_dir, use_cache, kb_dir, retrieval, price) stay."""
    fields = {f.name for f in dataclasses.fields(Endpoint)}
    endpoint = Endpoint(model=model, **{k: v for k, v in options.items() if k in fields})  # type: ignore[arg-type]
    return JudgeContext(endpoint=endpoint, **{k: v for k, v in options.items() if k not in fields})  # type: ignore[arg-type]
