"""Synthetic runs for the scale benchmarks: the real store, records and judgement files, with made-up content.

Episodes look like tabletop ones (5 tasks, 60 steps of 7-D actions, reasoning that changes every 10 steps, an
intention per phase, a 64x64 frame every 6th step plus the final one, a grounded-style verdict with a rationale
and flags), written through RunStore and the pydantic records, so every reader goes through its normal path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlascore import __version__
from vlascore.judging import load_judge
from vlascore.judging.definitions import JudgeSpec
from vlascore.judging.engine import label_for
from vlascore.judging.judgement import Judgement, JudgementFile
from vlascore.records import EpisodeRecord, RunRecord, StepRecord
from vlascore.store import RunStore
from vlascore.suites import Suite, load_suite

TASKS = 5
STEPS = 60
FRAME_STRIDE = 6
MODEL = "synthetic-model"
FLAGS = ["missed_goal", "missed_grasp", "jerky_motion", "inefficient_path", "misaligned"]


_BACKGROUND = np.linspace(60, 200, 64, dtype=np.uint8)[:, None, None].repeat(64, axis=1).repeat(3, axis=2)


def _frame(step: int, seed: int) -> np.ndarray:
    """A 64x64 frame like a rendered tabletop (smooth background, two moving blocks), not incompressible noise."""
    img = _BACKGROUND.copy()
    x = 8 + (step + seed) % 40
    img[30:38, x : x + 8] = (200, 40, 40)
    img[44:52, 20:28] = (40, 180, 60)
    return img


def synthetic_suite(per_task: int) -> Suite:
    """The tabletop suite with `per_task` seeds per task."""
    base = load_suite("tabletop")
    return base.model_copy(
        update={
            "name": "tabletop-synthetic",
            "tasks": [t.model_copy(update={"seeds": list(range(per_task))}) for t in base.tasks[:TASKS]],
        }
    )


JUDGE_YAML = """\
# A stand-in judge for the scale benchmark: synthetic verdicts are recorded under its name and version, so a board
# that lists it (DIR/judges/) accepts them; kind vlm, so the board does not try to re-run it.
name: synthetic
kind: vlm
version: "bench"
description: Synthetic verdicts of benchmarks/synthetic.py (not a real judge).
retrieval: {enabled: false}
"""


def synthetic_judge(folder: Path) -> JudgeSpec:
    """Write the stand-in judge's YAML into `folder` (a board's judges/) and load it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "synthetic.yaml").write_text(JUDGE_YAML)
    return load_judge(folder / "synthetic.yaml")


def synthetic_run(path: Path, suite: Suite, per_task: int, skill: float, judge: JudgeSpec, seed: int = 0) -> Path:
    """A run of `per_task` episodes per task whose success probability is `skill`, judged by `judge` (verdicts
    drawn at random, higher on successes, failures flagged)."""
    rng = np.random.default_rng(seed)
    store = RunStore(path)
    store.write_run(
        RunRecord(
            run_id=path.name,
            adapter="synthetic",
            adapter_config={"skill": skill},
            adapter_info={"reasons": True},
            suite=suite.name,
            suite_fingerprint=suite.fingerprint,
            protocol_version=suite.protocol_version,
            suite_spec=suite.model_dump(mode="json"),
            tasks=[t.id for t in suite.tasks],
            seeds={t.id: list(range(per_task)) for t in suite.tasks},
            backend="synthetic",
            vlascore_version=__version__,
            frame_stride=FRAME_STRIDE,
        )
    )
    judgements = []
    for task in suite.tasks:
        for s in range(per_task):
            eid = f"{task.id}-{s}"
            success = bool(rng.random() < skill)
            actions = np.clip(rng.normal(0, 0.4, size=(STEPS, 7)), -1, 1)
            steps = [
                StepRecord.model_construct(  # the fields are right by construction: skip validation
                    episode_id=eid,
                    step=i,
                    action=actions[i].tolist(),
                    reasoning=f"Plan: reach, grasp, lift, place the object. Now: phase {i // 10} of {task.id}.",
                    intention=("reach", "grasp", "lift", "carry", "place", "release")[i // 10],
                    ee_pose=[0.1, 0.0, 0.2, 1, 0, 0, 0],
                    gripper=1.0,
                    reward=0.0,
                    success=success and i == STEPS - 1,
                    frame=i // FRAME_STRIDE if i % FRAME_STRIDE == 0 else None,
                )
                for i in range(STEPS)
            ]
            frames = [_frame(i, s) for i in range(0, STEPS + 1, FRAME_STRIDE)]
            frames_file = store.write_frames(eid, frames, [*range(0, STEPS, FRAME_STRIDE), STEPS])
            store.write_episode(
                EpisodeRecord(
                    episode_id=eid,
                    task=task.id,
                    seed=s,
                    instruction=task.instruction,
                    success=success,
                    num_steps=STEPS,
                    termination="success" if success else "max_steps",
                    status="ok",
                    started_at="2026-12-01T00:00:00+00:00",
                    duration_s=1.0,
                    policy_time_s=0.5,
                    sim_time_s=0.4,
                    frames_file=frames_file,
                ),
                steps,
            )
            scores = {
                k: int(rng.integers(3, 11) if success else rng.integers(0, 6))
                for k in ("Reasoning", "Action", "Intention", "Alignment")
            }
            judgements.append(
                Judgement(
                    episode_id=eid,
                    judge=judge.name,
                    judge_version=judge.effective_version,
                    judge_model=MODEL,
                    mode="reasoning",
                    status="ok",
                    scores=scores,
                    thought=f"Action {scores['Action']}: synthetic rationale for {eid}.",
                    failure_modes=[] if success else [str(m) for m in rng.choice(FLAGS, size=2, replace=False)],
                )
            )
    store.close()
    label = label_for(judge, MODEL)
    jf = JudgementFile(
        label=label,
        run_id=path.name,
        judge=judge.name,
        judge_version=judge.effective_version,
        judge_model=MODEL,
        judgements=judgements,
    )
    (path / "judgements").mkdir(exist_ok=True)
    (path / "judgements" / f"{label}.json").write_text(jf.model_dump_json())
    return path
