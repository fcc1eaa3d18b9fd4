"""The grounded judge on real ManiSkill3 tabletop episodes (slow; kept in CI): the scripted expert must score
higher than uniform random actions on every dimension random is judged on.

The grounded judge reads the recorded trace (privileged state, actions, words), never frames, so the episodes run
without camera images (`images=False`: the same records as rendered ones, tests/backends/test_maniskill.py),
which takes seconds instead of about 2 minutes on 2 cores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vlascore import runner
from vlascore.extras import available
from vlascore.judging.audit import audit_run
from vlascore.judging.engine import judge_run
from vlascore.suites import load_suite

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not available("mani_skill"), reason="needs the simulator: pip install 'vlascore[sim]'"),
]

TASKS = ["PickCube", "PushCube", "StackCube", "PullCube", "PlaceSphere"]


def test_scripted_beats_random_on_every_task_and_dimension(tmp_path: Path) -> None:
    suite = load_suite("tabletop")
    means = {}
    for model in ("scripted", "random"):
        runner.run(
            model=model, suite=suite, tasks=TASKS, episodes=2, out=tmp_path / model, backend_options={"images": False}
        )
        jf = judge_run(tmp_path / model, "grounded")
        assert all(j.status == "ok" for j in jf.judgements) and len(jf.judgements) == 2 * len(TASKS)
        by_task: dict[str, list[dict[str, int]]] = {}
        for j in jf.judgements:
            by_task.setdefault(j.episode_id.rsplit("-", 1)[0], []).append(j.scores)
        means[model] = {t: {d: float(np.mean([s[d] for s in ss])) for d in ss[0]} for t, ss in by_task.items()}
    scripted, rand = means["scripted"], means["random"]
    for task in TASKS:
        # random declares no reasoning: it is a specialist, judged on Action and Intention only (docs/vla_score.md §2).
        assert set(rand[task]) == {"Action", "Intention"}
        for dim in ("Action", "Intention"):
            assert scripted[task][dim] >= rand[task][dim] + 4, (task, dim, scripted[task], rand[task])
        assert scripted[task]["Intention"] >= 9 and scripted[task]["Alignment"] >= 8, scripted[task]
        assert scripted[task]["Reasoning"] >= 8, scripted[task]
    # The reasoning text of the expert cannot move the grounded judge.
    report = audit_run(tmp_path / "scripted", "grounded", repeats=2, max_episodes=10)
    assert all(i.mean_shift == 0 for i in report.injection) and len(report.injection) == 12
