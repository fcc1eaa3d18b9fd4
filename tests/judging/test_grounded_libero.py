"""The grounded judge on real LIBERO episodes (slow; kept in CI): objects and targets come from each task's BDDL goal
(its `objects:` roles), and the scripted expert scores above uniform random actions on every dimension both are
judged on, on every task. Every LIBERO task has a category the judge knows, so no LIBERO run is refused."""

from __future__ import annotations

import numpy as np
import pytest
from liberokit import TASKS, get_libero_runs, needs_libero

from vlascore.judging import load_judge
from vlascore.judging.engine import judge_run
from vlascore.judging.grounded import category_of
from vlascore.scoring import score_run
from vlascore.store import load_run
from vlascore.suites import load_suite


def test_the_grounded_judge_knows_every_libero_task() -> None:
    spec = load_judge("grounded")
    for task in load_suite("libero").tasks:
        category_of(task, spec)  # raises for a category the judge has no subgoals for
        assert len(task.objects) >= 2


@pytest.mark.slow
@needs_libero
def test_scripted_beats_random_on_every_task_and_dimension(tmp_path_factory: pytest.TempPathFactory) -> None:
    kit = get_libero_runs(tmp_path_factory)
    means: dict[str, dict[str, dict[str, float]]] = {}
    for model, path in kit.runs.items():
        jf = judge_run(path, "grounded")  # already judged: served from the judgements, unchanged
        assert all(j.status == "ok" for j in jf.judgements) and len(jf.judgements) == len(TASKS)
        means[model] = {
            j.episode_id.rsplit("-", 1)[0]: {d: float(v) for d, v in j.scores.items()} for j in jf.judgements
        }
    scripted, rand = means["scripted"], means["random"]
    for task in TASKS:
        assert set(rand[task]) == {"Action", "Intention"}  # random is a specialist: A and I
        assert set(scripted[task]) == {"Reasoning", "Action", "Intention", "Alignment"}
        for dim in ("Action", "Intention"):
            assert scripted[task][dim] > rand[task][dim], (task, dim, scripted[task], rand[task])
        assert scripted[task]["Intention"] >= 8 and scripted[task]["Alignment"] >= 7, scripted[task]
        assert scripted[task]["Reasoning"] >= 7, scripted[task]
    results = {model: score_run(load_run(path)) for model, path in kit.runs.items()}
    successes = {model: sum(t.successes for t in r.tasks) for model, r in results.items()}
    assert successes == {"scripted": len(TASKS), "random": 0}
    (vla,) = results["scripted"].vla
    assert vla.vla_score.value is not None and not np.isnan(vla.vla_score.value)
