"""`leaderboard build` (site.py) and `leaderboard rejudge` (Board.rejudge): the data file, the tables, escaping,
report reuse, and re-judging with another judge version."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from boardkit import XSS_NAME, XSS_NOTES, World, copy_board, edited_grounded, get_world
from conftest import jctx

from vlascore.board import Board, BoardError, SiteData, build_site
from vlascore.board.bundle import make_submission, write_bundle
from vlascore.board.site import model_ref, site_data
from vlascore.judging import load_judge
from vlascore.scoring import RunResults
from vlascore.store import load_run


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return get_world(tmp_path_factory)


@pytest.fixture(scope="module")
def site(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    build_site(world.full_board, out)
    return out


def test_board_json_has_one_section_per_suite_and_judge_with_the_stored_figures(world: World, site: Path) -> None:
    data = SiteData.model_validate_json((site / "data" / "board.json").read_text())
    entries = Board(world.full_board).entries()
    assert data.submissions == len(entries) == len(world.bundles)
    (suite,) = data.suites
    assert suite.fingerprint == entries[0].results.suite_fingerprint and suite.tasks == ["ToyPick"]
    assert {r.model.id for r in suite.success} == {e.record.id for e in entries}  # success-only: everyone
    means = [r.mean.value for r in suite.success]
    assert means == sorted(means, reverse=True)
    by_id = {e.record.id: e for e in entries}
    for row in suite.success:
        r = by_id[row.model.id].results
        assert row.mean.value == pytest.approx(100 * r.suite_mean)  # type: ignore[operator]
        assert row.mean.ci_low == pytest.approx(100 * r.suite_ci_low)  # type: ignore[operator]
        assert row.tasks[0].rate.value == pytest.approx(100 * r.tasks[0].success_rate)  # type: ignore[operator]
    configs = {(v.judge, v.judge_version, v.judge_model) for e in entries for v in e.results.vla}
    assert {(j.judge, j.judge_version, j.judge_model) for j in suite.judges} == configs
    (section,) = suite.judges
    for mode, rows in (("reasoning", section.reasoning), ("specialist", section.specialist)):
        expected = {e.record.id for e in entries if e.results.vla and e.results.vla[0].mode == mode}
        assert {r.model.id for r in rows} == expected and expected
        scores = [r.vla_score.value for r in rows]
        assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
        for row in rows:
            (v,) = by_id[row.model.id].results.vla
            assert (row.vla_score, row.sim, row.action, row.intention) == (v.vla_score, v.sim, v.action, v.intention)
            assert (row.reasoning is None) == (mode == "specialist") and row.source == "submitted"
            assert (row.judged, row.failed, row.episodes) == (v.judged, v.failed, v.episodes)


def test_index_shows_every_value_with_its_interval_and_links(world: World, site: Path) -> None:
    page = (site / "index.html").read_text()
    data = json.loads((site / "data" / "board.json").read_text())
    for suite in data["suites"]:
        for section in suite["judges"]:
            for row in section["reasoning"]:
                v = row["vla_score"]
                assert (
                    f'data-value="{float(v["value"])!r}">{v["value"]:.1f}<span class="ci">{v["ci_low"]:.1f}&ndash;'
                    f"{v['ci_high']:.1f}</span>" in page
                )
            assert section["judge_version"] in page
    for e in Board(world.full_board).entries():
        folder = site / "models" / e.record.id
        assert f'href="models/{e.record.id}/report.html"' in page
        assert (folder / "report.html").is_file()
        assert (folder / "submission.json").read_bytes() == (e.folder / "submission.json").read_bytes()
        assert (folder / "results.json").read_bytes() == (e.folder / "results.json").read_bytes()
    assert not re.search(r"<script[^>]*\bsrc\s*=", page) and not re.search(r"<link[^>]*stylesheet", page)
    headers = re.findall(r"<th[^>]*>([^<]+)</th>", page)
    for col in ("Sim.", "R", "A", "I", "RA", "VLA Score", "Mean"):
        assert col in headers


def test_user_text_is_escaped_and_only_http_urls_are_links(world: World, site: Path, tmp_path: Path) -> None:
    page = (site / "index.html").read_text()
    assert XSS_NAME not in page and "<img src=x" not in page and "<img src=y" not in page
    assert html.escape(XSS_NAME, quote=False) in page and html.escape(XSS_NOTES, quote=False) in page
    assert 'href="https://example.org/model?a=1&amp;b=2"' in page
    # A bundle whose url is not http(s) (the submit command refuses one; a hand-made bundle may not).
    run = load_run(world.runs["random"])
    from vlascore.scoring import score_run

    results = score_run(run)
    sub = make_submission(run.run, results, name="js link", url="javascript:alert(7)")
    bundle = write_bundle(run, results, sub, tmp_path / "js.zip").path
    board = copy_board(world.base_board, tmp_path / "board")
    Board(board).add(bundle)
    build_site(board, tmp_path / "site")
    page = (tmp_path / "site" / "index.html").read_text()
    assert "javascript:" not in page and "js link" in page


def test_reports_are_reused_until_their_inputs_change(world: World, tmp_path: Path) -> None:
    board = copy_board(world.base_board, tmp_path / "board")
    lines: list[str] = []
    first = build_site(board, tmp_path / "site", progress=lines.append)
    assert (first.reports_built, first.reports_reused) == (1, 0) and not first.report_errors
    assert sum("report built in" in line for line in lines) == 1
    Board(board).add(world.bundles["silent"])
    lines.clear()
    second = build_site(board, tmp_path / "site", progress=lines.append)
    assert (second.reports_built, second.reports_reused) == (1, 1)
    assert sum("report up to date" in line for line in lines) == 1
    Board(board).rejudge("grounded")  # a new judgement file for both: both reports change
    assert build_site(board, tmp_path / "site").reports_built == 2
    again = build_site(board, tmp_path / "site")
    assert (again.reports_built, again.reports_reused) == (0, 2)
    assert build_site(board, tmp_path / "site", force=True).reports_built == 2


def test_the_site_refuses_a_foreign_folder_and_the_board_itself(world: World, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep")
    with pytest.raises(BoardError, match="not empty and not a leaderboard site"):
        build_site(world.full_board, tmp_path / "mine")
    board = copy_board(world.base_board, tmp_path / "board")
    with pytest.raises(BoardError, match="inside the board folder"):
        build_site(board, board / "site")
    with pytest.raises(BoardError, match="it does not exist"):
        build_site(tmp_path / "nothing", tmp_path / "site")


def test_rejudge_adds_a_board_judgement_and_reports_the_deltas(world: World, tmp_path: Path) -> None:
    board = Board(copy_board(world.full_board, tmp_path / "board"))
    judge = edited_grounded(tmp_path / "grounded-v2.yaml")
    version = load_judge(judge).effective_version
    outcomes = board.rejudge(str(judge))
    assert len(outcomes) == len(world.bundles) and all(o.error is None for o in outcomes)
    label = f"grounded@{version}"
    moved = 0
    for o, entry in zip(outcomes, board.entries(), strict=True):
        assert o.label == label and o.id == entry.record.id
        submitted = RunResults.model_validate_json((entry.folder / "results.json").read_text())
        assert o.old == {v.label: v.vla_score.value for v in submitted.vla}
        (new,) = [v for v in entry.results.vla if v.label == label]
        assert new.judge_version == version and o.new == new.vla_score.value
        assert [j.label for j in entry.record.board_judgements] == [label]
        assert (entry.run_dir / "judgements" / f"{label}.json").is_file()
        assert board.verify(entry.record) == []  # the submitted files are byte-identical
        moved += any(old is not None and o.new is not None and abs(o.new - old) > 0.05 for old in o.old.values())
    assert moved >= 1
    entries = board.entries()
    data = site_data("t", "", entries, {e.record.id: model_ref(e) for e in entries})
    sections = {j.judge_version: j for j in data.suites[0].judges}
    assert version in sections and len(sections) == 2
    rows = sections[version].reasoning + sections[version].specialist
    assert len(rows) == len(world.bundles) and all(r.source == "board" for r in rows)


def test_rejudge_reports_a_failing_submission_and_goes_on(world: World, tmp_path: Path) -> None:
    board = Board(copy_board(world.full_board, tmp_path / "board"))
    broken = board.records()[0]
    (board.folder(broken.id) / "run" / "traces.sqlite").write_bytes(b"not a database")
    outcomes = board.rejudge("grounded")
    failed = [o for o in outcomes if o.error]
    assert [o.id for o in failed] == [broken.id]
    assert all(o.new is not None for o in outcomes if not o.error)


def test_rejudge_refuses_an_unknown_judge_up_front(world: World, tmp_path: Path) -> None:
    from vlascore.judging import JudgeError

    board = Board(copy_board(world.base_board, tmp_path / "board"))
    with pytest.raises(JudgeError, match="unknown judge 'nope'"):
        board.rejudge("nope")
    with pytest.raises(JudgeError, match="pass --judge-model"):
        board.rejudge("vla-score")
    assert board.records()[0].board_judgements == []


def test_rejudge_with_a_vlm_judge_labels_by_model_and_version(world: World, tmp_path: Path) -> None:
    from vlascore.judging.mockserver import MockOpenAI

    board = Board(copy_board(world.base_board, tmp_path / "board"))
    board.add(world.bundles["random"])  # a specialist: vla-score picks the specialist judge for it
    with MockOpenAI() as server:
        outcomes = board.rejudge(
            "vla-score",
            jctx(
                "mock-vlm",
                concurrency=2,
                base_url=server.url,
                cache_dir=tmp_path / "cache",
                retrieval=False,
                max_retries=0,
            ),
        )
        calls = server.chat_calls
        again = board.rejudge(
            "vla-score",
            jctx("mock-vlm", base_url=server.url, cache_dir=tmp_path / "cache", retrieval=False, max_retries=0),
        )
        assert server.chat_calls == calls  # the second pass is served from the cache
    by_name = {o.name: o for o in outcomes}
    for key, judge in (("expert", "vla-score-reasoning"), ("random", "vla-score-specialist")):
        o = by_name[world.names[key]]
        assert o.error is None and o.label == f"{judge}--mock-vlm@{load_judge(judge).effective_version}"
        entry = next(e for e in board.entries() if e.record.name == world.names[key])
        (v,) = [v for v in entry.results.vla if v.label == o.label]
        assert v.judge_model == "mock-vlm" and o.new == v.vla_score.value and v.judged == v.episodes
        assert [j.label for j in entry.record.board_judgements] == [o.label]
        assert board.verify(entry.record) == []
    assert [(o.label, o.new) for o in again] == [(o.label, o.new) for o in outcomes]


def test_reports_share_one_plotly_bundle(site: Path) -> None:
    from plotly.offline import get_plotlyjs

    shared = site / "assets" / "plotly.min.js"
    assert shared.read_text() == get_plotlyjs()
    reports = sorted((site / "models").glob("*/report.html"))
    assert reports
    for page in reports:
        text = page.read_text(encoding="utf-8")
        assert '<script src="../../assets/plotly.min.js"></script>' in text
        assert get_plotlyjs()[:2000] not in text  # not inlined a second time
        assert (page.parent / "../../assets/plotly.min.js").resolve() == shared.resolve()
