"""The board's commands through the real CLI: submit, leaderboard add / list / build / rejudge / verify / serve."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from boardkit import World, edit_json, edited_grounded, entries, get_world, rebundle, snapshot
from typer.testing import CliRunner

from vlascore.board import Board
from vlascore.cli import app
from vlascore.judging import load_judge
from vlascore.scoring import RunResults


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return get_world(tmp_path_factory)


WIDE = {"COLUMNS": "250"}  # rich tables: no truncated cells


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args], env=WIDE)


def clean_failure(result: Any, code: int) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.fixture(scope="module")
def cli_board(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three runs submitted and added through the CLI."""
    root = tmp_path_factory.mktemp("cli")
    bundles = {}
    for key in ("expert", "noisy", "random"):
        out = root / f"{key}.zip"
        result = invoke("submit", world.runs[key], "-o", out, "--name", world.names[key], "--notes", f"{key} via CLI")
        assert result.exit_code == 0, result.output
        assert f"into {out}" in result.output and "leaderboard add" in result.output
        bundles[key] = out
    result = invoke("leaderboard", "add", *bundles.values(), "--board", root / "board")
    assert result.exit_code == 0, result.output
    for r in Board(root / "board").records():
        assert f"accepted {r.name} as {r.id}" in result.output
    return {"root": root, "board": root / "board", **bundles}


def test_submit_and_add_round_trip(cli_board: dict[str, Path], world: World) -> None:
    board = Board(cli_board["board"])
    assert sorted(r.name for r in board.records()) == sorted(world.names[k] for k in ("expert", "noisy", "random"))
    for record in board.records():
        assert board.verify(record) == []
        assert board.entry(record).submission.notes.endswith("via CLI")  # type: ignore[union-attr]


def test_submit_refuses_a_non_run_cleanly(tmp_path: Path) -> None:
    result = invoke("submit", tmp_path, "-o", tmp_path / "b.zip")
    clean_failure(result, 2)
    assert "error:" in result.output and "is not a vlascore run directory" in result.output
    result = invoke("submit", tmp_path, "-o", tmp_path / "b.tar")
    clean_failure(result, 2)
    assert "should end in .zip" in result.output
    assert list(tmp_path.iterdir()) == []


def test_add_rejects_cleanly_and_changes_nothing(cli_board: dict[str, Path], world: World, tmp_path: Path) -> None:
    import shutil

    board = tmp_path / "board"
    shutil.copytree(cli_board["board"], board)
    files = entries(world.bundles["silent"])  # a run not on this board yet
    forged = edit_json(files["results.json"], lambda r: r.update(suite_mean=0.99))
    bad = rebundle(world.bundles["silent"], tmp_path / "forged.zip", replace={"results.json": forged})
    before = snapshot(tmp_path)
    result = invoke("leaderboard", "add", bad, "--board", board, "--no-progress")
    clean_failure(result, 1)
    assert f"rejected {bad}: results.json differs from the board's recomputation" in result.output
    assert "suite_mean: submitted 0.99" in result.output and "fix:" in result.output
    assert snapshot(tmp_path) == before
    result = invoke("leaderboard", "add", cli_board["random"], "--board", board, "--max-files", "3")
    clean_failure(result, 1)
    assert "more than this board's limit of 3" in result.output
    result = invoke("leaderboard", "add", cli_board["random"], "--board", board, "--max-bytes", "1KiB")
    clean_failure(result, 1)
    assert "limit of 1.0 KiB" in result.output
    result = invoke("leaderboard", "add", cli_board["random"], "--board", board, "--max-bytes", "huge")
    clean_failure(result, 1)
    assert "cannot read 'huge' as a size" in result.output
    assert snapshot(tmp_path) == before


def test_list_shows_every_submission(cli_board: dict[str, Path]) -> None:
    result = invoke("leaderboard", "list", "--board", cli_board["board"])
    assert result.exit_code == 0, result.output
    for e in Board(cli_board["board"]).entries():
        assert e.record.id in result.output and e.record.name in result.output
        for v in e.results.vla:
            assert f"{v.vla_score.value:.1f} ({v.label})" in result.output
    clean_failure(invoke("leaderboard", "list", "--board", cli_board["root"] / "nope"), 1)


def cells(output: str, key: str) -> list[list[str]]:
    """The table rows (cells stripped) whose line mentions `key`."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in output.splitlines() if key in line and "│" in line]


def test_build_and_rejudge_and_build_again(cli_board: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    board = tmp_path / "board"
    shutil.copytree(cli_board["board"], board)
    site = tmp_path / "site"
    result = invoke("leaderboard", "build", board, "-o", site)
    assert result.exit_code == 0, result.output
    n = len(Board(board).records())
    assert f"site written to {site / 'index.html'} ({n} submission(s), {n} report(s) built" in result.output
    assert re.search(r"\[1/3\] .*: report built in \d+\.\d s", result.output)
    judge = edited_grounded(tmp_path / "grounded-v2.yaml")
    version = load_judge(judge).effective_version
    result = invoke("leaderboard", "rejudge", board, "--judge", judge, "-c", "2")
    assert result.exit_code == 0, result.output
    moved = 0
    for e in Board(board).entries():
        submitted = RunResults.model_validate_json((e.folder / "results.json").read_text())
        (old,) = [v.vla_score.value for v in submitted.vla]
        (new,) = [v.vla_score.value for v in e.results.vla if v.label == f"grounded@{version}"]
        assert old is not None and new is not None
        (row,) = cells(result.output, e.record.id)
        assert row[3:] == [f"{old:.1f}", f"grounded@{version}", f"{new:.1f}", f"{new - old:+.1f}"]
        moved += row[-1] not in ("+0.0", "-0.0")
        assert Board(board).verify(e.record) == []
    assert moved >= 1 and "re-judged 3 of 3 submission(s)" in result.output
    result = invoke("leaderboard", "build", board, "-o", site)
    assert result.exit_code == 0, result.output
    page = (site / "index.html").read_text()
    assert f"VLA Score judged by grounded <code>{version}</code>" in page
    assert f"<code>{load_judge('grounded').effective_version}</code>" in page  # the submitted section stays
    assert page.count('class="badge"') == 3


def test_rejudge_failures_exit_non_zero(cli_board: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    board = tmp_path / "board"
    shutil.copytree(cli_board["board"], board)
    result = invoke("leaderboard", "rejudge", board, "-j", "no-such-judge")
    clean_failure(result, 1)
    assert "unknown judge 'no-such-judge'" in result.output
    result = invoke(
        "leaderboard",
        "rejudge",
        board,
        "-j",
        "vla-score",
        "--judge-model",
        "m",
        "--api-key-env",
        "VLASCORE_TEST_UNSET_KEY",
    )
    clean_failure(result, 1)
    assert "no API key: set $VLASCORE_TEST_UNSET_KEY" in result.output
    assert all(not r.board_judgements for r in Board(board).records())
    first = Board(board).records()[0]
    (board / "submissions" / first.id / "run" / "traces.sqlite").write_bytes(b"garbage")
    result = invoke("leaderboard", "rejudge", board, "-j", "grounded")
    clean_failure(result, 1)
    assert f"failed {first.id}" in result.output and "re-judged 2 of 3 submission(s); 1 failed" in result.output


def test_verify_spots_a_changed_file(cli_board: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    board = tmp_path / "board"
    shutil.copytree(cli_board["board"], board)
    result = invoke("leaderboard", "verify", board)
    assert result.exit_code == 0 and "3 of 3 submission(s) intact" in result.output
    first = Board(board).records()[0]
    path = board / "submissions" / first.id / "results.json"
    path.write_text(path.read_text().replace('"suite_mean"', '"suite_mean" ', 1))
    result = invoke("leaderboard", "verify", board)
    clean_failure(result, 1)
    assert f"{first.id}: results.json: changed since it was submitted" in result.output


def test_every_command_has_help_with_examples() -> None:
    for command in (
        ["submit"],
        ["leaderboard", "add"],
        ["leaderboard", "build"],
        ["leaderboard", "rejudge"],
        ["leaderboard", "serve"],
    ):
        result = invoke(*command, "--help")
        assert result.exit_code == 0 and "Example" in result.output, command
    assert "leaderboard" in invoke("--help").output and "submit" in invoke("--help").output


def _built_site(cli_board: dict[str, Path]) -> Path:
    site = cli_board["root"] / "served-site"
    if not (site / "index.html").exists():
        assert invoke("leaderboard", "build", cli_board["board"], "-o", site).exit_code == 0
    return site


def test_serve_answers_over_http_and_stops(cli_board: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from vlascore.board import serve

    site = _built_site(cli_board)
    servers: list[Any] = []
    real = serve.make_server

    def capture(*args: Any, **kwargs: Any) -> Any:
        servers.append(real(*args, **kwargs))
        return servers[-1]

    monkeypatch.setattr(serve, "make_server", capture)
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(invoke("leaderboard", "serve", site, "--port", "0")))
    thread.start()
    try:
        for _ in range(200):
            if servers:
                break
            time.sleep(0.02)
        url = serve.url_of(servers[0])
        with urllib.request.urlopen(url + "index.html", timeout=10) as response:  # noqa: S310 - a local URL
            body = response.read().decode()
        assert response.status == 200 and body == (site / "index.html").read_text()
        with urllib.request.urlopen(url + "data/board.json", timeout=10) as response:  # noqa: S310
            assert json.loads(response.read())["submissions"] == 3
    finally:
        if servers:
            servers[0].shutdown()
        thread.join(10)
    (result,) = results
    assert result.exit_code == 0, result.output
    assert f"serving {site} at {url}" in result.output and "stopped" in result.output


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_cleanly_on_ctrl_c(cli_board: dict[str, Path], stop: signal.Signals) -> None:
    site = _built_site(cli_board)
    # Started with SIGINT ignored, as a shell does for a background job (and CI may): Ctrl-C must still stop it.
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlascore.cli", "leaderboard", "serve", str(site), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **WIDE},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        with urllib.request.urlopen(match.group(1), timeout=10) as response:  # noqa: S310 - a local URL
            assert b"<table" in response.read()
        proc.send_signal(stop)
        out, errors = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, errors
    assert "stopped" in out and "Traceback" not in errors


def test_serve_refuses_a_folder_that_is_not_a_site(tmp_path: Path) -> None:
    result = invoke("leaderboard", "serve", tmp_path)
    clean_failure(result, 1)
    assert "is not a built leaderboard site" in result.output
