"""`vlascore.evaluate`: the Python way to run a policy object (or a function) on a suite, what `vlascore run` is
on the command line, ending with the run loaded for analysis."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vlascore.adapters.base import Adapter
from vlascore.adapters.function import FunctionPolicy, PolicyFunction
from vlascore.rundata import RunData
from vlascore.runner import run
from vlascore.scoring import score_and_write
from vlascore.suites import Suite, load_suite


def evaluate(
    policy: Adapter | PolicyFunction,
    *,
    suite: str | Path | Suite = "tabletop",
    tasks: list[str] | None = None,
    episodes: int | None = None,
    out: str | Path | None = None,
    name: str | None = None,
    backend_options: dict[str, Any] | None = None,
    resume: bool = False,
    frame_stride: int = 1,
) -> RunData:
    """Run `policy` on `suite` (its `tasks`, the first `episodes` seeds of each), record every step into `out`
    [default: runs/NAME-SUITE], score it (results.json), and return the run: `.episodes`, `.steps`, `.results`...

    `policy` is an Adapter instance, or a function `fn(observation, instruction)` returning the action (a vector in
    the task's own convention) or a PolicyStep, which is wrapped in FunctionPolicy. `name` is what the run records
    as its adapter [default: the adapter's `name`, or the function's]. Judge the run afterwards with
    `vlascore judge OUT` (or vlascore.judging.engine.judge_run) for the VLA Score."""
    adapter = policy if isinstance(policy, Adapter) else FunctionPolicy(policy, name=name)
    label = name or adapter.name or type(adapter).__name__
    spec = suite if isinstance(suite, Suite) else load_suite(suite)
    out = Path(out) if out is not None else Path("runs") / re.sub(r"[^A-Za-z0-9._-]+", "_", f"{label}-{spec.name}")
    run(
        model=label,
        suite=spec,
        out=out,
        tasks=tasks,
        episodes=episodes,
        backend_options=backend_options,
        resume=resume,
        frame_stride=frame_stride,
        adapter=adapter,
    )
    score_and_write(out)
    return RunData(out)
