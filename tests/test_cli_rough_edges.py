"""Rough edges a first user hit, each held by a test through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import vlascore
from vlascore.cli import app

cli = CliRunner()


def invoke(*args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_version() -> None:
    assert invoke("--version").strip() == f"vlascore {vlascore.__version__}"


def test_judge_help_shows_the_run_form() -> None:
    text = " ".join(invoke("judge", "--help").split())
    assert "vlascore judge RUN [OPTIONS] is vlascore judge run RUN [OPTIONS]" in text
    assert "Usage: vlascore judge [OPTIONS] RUN [OPTIONS] | COMMAND [ARGS]..." in text


def test_models_show_and_the_untruncated_needs_column() -> None:
    shown = json.loads(invoke("models", "show", "openvla", "--json"))
    assert shown["from"] == "built-in" and shown["extras"] == ["vlascore[models]"]
    assert {o["name"]: o["type"] for o in shown["options"]}["revision"] == "str | None"
    listing = cli.invoke(app, ["models", "list"], terminal_width=80).output
    needs = json.loads(invoke("models", "show", "openvla", "--json"))["needs"]
    assert needs.split()[-1] in " ".join(listing.split())  # folded onto more lines, never cut off
    assert "models show" in " ".join(invoke("models", "list").split())
    invoke("models", "show", "nosuch", code=2)


def test_score_notes_runs_of_different_suites(tmp_path: Path) -> None:
    toy, small = tmp_path / "toy", tmp_path / "small.yaml"
    invoke("run", "-m", "random", "-s", "toy", "-n", "1", "-o", str(toy), "--no-progress")
    suite = (vlascore.paths.data_dir("tasks") / "toy.yaml").read_text().replace("max_steps: 40", "max_steps: 20")
    small.write_text(suite)
    invoke("run", "-m", "random", "-s", str(small), "-n", "1", "-o", str(tmp_path / "short"), "--no-progress")
    text = " ".join(invoke("score", str(toy), str(tmp_path / "short")).split())
    assert "these runs used different suites or protocols, so their simulated numbers are not comparable" in text
    assert "note: these runs" not in " ".join(invoke("score", str(toy), str(toy)).split())


def test_submit_refuses_what_a_board_would(tmp_path: Path) -> None:
    run = tmp_path / "partial"
    invoke("run", "-m", "random", "-s", "toy", "-n", "1", "-o", str(run), "--no-progress")
    record = json.loads((run / "run.json").read_text())
    record["tasks"], record["seeds"] = [], {}  # a run of none of the suite's tasks, as with --tasks
    (run / "run.json").write_text(json.dumps(record))
    text = " ".join(invoke("submit", str(run), "-o", str(tmp_path / "b.zip"), code=2).split())
    assert "the run covers 0 of the suite's 1 tasks (missing: ToyPick)" in text and not (tmp_path / "b.zip").exists()


def test_every_leaderboard_command_takes_board(tmp_path: Path) -> None:
    board = tmp_path / "board"
    for args in (("build", "-o", str(tmp_path / "site")), ("verify",), ("rejudge", "-j", "grounded")):
        missing = " ".join(invoke("leaderboard", *args, code=2).split())
        assert "name the board folder: --board DIR" in missing
        flag = cli.invoke(app, ["leaderboard", *args, "--board", str(board)])
        old = cli.invoke(app, ["leaderboard", args[0], str(board), *args[1:]])  # the positional form still works
        assert flag.exit_code == old.exit_code == 1 and flag.output == old.output and str(board) in flag.output
    both = " ".join(invoke("leaderboard", "verify", str(board), "--board", str(tmp_path / "other"), code=2).split())
    assert "two boards given" in both


@pytest.mark.parametrize("command", [["score"], ["adapter", "check", "random", "-s", "toy"]])
def test_json_is_a_flag_that_prints_to_stdout(command: list[str], tmp_path: Path) -> None:
    args = [*command]
    if command == ["score"]:
        run = tmp_path / "r"
        invoke("run", "-m", "random", "-s", "toy", "-n", "1", "-o", str(run), "--no-progress")
        args.append(str(run))
    data = json.loads(invoke(*args, "--json"))  # stdout holds the JSON alone
    assert data["run_id"] == "r" if command == ["score"] else data["ok"] is True


def test_task_names_fold_case_and_suggest(tmp_path: Path) -> None:
    invoke("run", "-m", "random", "-s", "toy", "-t", "toypick", "-n", "1", "-o", str(tmp_path / "r"), "--no-progress")
    assert json.loads((tmp_path / "r" / "run.json").read_text())["tasks"] == ["ToyPick"]  # the suite's own spelling
    text = " ".join(
        invoke("run", "-m", "random", "-s", "toy", "-t", "ToyPik", "-o", str(tmp_path / "x"), code=2).split()
    )
    assert "suite 'toy' has no task 'ToyPik'. Did you mean 'ToyPick'? Tasks: ToyPick" in text


def test_suite_errors_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    toy = (vlascore.paths.data_dir("tasks") / "toy.yaml").read_text()
    bad.write_text(toy.replace("    category: Pick\n", "    category: Pick\n    max_steps: -3\n"))
    line = next(i for i, text in enumerate(bad.read_text().splitlines(), 1) if "max_steps: -3" in text)
    out = " ".join(cli.invoke(app, ["tasks", "validate", str(bad)]).output.split())
    assert f"invalid suite {bad}:{line}: tasks.0.max_steps: Input should be greater than 0" in out
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ntasks: [\n  - id: a\n")
    out = " ".join(cli.invoke(app, ["tasks", "validate", str(broken)]).output.split())
    assert f"{broken}:3:3:" in out and "unicode string" not in out


def test_options_a_backend_does_not_have_are_refused(tmp_path: Path) -> None:
    out = " ".join(
        invoke("run", "-m", "random", "-s", "toy", "--sim-backend", "gpu", "-o", str(tmp_path / "r"), code=2).split()
    )
    assert "--sim-backend selects ManiSkill's physics; suite 'toy' runs on the 'toy' backend" in out
    out = " ".join(
        invoke("run", "-m", "random", "-s", "toy", "-B", "speed=2", "-o", str(tmp_path / "r"), code=2).split()
    )
    assert "has no option 'speed'" in out and not (tmp_path / "r").exists()
