"""Worker processes on the real tabletop suite (ManiSkill3 on the CPU, rendered): the records of two workers, each
building its own PickCube env and playing its share of the seeds after a different history, equal one process's."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import small_suite
from scalekit import records

import vlascore
from vlascore import runner
from vlascore.scale import make_executor
from vlascore.suites import load_suite

pytest.importorskip("mani_skill")


@pytest.mark.slow
def test_two_workers_on_pickcube_record_what_one_process_records(tmp_path: Path) -> None:
    suite = small_suite(load_suite("tabletop"), ["PickCube"], [0, 1, 2], max_steps=30)
    runner.run(model="scripted", suite=suite, out=tmp_path / "one")
    pool = make_executor("local", workers=2)
    summary = runner.run(model="scripted", suite=suite, out=tmp_path / "two", executor=pool)
    assert (summary.ran, summary.errored) == (3, 0)
    assert records(tmp_path / "two") == records(tmp_path / "one")
    workers = {w.split(" ")[0] for w in vlascore.load_run(tmp_path / "two").episodes["worker"]}
    assert workers == {"w0", "w1"}  # both built PickCube: the second joined the task with episodes left
    frames_one, _ = vlascore.load_run(tmp_path / "one").frames("PickCube-2")
    frames_two, _ = vlascore.load_run(tmp_path / "two").frames("PickCube-2")
    assert (frames_one == frames_two).all()  # the rendered frames too
