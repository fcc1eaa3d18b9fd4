"""Real LIBERO runs shared by the tests that judge, report and board them: the scripted expert and uniform random
actions on two LIBERO-Object tasks, one episode each, with the horizon cut to 150 steps (the expert needs about
110), judged by the grounded judge. Built once per session (a module-level cache), whichever test asks first;
read-only for the tests. Not a conftest.py (see tests/board/boardkit.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import small_suite, write_suite

from vlascore import runner
from vlascore.backends.libero_setup import missing_setup
from vlascore.judging.engine import judge_run
from vlascore.suites import Suite, load_suite

TASKS = ["ketchup", "butter"]
MODELS = ("scripted", "random")
needs_libero = pytest.mark.skipif(
    bool(missing_setup()), reason=f"LIBERO is not set up here: {missing_setup()} (bash scripts/setup.sh)"
)


@dataclass(frozen=True)
class LiberoRuns:
    suite: Suite
    suite_file: Path
    """The shortened suite as YAML (a board owner places such a file in the board's suites/ to accept it)."""
    runs: dict[str, Path]


_RUNS: LiberoRuns | None = None


def get_libero_runs(tmp_path_factory: pytest.TempPathFactory) -> LiberoRuns:
    global _RUNS
    if _RUNS is None:
        root = tmp_path_factory.mktemp("libero-runs")
        base = load_suite("libero-object")
        suite = small_suite(base, TASKS, [0], max_steps=150).model_copy(
            update={"name": "libero-object-short", "columns": []}
        )
        runs = {}
        for model in MODELS:
            runs[model] = root / model
            runner.run(model=model, suite=suite, out=runs[model], backend_options={"wrist": False})
            judge_run(runs[model], "grounded")
        _RUNS = LiberoRuns(suite, write_suite(suite, root / "libero-object-short.yaml"), runs)
    return _RUNS
