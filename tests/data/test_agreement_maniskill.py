"""On real ManiSkill tabletop runs of the scripted expert, the kept steps cluster at the phase changes it narrates
(benchmarks/prune_agreement.py prints the full table)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import small_suite

from vlascore import runner
from vlascore.data.agreement import phase_agreement
from vlascore.data.opening import open_source
from vlascore.data.prune import apply_ablation, label_source
from vlascore.data.triggers import make_trigger
from vlascore.suites import load_suite

pytestmark = pytest.mark.slow


def test_kept_steps_cluster_at_narrated_phase_changes(tmp_path: Path) -> None:
    pytest.importorskip("mani_skill")
    suite = small_suite(load_suite("tabletop"), ["PickCube", "StackCube", "PushCube"], [0, 1, 2])
    runner.run(model="scripted", suite=suite, out=tmp_path / "run", episodes=3)
    source = open_source(tmp_path / "run")
    trajectories = {t.episode_id: t for t in source.trajectories()}
    labelled, failed = label_source(source, make_trigger("frame-diff"))
    assert not failed and len(labelled) == 9
    dual = phase_agreement([(trajectories[e.episode_id], e.kept, e.has_reasoning) for e in labelled], tolerance=1)
    apply_ablation(labelled, "random", seed=0)
    random = phase_agreement([(trajectories[e.episode_id], e.kept, e.has_reasoning) for e in labelled], tolerance=1)
    assert dual.kept > 0 and dual.changes > 0
    # Most kept steps sit within a step of a narrated phase change, far above what random choice gives.
    assert dual.precision > 0.8 and dual.precision > dual.chance + 0.25, (dual, random)
    assert random.precision < dual.precision - 0.2
    assert dual.recall > 0.4
