"""The built site in a real browser (Debian's chromium via Playwright): loads from file:// without errors, sorts
by clicking a header, links to each model's report, and shows hostile names as text without running them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from boardkit import XSS_NAME, XSS_NOTES, XSS_REASONING, World, get_world

from vlascore.board import SiteData, build_site


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return get_world(tmp_path_factory)


pytestmark = pytest.mark.browser
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def site(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser-site") / "site"
    build_site(world.full_board, out)
    return out


def data_of(site: Path) -> SiteData:
    return SiteData.model_validate_json((site / "data" / "board.json").read_text())


def column(page: Any, table: str, index: int, attribute: str = "data-value") -> list[str]:
    """The `attribute` of every body cell in column `index` (0-based) of the table with id `table`."""
    script = f"rows => rows.map(r => r.cells[{index}].getAttribute('{attribute}'))"
    return page.eval_on_selector_all(f"#{table} tbody tr", script)


def header_index(page: Any, table: str, text: str) -> int:
    heads = page.eval_on_selector_all(f"#{table} thead th", "hs => hs.map(h => h.textContent.trim())")
    return heads.index(text)


def test_the_site_loads_from_file_without_errors(page: Any, site: Path, tmp_path: Path) -> None:
    page.goto((site / "index.html").as_uri())
    assert page.title() == data_of(site).title
    assert page.locator("table.board").count() == 3  # reasoning, specialist, success
    assert page.log.problems == []
    shot = tmp_path / "board.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


def test_clicking_a_header_sorts_the_rows(page: Any, site: Path) -> None:
    page.goto((site / "index.html").as_uri())
    section = data_of(site).suites[0].judges[0]
    table = f"{section.anchor}-reasoning"
    score = header_index(page, table, "VLA Score")
    initial = [float(v) for v in column(page, table, score)]
    assert initial == sorted(initial, reverse=True) and len(set(initial)) > 1  # built best first
    page.click(f"#{table} thead th:nth-child({score + 1})")
    ascending = [float(v) for v in column(page, table, score)]
    assert ascending == sorted(initial)
    assert page.get_attribute(f"#{table} thead th:nth-child({score + 1})", "aria-sort") == "ascending"
    page.click(f"#{table} thead th:nth-child({score + 1})")
    assert [float(v) for v in column(page, table, score)] == sorted(initial, reverse=True)
    name = header_index(page, table, "Model")
    page.click(f"#{table} thead th:nth-child({name + 1})")
    names = column(page, table, name)
    assert names == sorted(names, key=str.lower) and names != [r.model.name for r in section.reasoning]
    ids = page.eval_on_selector_all(f"#{table} tbody tr", "rows => rows.map(r => r.getAttribute('data-id'))")
    by_name = {r.model.name: r.model.id for r in section.reasoning}
    assert ids == [by_name[n] for n in names]  # whole rows moved, not just cells
    success = f"{data_of(site).suites[0].anchor}-success-table"
    mean = header_index(page, success, "Mean")
    page.click(f"#{success} thead th:nth-child({mean + 1})")
    means = [float(v) for v in column(page, success, mean)]
    assert means == sorted(means)
    assert page.log.problems == []


def test_hostile_names_and_notes_render_as_text(page: Any, site: Path) -> None:
    page.goto((site / "index.html").as_uri())
    page.wait_for_timeout(200)  # give an injected onerror handler every chance to fire
    assert page.log.dialogs == [] and page.log.problems == []
    cells = page.locator("td.model .name", has_text="<script>")
    assert cells.count() == 2  # its VLA table row and its success-table row
    assert cells.first.inner_text() == XSS_NAME
    assert page.locator("td.model .notes", has_text="onerror").first.inner_text() == XSS_NOTES
    assert page.locator("img").count() == 0  # no injected element exists at all
    assert page.locator("script").count() == 1  # the page's own sort script only


def test_a_row_links_to_the_models_report_which_loads_without_running_its_reasoning(page: Any, site: Path) -> None:
    """The row of the model whose name, notes and reasoning text carry script payloads."""
    page.goto((site / "index.html").as_uri())
    section = data_of(site).suites[0].judges[0]
    (row,) = [r for r in section.reasoning if r.model.name == XSS_NAME]
    link = page.locator(f"#{section.anchor}-reasoning tbody tr[data-id='{row.model.id}'] a.name")
    assert link.get_attribute("href") == f"models/{row.model.id}/report.html"
    link.click()
    page.wait_for_load_state("load")
    report = site / "models" / row.model.id / "report.html"
    assert report.is_file() and page.url == report.as_uri()
    assert XSS_NAME in page.title()
    page.locator("tr.ep-row").first.click()  # the drill-down shows the hostile reasoning, as text
    page.wait_for_selector("tr.detail .timeline li")
    assert XSS_REASONING in page.locator("tr.detail .timeline").inner_text()
    assert XSS_NAME in page.locator("#summary-table").inner_text()
    page.wait_for_timeout(200)
    assert page.log.dialogs == [] and page.log.page_errors == [] and page.log.blocked == []
