"""A run that mixes completed and errored episodes (a policy server dying mid-run makes one) through every command
that reads a run, as a user would call them. Errored episodes used to come back from the traces database as NaN
through pandas and crash every reader that rebuilt episode records (judge, leaderboard add)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlascore.cli import app
from vlascore.judging.mockserver import MockOpenAI
from vlascore.store import load_run

cli = CliRunner()
SEEDS = 3  # the flaky policy errors on seed 1 of every task: two completed episodes and one errored per task


def invoke(*args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mixed") / "run"
    invoke("run", "-m", "flaky", "-s", "toy", "-n", str(SEEDS), "-o", str(out), "--no-progress")
    status = load_run(out).episodes.groupby("status").size().to_dict()
    assert status["errored"] > 0 and status["ok"] > 0
    return out


@pytest.fixture
def run(mixed: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(mixed, copy)
    return copy


def test_judge_grounded_and_vlm_judge_only_the_completed_episodes(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLASCORE_CACHE_DIR", str(tmp_path / "cache"))
    episodes = load_run(run).episodes
    ok = sorted(episodes.loc[episodes["status"] == "ok", "episode_id"])
    assert f"judged {len(ok)} episode(s)" in invoke("judge", str(run), "--no-progress")
    with MockOpenAI() as server:
        out = invoke(
            "judge",
            str(run),
            "-j",
            "vla-score",
            "--judge-model",
            "m",
            "--base-url",
            server.url,
            "--no-retrieval",
            "--no-progress",
        )
    assert f"judged {len(ok)} episode(s)" in out
    for label in ("grounded", "vla-score-reasoning--m"):
        stored = json.loads((run / "judgements" / f"{label}.json").read_text())
        assert sorted(j["episode_id"] for j in stored["judgements"]) == ok
    assert "errored episode(s) excluded from the rates" in invoke("score", str(run))
    invoke("judge", "audit", str(run), "-k", "2", "--no-injection")


def test_report_and_kb_read_the_run(run: Path, tmp_path: Path) -> None:
    invoke("judge", str(run), "--no-progress")
    report = tmp_path / "report.html"
    invoke("report", str(run), "-o", str(report))
    assert report.stat().st_size > 0
    kb = tmp_path / "kb"
    invoke(
        "kb",
        "add",
        str(run),
        "ToyPick-0",
        "--kb",
        str(kb),
        "--rationale",
        "Reaches, grasps and carries.",
        "--scores",
        "R=8,A=8,I=8,RA=8",
        "--reviewed-by",
        "test",
        "--category",
        "Pick",
    )
    errored = cli.invoke(
        app,
        [
            "kb",
            "add",
            str(run),
            "ToyPick-1",
            "--kb",
            str(kb),
            "--rationale",
            "x",
            "--scores",
            "R=1,A=1,I=1,RA=1",
            "--reviewed-by",
            "test",
            "--category",
            "Pick",
        ],
    )
    assert errored.exit_code == 2 and "errored" in errored.output and "Traceback" not in errored.output


def test_resume_submit_add_rejudge_and_build(run: Path, tmp_path: Path) -> None:
    assert "resuming" in invoke(
        "run", "-m", "flaky", "-s", "toy", "-n", str(SEEDS), "-o", str(run), "--resume", "--no-progress"
    )
    invoke("judge", str(run), "--no-progress")
    bundle = tmp_path / "mixed.zip"
    invoke("submit", str(run), "-o", str(bundle), "--name", "Mixed")
    board = tmp_path / "board"
    assert "accepted" in invoke(
        "leaderboard", "add", str(bundle), "--board", str(board), "--min-episodes", str(SEEDS), "--no-progress"
    )
    invoke("leaderboard", "rejudge", str(board), "-j", "grounded")
    invoke("leaderboard", "build", str(board), "-o", str(tmp_path / "site"))
