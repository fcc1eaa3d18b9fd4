"""Suites, YAML files and run directories are untrusted input: a wrong shape, an id that is a path, an alias bomb, a
damaged database, a frames path out of the run, a generated column, an environment that fails (disk full, a
read-only folder, a name too long) each end in one line that says what to do, never a traceback, and nothing is
written outside the run directory."""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml
from conftest import small_suite, write_suite
from typer.testing import CliRunner

from vlascore import runner
from vlascore.board import Board
from vlascore.board.bundle import pack
from vlascore.board.errors import BoardError
from vlascore.cli import app
from vlascore.judging.catalog import load_judge_file
from vlascore.judging.definitions import JudgeError
from vlascore.paths import YAMLBombError, load_yaml
from vlascore.store import RunStore, StoreError, load_run, table_sql
from vlascore.suites import SuiteError, load_suite, load_suite_file

SUITE_HEAD = "name: hostile\nprotocol_version: '1'\nbackend: toy\n"
TASK = "{id: ToyPick, env_id: ToyPick-v0, instruction: pick, resolution: [32, 32], max_steps: 5, seeds: [0]}"


def one_line_error(res: object) -> str:
    out = res.output  # type: ignore[attr-defined]
    assert res.exit_code not in (0, None) and "Traceback" not in out, out  # type: ignore[attr-defined]
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception  # type: ignore[attr-defined]
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), out
    return lines[0]


def bomb(levels: int = 9) -> str:
    """A "billion laughs": each anchor lists the previous one nine times."""
    text = "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for k in range(1, levels + 1):
        text += f"l{k}: &l{k} [" + ", ".join([f"*l{k - 1}"] * 9) + "]\n"
    return text


# -- suites and YAML --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("tasks: 5\n", "`tasks` must be a list, not int"),
        ("tasks: [5]\n", "task 1 of `tasks` must be a mapping"),
        (f"defaults: [1]\ntasks: [{TASK}]\n", "`defaults` must be a mapping"),
        (f"include: 7\ntasks: [{TASK}]\n", "`include` must be a list"),
        ("tasks: [{id: ../../outside, env_id: ToyPick-v0, instruction: pick, seeds: [0]}]\n", "not a safe file name"),
        ("tasks: [{id: 'a/b', env_id: ToyPick-v0, instruction: pick, seeds: [0]}]\n", "not a safe file name"),
        ("tasks: [{id: ok, env_id: ToyPick-v0, instruction: pick, seeds: {count: 100000000000}}]\n", "less than"),
        (bomb() + f"tasks: [{TASK}]\n", "expands to more than"),
        ("tasks: &t [*t]\n", "refers to itself"),
    ],
    ids=[
        "tasks-int",
        "task-int",
        "defaults-list",
        "include-int",
        "dotdot-id",
        "slash-id",
        "seed-range",
        "bomb",
        "cycle",
    ],
)
def test_a_hostile_suite_is_one_line(tmp_path: Path, body: str, match: str) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(SUITE_HEAD + body)
    with pytest.raises(SuiteError, match=match) as info:
        load_suite_file(path)
    assert "\n" not in str(info.value)
    line = one_line_error(CliRunner().invoke(app, ["tasks", "validate", str(path)]))
    assert "hostile.yaml" in line


def test_a_task_id_with_dotdot_writes_nothing_outside_the_run(tmp_path: Path) -> None:
    path = tmp_path / "suites" / "escape.yaml"
    path.parent.mkdir()
    path.write_text(SUITE_HEAD + "tasks: [{id: ../../../escaped, env_id: ToyPick-v0, instruction: pick, seeds: [0]}]\n")
    res = CliRunner().invoke(app, ["run", "--model", "random", "--suite", str(path), "--out", str(tmp_path / "r")])
    assert "not a safe file name" in one_line_error(res)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["escape.yaml", "suites"]


@pytest.mark.parametrize("where", ["board.yaml", "judge"])
def test_alias_bombs_are_refused_in_every_yaml_reader(tmp_path: Path, where: str) -> None:
    with pytest.raises(YAMLBombError):
        load_yaml(bomb())
    if where == "board.yaml":
        board = tmp_path / "board"
        board.mkdir()
        (board / "board.yaml").write_text(bomb() + "title: x\n")
        with pytest.raises(BoardError, match="expands to more than"):
            Board(board).config()
    else:
        judge = tmp_path / "judge.yaml"
        judge.write_text(bomb() + "name: j\nkind: grounded\nversion: '1'\n")
        with pytest.raises(JudgeError, match="expands to more than"):
            load_judge_file(judge)


def test_deep_yaml_nesting_is_refused() -> None:
    with pytest.raises(yaml.YAMLError):
        load_yaml("a: " + "[" * 50_000 + "]" * 50_000)


# -- run directories -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "run"
    runner.run(model="toy-expert", suite=small_suite(load_suite("toy"), ["ToyPick"], [0, 1], max_steps=10), out=path)
    return path


@pytest.fixture
def run(toy_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(toy_run, tmp_path / "run"))


def edit_db(run: Path, *statements: str) -> None:
    conn = sqlite3.connect(run / "traces.sqlite")
    for sql in statements:
        conn.execute(sql)
    conn.commit()
    conn.close()


def test_submit_never_packs_a_file_from_outside_the_run(run: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.npz"
    secret.write_bytes(b"the owner's private file")
    edit_db(run, f"UPDATE episodes SET frames_file = '{secret}' WHERE rowid = 1")
    with pytest.raises(StoreError, match="frames_file"):
        pack(run, tmp_path / "b.zip")
    res = CliRunner().invoke(app, ["submit", str(run), "-o", str(tmp_path / "b.zip")])
    assert "is not frames/<episode id>.npz" in one_line_error(res)
    assert not (tmp_path / "b.zip").exists()


def test_a_generated_column_in_a_run_is_refused_before_reading(run: Path) -> None:
    sql = table_sql("steps").replace("reward REAL", "reward AS (length(printf('%.*c', 200000000, 'x')))")
    edit_db(run, "ALTER TABLE steps RENAME TO old", sql, "DROP TABLE old")
    with pytest.raises(StoreError, match="generated column steps.reward"):
        load_run(run).episodes  # noqa: B018 - reading is the test
    assert "generated column" in one_line_error(CliRunner().invoke(app, ["score", str(run)]))


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_database_is_one_line(run: Path, damage: str) -> None:
    db = run / "traces.sqlite"
    data = db.read_bytes()
    db.write_bytes(data[:3000] if damage == "truncated" else data[:100] + b"\xff" * (len(data) - 100))
    line = one_line_error(CliRunner().invoke(app, ["score", str(run)]))
    assert "traces" in line


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_environment_failures_while_running_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, words: str
) -> None:
    def failing(*args: object, **kwargs: object) -> None:
        raise OSError(code, "simulated", str(tmp_path / "out" / "frames"))

    monkeypatch.setattr(RunStore, "write_frames", failing)
    res = CliRunner().invoke(
        app, ["run", "-m", "random", "-s", "toy", "-n", "1", "-o", str(tmp_path / "out"), "--no-progress"]
    )
    assert words in one_line_error(res)


def test_out_folders_that_cannot_be_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for out, words in [
        (tmp_path / "file", "is a file"),
        (tmp_path / "file" / "sub", "goes through"),
        (tmp_path / ("x" * 300), "too long"),
    ]:
        res = CliRunner().invoke(app, ["run", "-m", "random", "-s", "toy", "-n", "1", "-o", str(out), "--no-progress"])
        assert words in one_line_error(res)


def test_a_suite_written_back_keeps_its_safe_ids(tmp_path: Path) -> None:
    """Every built-in suite's task ids are safe file names (the validation refuses none of them)."""
    for name in ("toy", "tabletop", "simpler-google-vm", "simpler-bridge"):
        suite = load_suite(name)
        path = write_suite(suite, tmp_path / f"{name}.yaml")
        assert load_suite_file(path).fingerprint == suite.fingerprint
