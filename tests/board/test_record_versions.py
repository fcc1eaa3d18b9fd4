"""Every versioned file vlascore reads refuses a newer schema_version the same way, through the command a user runs:
one line naming the file, the version found, the version this vlascore reads, and what to upgrade (the record
reader, vlascore/versioned.py). A record of an older version that needs no migration still reads."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from boardkit import World, copy_board, edit_json, entries, get_world, rebundle
from typer.testing import CliRunner

from vlascore.cli import app
from vlascore.paths import data_dir

NEWER = 99
MESSAGE = rf"has schema version {NEWER}, newer than this vlascore reads \(\d+; vlascore [^)]+\): upgrade vlascore"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return get_world(tmp_path_factory)


def bump_json(path: Path) -> None:
    path.write_text(json.dumps(json.loads(path.read_text()) | {"schema_version": NEWER}))


def run_copy(world: World, tmp: Path) -> Path:
    return Path(shutil.copytree(world.runs["expert"], tmp / "run"))


def bundle_with(name: str) -> Callable[[World, Path], list[str]]:
    def make(world: World, tmp: Path) -> list[str]:
        bundle = world.bundles["random"]
        newer = edit_json(entries(bundle)[name], lambda d: d.update(schema_version=NEWER))
        # the other files' hashes stay right: only the versioned file itself is the problem
        bad = rebundle(bundle, tmp / "bad.zip", replace={name: newer}, fix_manifest=name != "MANIFEST.json")
        board = copy_board(world.base_board, tmp / "board")
        return ["leaderboard", "add", str(bad), "--board", str(board), "--no-progress"]

    return make


def run_json(world: World, tmp: Path) -> list[str]:
    run = run_copy(world, tmp)
    bump_json(run / "run.json")
    return ["score", str(run)]


def trace_row(table: str) -> Callable[[World, Path], list[str]]:
    def make(world: World, tmp: Path) -> list[str]:
        run = run_copy(world, tmp)
        with sqlite3.connect(run / "traces.sqlite") as db:
            db.execute(f"UPDATE {table} SET schema_version = ? WHERE rowid = 1", (NEWER,))
        return ["judge", str(run), "--no-progress"]

    return make


def judgement_file(world: World, tmp: Path) -> list[str]:
    run = run_copy(world, tmp)
    bump_json(run / "judgements" / "grounded.json")
    return ["score", str(run)]


def qa_result(world: World, tmp: Path) -> list[str]:
    run = run_copy(world, tmp)
    (run / "qa").mkdir()
    (run / "qa" / "textvqa.json").write_text(json.dumps({"schema_version": NEWER, "vlascore_version": "9.0"}))
    return ["score", str(run)]


def board_config(world: World, tmp: Path) -> list[str]:
    board = copy_board(world.base_board, tmp / "board")
    path = board / "board.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | {"schema_version": NEWER}))
    return ["leaderboard", "add", str(world.bundles["random"]), "--board", str(board), "--no-progress"]


def board_record(world: World, tmp: Path) -> list[str]:
    board = copy_board(world.base_board, tmp / "board")
    bump_json(next((board / "submissions").glob("*/record.json")))
    return ["leaderboard", "list", "--board", str(board)]


def board_scores(world: World, tmp: Path) -> list[str]:
    board = copy_board(world.base_board, tmp / "board")
    bump_json(next((board / "submissions").glob("*/scores.json")))
    return ["leaderboard", "list", "--board", str(board)]


def kb_copy(tmp: Path) -> Path:
    return Path(shutil.copytree(data_dir("judges") / "kb", tmp / "kb"))


def kb_entry(world: World, tmp: Path) -> list[str]:
    kb = kb_copy(tmp)
    lines = (kb / "reviewed.jsonl").read_text().splitlines()
    lines[0] = json.dumps(json.loads(lines[0]) | {"schema_version": NEWER})
    (kb / "reviewed.jsonl").write_text("\n".join(lines) + "\n")
    return ["kb", "list", "--kb", str(kb)]


def kb_index(world: World, tmp: Path) -> list[str]:
    kb = kb_copy(tmp)
    bump_json(kb / "index.json")
    return ["kb", "search", "pick up the cube", "--kb", str(kb)]


def suite_file(world: World, tmp: Path) -> list[str]:
    path = tmp / "suite.yaml"
    path.write_text(
        yaml.safe_dump(yaml.safe_load((data_dir("tasks") / "toy.yaml").read_text()) | {"schema_version": NEWER})
    )
    return ["tasks", "validate", str(path)]


KINDS: dict[str, Callable[[World, Path], list[str]]] = {
    "run.json": run_json,
    "episodes row": trace_row("episodes"),
    "steps row": trace_row("steps"),
    "judgement file": judgement_file,
    "results.json (bundle)": bundle_with("results.json"),
    "submission.json (bundle)": bundle_with("submission.json"),
    "MANIFEST.json (bundle)": bundle_with("MANIFEST.json"),
    "run/run.json (bundle)": bundle_with("run/run.json"),
    "board.yaml": board_config,
    "board record.json": board_record,
    "board scores.json": board_scores,
    "KB entry": kb_entry,
    "KB index.json": kb_index,
    "QA result": qa_result,
    "suite YAML": suite_file,
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_newer_schema_version_is_refused_in_one_line(kind: str, world: World, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, KINDS[kind](world, tmp_path))
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # an exit with a message, not a crash
    assert any(re.search(MESSAGE, line) for line in result.output.splitlines()), result.output
