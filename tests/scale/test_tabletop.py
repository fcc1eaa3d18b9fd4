"""Worker processes on the real tabletop suite (ManiSkill3 on the CPU, rendered): two workers, each building its own
env of the task and playing its share of the seeds after a different history, record what one process records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import small_suite
from scalekit import records

import vlascore
from vlascore import runner
from vlascore.scale import make_executor
from vlascore.suites import load_suite

pytest.importorskip("mani_skill")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "options"),
    [
        ("PickCube", {}),
        # A reused ManiSkill scene keeps contact state from earlier episodes on the push tasks (the cube rests on the
        # table from one episode into the next): the backend's default, a scene rebuilt per episode, makes each
        # depend on its seed alone.
        ("PushCube", {}),
    ],
)
def test_two_workers_record_what_one_process_records(tmp_path: Path, task: str, options: dict[str, Any]) -> None:
    suite = small_suite(load_suite("tabletop"), [task], [0, 1, 2], max_steps=30)
    runner.run(model="scripted", suite=suite, out=tmp_path / "one", backend_options=options)
    pool = make_executor("local", workers=2)
    summary = runner.run(model="scripted", suite=suite, out=tmp_path / "two", backend_options=options, executor=pool)
    assert (summary.ran, summary.errored) == (3, 0)
    assert records(tmp_path / "two") == records(tmp_path / "one")
    workers = {w.split(" ")[0] for w in vlascore.load_run(tmp_path / "two").episodes["worker"]}
    assert workers == {"w0", "w1"}  # both built the task's env: the second joined the task with episodes left
    frames_one, _ = vlascore.load_run(tmp_path / "one").frames(f"{task}-2")
    frames_two, _ = vlascore.load_run(tmp_path / "two").frames(f"{task}-2")
    assert (frames_one == frames_two).all()  # the rendered frames too
