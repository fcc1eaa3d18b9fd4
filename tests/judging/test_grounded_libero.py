"""The grounded judge on real LIBERO episodes (slow; kept in CI): objects and targets come from each task's BDDL goal
(its `objects:` roles), and the scripted expert scores above uniform random actions on every dimension both are
judged on, on every task. Every LIBERO task has a category the judge knows, so no LIBERO run is refused. The VLM
judge gets a LIBERO episode's frames and instruction (against the mock endpoint)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import jctx
from liberokit import TASKS, get_libero_runs, needs_libero

from vlascore.judging import load_judge
from vlascore.judging.engine import judge_run
from vlascore.judging.grounded import category_of
from vlascore.judging.mockserver import MockOpenAI
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


@pytest.mark.slow
@needs_libero
def test_the_vlm_judge_sees_libero_frames_and_instructions(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    kit = get_libero_runs(tmp_path_factory)
    run = shutil.copytree(kit.runs["scripted"], tmp_path / "scripted")  # the kit's runs stay as they are
    options = {"retrieval": False, "max_retries": 1, "timeout_s": 10.0, "concurrency": 1, "cache_dir": tmp_path / "c"}
    with MockOpenAI() as server:
        jf = judge_run(run, "vla-score", jctx("judge-m", base_url=server.url, **options))
        requests = [r for r in server.requests if r["_path"].endswith("/chat/completions")]
    assert jf.judge == "vla-score-reasoning" and all(j.status == "ok" for j in jf.judgements)
    assert len(requests) == len(TASKS)
    instructions = {load_suite("libero-object").task(t).instruction for t in TASKS}
    for request in requests:
        parts = request["messages"][-1]["content"]
        text = parts[0]["text"]
        assert any(i in text for i in instructions) and "Plan: to " in text  # the instruction and the reasoning
        images = [p for p in parts if p["type"] == "image_url"]
        assert images and all(p["image_url"]["url"].startswith("data:image/png;base64,") for p in images)
