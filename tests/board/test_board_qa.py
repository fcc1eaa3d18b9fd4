"""QA results on the leaderboard: what a bundle carries of run/qa/, what the board recomputes and refuses, the
board record's QA figures and MM, and the site's QA tables (MM ranked only within one column set)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from boardkit import World, copy_board, edit_json, entries, get_world, rebundle, snapshot
from qakit import GRADES, MM, MM_COLUMNS, MM_MISSING, write_qa

from vlascore.board import Board, BoardError, Rejected, SiteData, build_site
from vlascore.board.bundle import Submission, pack
from vlascore.qa.records import QAResult


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return get_world(tmp_path_factory)


@pytest.fixture(scope="module")
def qa(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The expert run with the qakit QA results and its bundle; the noisy run with MMMU alone and its bundle."""
    base = tmp_path_factory.mktemp("qa-board")
    expert = write_qa(Path(shutil.copytree(world.runs["expert"], base / "expert")), "toy-expert")
    noisy = write_qa(Path(shutil.copytree(world.runs["noisy"], base / "noisy")), "board-noisy", only=("mmmu",))
    board = base / "board"
    out = {"expert": expert, "noisy": noisy, "board": board}
    for key in ("expert", "noisy"):
        out[f"{key}.zip"] = pack(out[key], base / f"{key}.zip", name=f"{key} with QA").path
        Board(board).add(out[f"{key}.zip"])
    return out


def refused(tmp_path: Path, bundle: Path, match: str) -> Rejected:
    """Adding `bundle` to a new board is refused with `match`, and changes nothing."""
    before = snapshot(tmp_path)
    with pytest.raises(Rejected, match=match) as info:
        Board(tmp_path / "board").add(bundle)
    assert snapshot(tmp_path) == before
    return info.value


def edit_result(bundle: Path, dst: Path, bench: str, **fields: object) -> Path:
    name = f"run/qa/{bench}.json"
    return rebundle(bundle, dst, replace={name: edit_json(entries(bundle)[name], lambda r: r.update(fields))})


# -- the bundle -------------------------------------------------------------------------------------------------
def test_a_bundle_carries_the_qa_results_and_samples_but_not_the_work_folder(qa: dict[str, Path]) -> None:
    files = entries(qa["expert.zip"])
    qa_names = sorted(n for n in files if n.startswith("run/qa/"))
    assert qa_names == sorted(
        f"run/qa/{b}{ext}" for b in ("mmmu", "mmvet", "ocrbench", "textvqa") for ext in (".json", ".samples.jsonl")
    )
    for name in qa_names:
        assert files[name] == (qa["expert"] / name.removeprefix("run/")).read_bytes()
    sub = Submission.model_validate_json(files["submission.json"])
    assert sub.schema_version == 2
    assert [(f.benchmark, f.status, f.score, f.mm_value, f.samples, f.limit, f.graded) for f in sub.qa] == [
        ("mmmu", "ok", 50.0, 50.0, 4, None, False),
        ("mmvet", "ok", 60.0, 60.0, 4, None, True),
        ("ocrbench", "ok", 600.0, 60.0, 5, 5, False),
        ("textvqa", "failed", None, None, 0, None, False),
    ]
    assert sub.mm is not None and sub.mm.value == pytest.approx(MM)
    assert (sub.mm.columns, sub.mm.missing) == (MM_COLUMNS, MM_MISSING)


def test_a_bundle_without_qa_results_is_unchanged(world: World) -> None:
    files = entries(world.bundles["expert"])
    assert not [n for n in files if n.startswith("run/qa/")]
    raw = json.loads(files["submission.json"])
    assert raw["schema_version"] == 1 and "qa" not in raw and "mm" not in raw  # the layout older boards read
    (record,) = Board(world.base_board).records()
    assert record.schema_version == 1 and record.qa == [] and record.mm is None
    raw = json.loads((Board(world.base_board).folder(record.id) / "record.json").read_text())
    assert raw["schema_version"] == 1 and "qa" not in raw and "mm" not in raw


def test_submit_refuses_a_qa_only_folder_and_figures_that_do_not_add_up(qa: dict[str, Path], tmp_path: Path) -> None:
    only = write_qa(tmp_path / "vlm-only", "vlm", only=("mmmu",))
    with pytest.raises(BoardError, match="holds QA results only"):
        pack(only, tmp_path / "b.zip")
    run = Path(shutil.copytree(qa["expert"], tmp_path / "run"))
    path = run / "qa" / "mmmu.json"
    edited = QAResult.model_validate_json(path.read_text()).model_copy(update={"mm_value": 55.0})
    path.write_text(edited.model_dump_json())
    with pytest.raises(Rejected, match=r"qa/mmmu.json: mm_value 55.0 is not score / 1 \(50.0\)"):
        pack(run, tmp_path / "b.zip")
    assert not (tmp_path / "b.zip").exists()


# -- the board --------------------------------------------------------------------------------------------------
def test_the_board_records_the_qa_figures_and_mm_with_its_columns(qa: dict[str, Path]) -> None:
    records = {r.name: r for r in Board(qa["board"]).records()}
    expert, noisy = records["expert with QA"], records["noisy with QA"]
    assert expert.schema_version == 2 and [f.benchmark for f in expert.qa] == ["mmmu", "mmvet", "ocrbench", "textvqa"]
    assert expert.mm is not None and expert.mm.value == pytest.approx(MM) and expert.mm.partial
    assert (expert.mm.columns, expert.mm.missing) == (MM_COLUMNS, MM_MISSING)
    assert noisy.mm is not None and (noisy.mm.value, noisy.mm.columns) == (50.0, ["mmmu"])
    index = json.loads((qa["board"] / "index.json").read_text())
    assert [s["mm"]["columns"] for s in index["submissions"]] == [MM_COLUMNS, ["mmmu"]]


def test_a_tampered_mmvet_score_is_refused(qa: dict[str, Path], tmp_path: Path) -> None:
    bundle = edit_result(qa["expert.zip"], tmp_path / "bad.zip", "mmvet", score=80.0, mm_value=80.0)
    expected = 100 * sum(GRADES) / len(GRADES)
    err = refused(
        tmp_path,
        bundle,
        r"run/qa/mmvet.json: score 80.0 is not the mean of the 4 grades in "
        rf"run/qa/mmvet.samples.jsonl x 100 \({expected!r}\)",
    )
    assert err.fix and "vlascore qa" in err.fix


def test_a_grade_edited_in_the_samples_file_is_refused(qa: dict[str, Path], tmp_path: Path) -> None:
    name = "run/qa/mmvet.samples.jsonl"
    rows = [json.loads(line) for line in entries(qa["expert.zip"])[name].decode().splitlines()]
    rows[1]["grade"]["score"] = 0.2
    bundle = rebundle(
        qa["expert.zip"], tmp_path / "bad.zip", replace={name: "".join(json.dumps(r) + "\n" for r in rows).encode()}
    )
    refused(tmp_path, bundle, r"run/qa/mmvet.json: score 60.0 is not the mean of the 4 grades")


def test_an_mm_value_that_is_not_the_score_on_mm_scale_is_refused(qa: dict[str, Path], tmp_path: Path) -> None:
    bundle = edit_result(qa["expert.zip"], tmp_path / "bad.zip", "ocrbench", mm_value=600.0)
    refused(tmp_path, bundle, r"run/qa/ocrbench.json: mm_value 600.0 is not score / 10 \(60.0\)")


def test_a_score_that_differs_from_the_submission_claim_is_refused(qa: dict[str, Path], tmp_path: Path) -> None:
    # Consistent in itself (mm_value = score), so only submission.json's figures (and MM) give it away.
    bundle = edit_result(qa["expert.zip"], tmp_path / "bad.zip", "mmmu", score=90.0, mm_value=90.0)
    err = refused(tmp_path, bundle, "submission.json does not match the bundled run: mm.value: submitted")
    assert "qa[0].mm_value: submitted 50.0, recomputed 90.0" in err.reason
    assert "qa[0].score: submitted 50.0, recomputed 90.0" in err.reason


def test_a_claimed_mm_that_is_not_the_mean_of_the_benchmarks_is_refused(qa: dict[str, Path], tmp_path: Path) -> None:
    sub = edit_json(entries(qa["expert.zip"])["submission.json"], lambda s: s["mm"].update(value=70.0))
    bundle = rebundle(qa["expert.zip"], tmp_path / "bad.zip", replace={"submission.json": sub})
    refused(tmp_path, bundle, rf"mm.value: submitted 70.0, recomputed {MM!r}")


def test_a_result_for_a_score_it_does_not_have_is_refused(qa: dict[str, Path], tmp_path: Path) -> None:
    bundle = edit_result(qa["expert.zip"], tmp_path / "bad.zip", "textvqa", score=99.0, mm_value=99.0)
    refused(tmp_path, bundle, "run/qa/textvqa.json is failed but states a score")


def test_qa_results_of_another_model_are_refused(qa: dict[str, Path], tmp_path: Path) -> None:
    bundle = edit_result(qa["expert.zip"], tmp_path / "bad.zip", "mmmu", model="gpt-4o")
    refused(tmp_path, bundle, "run/qa/mmmu.json was made with model 'gpt-4o', not the run's adapter 'toy-expert'")


def test_the_same_run_with_qa_added_is_a_duplicate(qa: dict[str, Path], world: World, tmp_path: Path) -> None:
    board = copy_board(world.base_board, tmp_path / "board")  # holds the expert run without QA
    with pytest.raises(Rejected, match=r"the same run \(identical traces\) is already on the board"):
        Board(board).add(qa["expert.zip"])


def test_older_records_are_read_and_newer_ones_refused(qa: dict[str, Path], tmp_path: Path) -> None:
    board = copy_board(qa["board"], tmp_path / "board")
    records = Board(board).records()
    path = Board(board).folder(records[0].id) / "record.json"
    raw = json.loads(path.read_text())
    older = {k: v for k, v in raw.items() if k not in ("qa", "mm")} | {"schema_version": 1}
    path.write_text(json.dumps(older))
    assert Board(board).records()[0].qa == []  # a schema-1 record: no QA figures
    path.write_text(json.dumps(raw | {"schema_version": 99}))
    with pytest.raises(BoardError, match="has schema version 99, newer than this vlascore reads .*upgrade vlascore"):
        Board(board).records()


# -- the site ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site(qa: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("qa-site") / "site"
    build_site(qa["board"], out)
    return out


def test_the_site_ranks_mm_only_within_one_column_set(site: Path) -> None:
    data = SiteData.model_validate_json((site / "data" / "board.json").read_text())
    assert data.schema_version == 2 and data.qa is not None
    assert [b.name for b in data.qa.benchmarks] == ["mmmu", "mmvet", "ocrbench", "textvqa"]
    (full, alone) = data.qa.groups
    assert (full.columns, full.limits, full.missing) == (MM_COLUMNS, {"ocrbench": 5}, MM_MISSING)
    assert [r.model.name for r in full.rows] == ["expert with QA"]
    assert full.rows[0].mm.value == pytest.approx(MM)
    assert (alone.columns, alone.limits, [r.model.name for r in alone.rows]) == (["mmmu"], {}, ["noisy with QA"])


def test_the_index_shows_qa_columns_mm_and_the_subset_and_partial_marks(site: Path) -> None:
    page = (site / "index.html").read_text()
    data = SiteData.model_validate_json((site / "data" / "board.json").read_text())
    assert data.qa is not None
    full, alone = data.qa.groups
    assert page.count('<table class="board qa-table"') == 2  # two column sets: two tables, never one ranking
    start = page.index(f'id="{full.anchor}"')
    table = page[start : page.index("</table>", start)]
    assert 'data-value="56.666666666666664">56.7<span class="ci">mean of mmmu, mmvet, ocrbench</span>' in table
    assert '<span class="badge">partial</span>' in table
    assert "subset (first 5)" in table and '600.0<span class="ci">/1000</span>' in table
    assert '<td class="num bad" data-value="" title="lmms-eval crashed: &lt;script&gt;' in table
    assert ">failed</td>" in table
    assert "MM over mmmu, mmvet, ocrbench (subset: first 5)" in page and "missing mmstar, mmbench" in page
    start = page.index(f'id="{alone.anchor}"')
    assert "mean of mmmu</span>" in page[start : page.index("</table>", start)]
    assert '<a href="#qa">Multimodal QA</a>' in page


def test_each_model_report_carries_its_qa_section(site: Path, qa: dict[str, Path]) -> None:
    for record in Board(qa["board"]).records():
        page = (site / "models" / record.id / "report.html").read_text()
        assert '<section id="qa">' in page and 'data-bench="mmmu"' in page


def test_a_board_without_qa_builds_no_qa_section(world: World, tmp_path: Path) -> None:
    build_site(world.base_board, tmp_path / "site")
    assert json.loads((tmp_path / "site" / "data" / "board.json").read_text())["qa"] is None
    assert 'id="qa"' not in (tmp_path / "site" / "index.html").read_text()


@pytest.mark.browser
def test_the_qa_tables_load_and_sort_in_a_browser(page: Any, site: Path) -> None:
    page.goto((site / "index.html").as_uri())
    assert page.locator("table.qa-table").count() == 2 and page.log.problems == []
    data = SiteData.model_validate_json((site / "data" / "board.json").read_text())
    assert data.qa is not None
    full = data.qa.groups[0]
    page.click(f"#{full.anchor} thead th:has-text('MMMU (val)')")
    assert page.get_attribute(f"#{full.anchor} thead th:has-text('MMMU (val)')", "aria-sort") == "descending"
    assert page.log.problems == []
