"""Real LIBERO runs (tests/liberokit.py: the scripted expert and random, judged by the grounded judge) through the
later stages as a user runs them: `vlascore report`, `vlascore submit`, `leaderboard add` with fingerprint gating
and `leaderboard build`; the report and the two-model board open in Debian's chromium without console errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from liberokit import get_libero_runs, needs_libero
from typer.testing import CliRunner

from vlascore.cli import app
from vlascore.images import PNG_SIGNATURE

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_libero]


def cli(*args: str) -> Any:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    kit = get_libero_runs(tmp_path_factory)
    root = tmp_path_factory.mktemp("libero-stages")
    report = root / "report.html"
    made = cli("report", kit.runs["scripted"], kit.runs["random"], "-o", report)
    assert made.exit_code == 0, made.output
    bundles = {}
    for model, path in kit.runs.items():
        bundles[model] = root / f"{model}.zip"
        packed = cli("submit", path, "-o", bundles[model], "--name", f"LIBERO {model}")
        assert packed.exit_code == 0, packed.output
    board = root / "board"
    # the shortened suite is no built-in protocol: a board refuses it until its owner accepts the suite's file
    refused = cli("leaderboard", "add", bundles["scripted"], "--board", board, "--min-episodes", "1")
    assert refused.exit_code == 1 and "is not one this board" in refused.output
    (board / "suites").mkdir(parents=True, exist_ok=True)
    shutil.copy(kit.suite_file, board / "suites" / kit.suite_file.name)
    for bundle in bundles.values():
        added = cli("leaderboard", "add", bundle, "--board", board, "--min-episodes", "1")  # the kit runs one each
        assert added.exit_code == 0, added.output
    site = root / "site"
    assert cli("leaderboard", "build", board, "-o", site).exit_code == 0
    return {"report": report, "site": site}


def test_the_libero_report_opens_with_its_frames_and_verdicts(page: Any, built: dict[str, Path]) -> None:
    page.goto(built["report"].as_uri())
    page.wait_for_selector("#success-chart .main-svg")
    assert page.locator("#ep-count").text_content() == "4 of 4 episodes"
    page.locator("tr.ep-row[data-run='0']").first.click()
    detail = page.locator("tr.detail")
    imgs = detail.locator(".film img")
    assert imgs.count() > 0 and all(w > 0 for w in imgs.evaluate_all("els => els.map(e => e.naturalWidth)"))
    assert "Action" in detail.locator(".verdict .thought").text_content()
    assert page.log.problems == []


def test_the_two_model_libero_board_opens_and_links_each_report(
    page: Any, built: dict[str, Path], tmp_path: Path
) -> None:
    page.goto((built["site"] / "index.html").as_uri())
    text = page.locator("body").inner_text()
    assert "LIBERO scripted" in text and "LIBERO random" in text and "libero-object-short" in text
    assert page.locator("table.board tbody tr").count() >= 2
    shot = tmp_path / "board.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == PNG_SIGNATURE
    assert page.log.problems == []
    link = page.locator("table.board tbody tr a[href$='.html']").first
    page.goto((built["site"] / link.get_attribute("href")).as_uri())
    page.wait_for_selector("tr.ep-row")
    assert page.log.problems == []
