"""A suite with declared columns and averages on the board: the site shows every average with the columns it
averages, and only rows of one suite fingerprint (so one column set) share a table."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vlascore import runner
from vlascore.board import Board, build_site
from vlascore.board.bundle import pack
from vlascore.board.site import SiteData
from vlascore.suites import load_suite_file

SUITE = {
    "name": "colboard",
    "protocol_version": "1",
    "backend": "toy",
    "key_prefix": "cb",
    "defaults": {
        "env_id": "ToyPick-v0",
        "instruction": "pick up the red cube and move it to the green goal",
        "max_steps": 40,
        "camera": "top",
        "resolution": [32, 32],
        "control_mode": "ee_delta",
        "objects": {"cube": "cube", "goal": "goal"},
    },
    "tasks": [
        {
            "id": "near",
            "mean_over": ["variant"],
            "grid": [
                {"variant": "v1", "axes": [{"name": "e", "range": {"key": "e", "count": 3}}]},
                {"variant": "v2", "axes": [{"name": "e", "range": {"key": "e", "count": 3}}]},
            ],
        },
        {"id": "far", "seeds": {"start": 0, "count": 5}},
        {"id": "extra", "seeds": {"start": 0, "count": 5}},
    ],
    "columns": [
        {"id": "both", "title": "Both", "tasks": ["near", "far"]},
        {"id": "extra", "title": "Extra", "tasks": ["extra"], "in_mean": False},
    ],
    "averages": [
        {"id": "headline", "title": "Headline", "columns": ["both"]},
        {"id": "all", "title": "All columns", "columns": ["both", "extra"]},
    ],
}


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("colboard")
    (root / "board" / "suites").mkdir(parents=True)
    path = root / "board" / "suites" / "colboard.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    suite = load_suite_file(path)
    runs = {}
    for model in ("toy-expert", "random"):
        runs[model] = root / "runs" / model
        runner.run(model=model, suite=suite, out=runs[model])
        Board(root / "board").add(pack(runs[model], root / f"{model}.zip", name=model).path)
    return root / "board", runs


def test_the_site_lists_each_average_with_its_columns(board: tuple[Path, dict[str, Path]], tmp_path: Path) -> None:
    board_dir, _runs = board
    build_site(board_dir, tmp_path / "site")
    data = SiteData.model_validate_json((tmp_path / "site" / "data" / "board.json").read_text())
    (section,) = data.suites
    assert [c.id for c in section.columns] == ["both", "extra"] and section.columns[0].key == "cb/both"
    assert [(a.id, a.columns) for a in section.averages] == [("headline", ["both"]), ("all", ["both", "extra"])]
    assert section.mean_columns == ["both"]
    by_name = {r.model.name: r for r in section.success}
    entries = {e.submission.name: e.results for e in Board(board_dir).entries()}
    for name, row in by_name.items():
        res = entries[name]
        assert row.columns == [pytest.approx(100 * c.success_rate) for c in res.columns]
        assert row.averages == [pytest.approx(100 * a.value) for a in res.averages]
        near = next(t for t in res.tasks if t.task == "near")
        assert set(near.groups) == {"variant=v1", "variant=v2"}
    assert by_name["toy-expert"].averages[0] == pytest.approx(by_name["toy-expert"].mean.value)
    page = (tmp_path / "site" / "index.html").read_text()
    assert "Columns and averages" in page and 'title="mean of both, extra"' in page and "mean of 2" in page
