"""Runs made before episodes recorded their provenance (the worker and node columns) and before run.json listed
its sessions: they are read, resumed (the columns are added on the first write) and accepted by the leaderboard."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from conftest import small_suite

import vlascore
from vlascore import runner
from vlascore.board import Board
from vlascore.board.bundle import pack
from vlascore.judging.engine import judge_run
from vlascore.scale import make_executor
from vlascore.store import RunStore
from vlascore.suites import Suite

NEW_COLUMNS = ("worker", "node")


def make_old(path: Path, suite: Suite, episodes: int = 2) -> Path:
    """A run as an older vlascore wrote it: no provenance columns, no sessions in run.json."""
    runner.run(model="toy-expert", suite=suite, out=path, episodes=episodes)
    with sqlite3.connect(path / "traces.sqlite") as conn:
        for column in NEW_COLUMNS:
            conn.execute(f"ALTER TABLE episodes DROP COLUMN {column}")
    record = json.loads((path / "run.json").read_text())
    del record["sessions"]
    (path / "run.json").write_text(json.dumps(record))
    return path


def columns(path: Path) -> set[str]:
    with sqlite3.connect(path / "traces.sqlite") as conn:
        return {row[1] for row in conn.execute("PRAGMA table_info(episodes)")}


def test_an_old_run_reads_with_the_new_fields_at_their_defaults(tmp_path: Path, toy_suite: Suite) -> None:
    old = make_old(tmp_path / "old", small_suite(toy_suite, ["ToyPick"], [0, 1]))
    before = (old / "traces.sqlite").read_bytes()
    run = vlascore.load_run(old)
    assert run.run.sessions == [] and len(run.episodes) == 2
    assert run.episodes["worker"].isna().all() and run.episodes["node"].isna().all()
    store = RunStore(old)
    assert [(e.worker, e.node) for e in store.episode_records()] == [(None, None), (None, None)]
    store.close()
    assert (old / "traces.sqlite").read_bytes() == before  # reading wrote nothing


def test_an_old_run_resumes_on_workers_and_gains_the_columns(tmp_path: Path, toy_suite: Suite) -> None:
    suite = small_suite(toy_suite, ["ToyPick"], [0, 1, 2, 3])
    old = make_old(tmp_path / "old", suite)
    assert not set(NEW_COLUMNS) & columns(old)
    summary = runner.run(
        model="toy-expert",
        suite=suite,
        out=old,
        resume=True,
        executor=make_executor("local", workers=2),
    )
    assert (summary.ran, summary.skipped) == (2, 2)
    assert set(NEW_COLUMNS) <= columns(old)
    eps = vlascore.load_run(old).episodes.set_index("episode_id")
    assert eps.loc[["ToyPick-0", "ToyPick-1"], "worker"].isna().all()
    assert eps.loc[["ToyPick-2", "ToyPick-3"], "worker"].str.match(r"w[01] \(pid \d+\)").all()
    assert [s.executor for s in vlascore.load_run(old).run.sessions] == ["local"]


def test_the_board_accepts_a_bundle_of_an_old_run(tmp_path: Path, toy_suite: Suite) -> None:
    old = tmp_path / "old"
    runner.run(model="toy-expert", suite=toy_suite, out=old, episodes=5)  # a board takes the suite as it is
    judge_run(old, "grounded")
    with sqlite3.connect(old / "traces.sqlite") as conn:
        for column in NEW_COLUMNS:
            conn.execute(f"ALTER TABLE episodes DROP COLUMN {column}")
    bundle = pack(old, tmp_path / "old.zip", name="an old run").path
    board = Board(tmp_path / "board")
    record = board.add(bundle)
    assert board.verify(record) == []  # the board read it without writing to it
    extra = tmp_path / "extra"
    shutil.copytree(old, extra)
    with sqlite3.connect(extra / "traces.sqlite") as conn:
        conn.execute("ALTER TABLE episodes ADD COLUMN smuggled TEXT")
    from vlascore.board import Rejected

    try:
        Board(tmp_path / "board2").add(pack(extra, tmp_path / "extra.zip", name="extra column").path)
    except Rejected as exc:
        assert "extra: ['smuggled']" in str(exc)
    else:
        raise AssertionError("a column no vlascore writes was accepted")
