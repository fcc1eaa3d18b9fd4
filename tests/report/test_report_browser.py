"""The report in a real browser (Debian's chromium through Playwright): it loads from disk with no console errors
and no network, the episode table sorts, the drill-down opens with its frames, plot and rationale, and hostile
text from a policy or a model name stays text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vlascore import runner
from vlascore.adapters import ADAPTERS, Adapter, PolicyStep
from vlascore.backends import Observation
from vlascore.images import PNG_SIGNATURE
from vlascore.judging.engine import judge_run
from vlascore.report import write_report
from vlascore.suites import load_suite

pytestmark = pytest.mark.browser
PAYLOADS = ("<script>alert('script')</script>", "<img src=x onerror=alert('img')>", '"><svg onload=alert(3)>')


class HostileAdapter(Adapter):
    """Stands still and says hostile things (every payload, in reasoning and intention)."""

    name = "hostile-test"
    reasons = True

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        return PolicyStep(np.zeros(7), reasoning="plan: " + " ".join(PAYLOADS), intention=f"reach {PAYLOADS[1]}")


ADAPTERS.register("hostile-test", HostileAdapter)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("browser")
    runs = []
    for model in ("toy-expert", "random"):
        runs.append(base / model)
        runner.run(model=model, suite=load_suite("toy"), out=runs[-1], episodes=6)
        judge_run(runs[-1], "grounded")
    return write_report(runs, base / "report.html")


def rows(page) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(r.get_attribute("data-run"), r.get_attribute("data-id")) for r in page.locator("tr.ep-row").all()]


def test_report_loads_offline_sorts_and_opens_an_episode(page, report: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(report.as_uri())
    page.wait_for_selector("#success-chart .main-svg")
    assert page.locator("#vla-chart.js-plotly-plot").count() == 1  # plotly drew into it
    assert page.locator(".radar-plot.js-plotly-plot").count() == 2
    assert page.locator("#ep-count").text_content() == "12 of 12 episodes"
    assert rows(page)[:2] == [("0", "ToyPick-0"), ("0", "ToyPick-1")]

    page.click("#ep-head th[data-key='seed']")  # ascending seed: the two runs interleave
    assert [i for _, i in rows(page)] == [f"ToyPick-{s}" for s in range(6) for _ in range(2)]
    page.click("#ep-head th[data-key='seed']")  # descending
    assert [i for _, i in rows(page)] == [f"ToyPick-{s}" for s in reversed(range(6)) for _ in range(2)]
    assert page.get_attribute("#ep-head th[data-key='seed']", "aria-sort") == "descending"
    page.click("#ep-head th[data-key='outcome']")
    outcomes = [t.strip() for t in page.locator("tr.ep-row td:nth-child(4)").all_text_contents()]
    assert outcomes == sorted(outcomes, key=lambda o: o.split()[-1])  # "failure" before "success"

    page.select_option("#ep-filters select[name=run]", "1")
    assert page.locator("#ep-count").text_content() == "6 of 12 episodes"
    page.select_option("#ep-filters select[name=run]", "")
    page.locator("tr.ep-row[data-run='0'][data-id='ToyPick-2']").click()
    detail = page.locator("tr.detail")
    imgs = detail.locator(".film img")
    assert imgs.count() == 8
    assert all(w > 0 for w in imgs.evaluate_all("els => els.map(e => e.naturalWidth)"))  # decoded PNGs
    detail.locator(".actions-plot .main-svg").first.wait_for()
    assert "Action" in detail.locator(".verdict .thought").text_content()
    assert detail.locator(".timeline li").count() >= 2
    detail.locator("button.play").click()
    assert detail.locator(".player").is_visible()

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == PNG_SIGNATURE and shot.stat().st_size > 10_000
    assert page.log.problems == []


def test_a_link_opens_an_episode_from_the_failure_breakdown(page, report: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(report.as_uri() + "#ep=1/ToyPick-4")
    page.wait_for_selector("tr.detail")
    assert page.locator("tr.ep-row.open").get_attribute("data-id") == "ToyPick-4"
    page.locator("#failures a.eplink").first.click()
    opened = page.locator("tr.ep-row.open")
    assert opened.count() >= 1
    assert page.log.problems == []


def test_hostile_text_renders_as_text(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "hostile"
    runner.run(model="hostile-test", suite=load_suite("toy"), out=run, episodes=2)
    judge_run(run, "grounded")
    name = "<script>alert('name')</script><img src=x onerror=alert('name')>"
    report = write_report([run], tmp_path / "hostile.html", labels=[name])
    page.goto(report.as_uri())
    page.wait_for_selector("tr.ep-row")
    page.locator("tr.ep-row").first.click()
    page.wait_for_selector("tr.detail .timeline li")
    text = page.locator("body").inner_text()
    for payload in PAYLOADS:
        assert payload in text  # shown literally, in the reasoning timeline
    assert name in text  # the model name, in the summary and the run details
    assert page.locator("svg[onload], img[src='x']").count() == 0  # no element was made from the payloads
    assert page.log.dialogs == [] and page.log.page_errors == []
