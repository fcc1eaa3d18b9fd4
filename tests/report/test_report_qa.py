"""The report's Multimodal QA section: per-run benchmark tables, the combined table with its summaries (each
stating its columns, partial ones marked), subset and failure markers, QA-only directories, and reports of runs
without QA results unchanged."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from qakit import FAILURE, MM_MISSING, write_qa
from typer.testing import CliRunner

from vlascore import runner
from vlascore.cli import app
from vlascore.report import build_report
from vlascore.scoring import score_run
from vlascore.store import load_run
from vlascore.suites import load_suite

SIM_TOC = (
    '<nav class="toc"><a href="#summary">summary</a><a href="#charts">charts</a><a href="#compare">paired '
    'comparison</a><a href="#failures">failures</a><a href="#episodes">episodes</a><a href="#runs">run '
    "details</a></nav>"
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A simulated run with the qakit QA results, and a QA-only directory with MMMU alone."""
    base = tmp_path_factory.mktemp("qa-report")
    sim = base / "toy-random"
    runner.run(model="random", suite=load_suite("toy"), out=sim, episodes=2)
    write_qa(sim, "random")
    return {"sim": sim, "qa": write_qa(base / "vlm-only", "vlm", only=("mmmu",))}


@pytest.fixture(scope="module")
def html(runs: dict[str, Path]) -> str:
    return build_report([runs["sim"], runs["qa"]])


def section(html: str) -> str:
    match = re.search(r'<section id="qa">(.*?)</section>', html, re.S)
    assert match, "no QA section"
    return match.group(1)


def bench_row(card: str, bench: str) -> list[str]:
    row = re.search(rf'<tr data-bench="{bench}"[^>]*>(.*?)</tr>', card, re.S)
    assert row, bench
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]


def card(html: str, anchor: str) -> str:
    match = re.search(rf'<div class="card qa-run" id="{anchor}">(.*?)</table>', html, re.S)
    assert match, anchor
    return match.group(1)


def combined(html: str, row: int) -> str:
    match = re.search(rf'<tr data-row="{row}">(.*?)</tr>', section(html), re.S)
    assert match, row
    return match.group(1)


def cell(row: str, attr: str) -> str:
    match = re.search(rf"<td[^>]*data-{attr}[^>]*>(.*?)</td>", row, re.S)
    assert match, attr
    return match.group(1)


def test_each_run_has_its_benchmark_table(html: str) -> None:
    sim = card(html, "qa-1")
    # benchmark, score, MM scale, questions, split, status, grader, data, created
    assert bench_row(sim, "mmmu")[:7] == ["MMMU (val)mmmu", "50.0%", "50.0", "4", "full split", "ok", "lmms-eval"]
    assert bench_row(sim, "mmvet")[1:7] == ["60.0%", "60.0", "4", "full split", "ok", "judge judge-llmmmvet-grader-1"]
    assert bench_row(sim, "ocrbench")[1:6] == ["600.0/1000", "60.0", "5", "subset (first 5)", "ok"]
    failed = bench_row(sim, "textvqa")
    assert failed[1:4] == ["n/a", "&ndash;", "0"] and failed[5].startswith("failed: lmms-eval crashed")
    assert "hub lmms-lab-encoder/MMMU, split validation" in bench_row(sim, "mmmu")[7]
    assert [m for m in re.findall(r'<tr data-bench="(\w+)"', sim)] == ["mmmu", "mmvet", "ocrbench", "textvqa"]
    assert FAILURE not in html and "&lt;script&gt;alert(&#39;qa&#39;)&lt;/script&gt;" in html  # escaped
    only = re.search(r'<div class="card qa-run" id="qa-2">\s*<h3>(.*?)</h3>', html, re.S)
    assert only and "vlm-only" in only.group(1) and "QA results only, no simulated run" in only.group(1)


def test_the_combined_table_states_every_summary_and_marks_partial_and_subset(runs: dict[str, Path], html: str) -> None:
    sim = combined(html, 0)
    suite_mean = score_run(load_run(runs["sim"])).suite_mean
    assert suite_mean is not None
    assert re.search(rf'<a href="#qa-1">toy-random</a></td>\s*<td>{100 * suite_mean:.1f}</td>', sim)
    assert cell(sim, 'bench="mmmu"') == '<span class="v">50.0</span>'
    assert "600.0" in cell(sim, 'bench="ocrbench"') and "/1000" in cell(sim, 'bench="ocrbench"')
    assert '<span class="tag flag">subset (first 5)</span>' in cell(sim, 'bench="ocrbench"')
    assert re.search(r'<td class="bad" data-bench="textvqa" title="[^"]*">failed</td>', sim)
    assert 'data-bench="mmstar" title="not run">&ndash;' in sim
    mm = cell(sim, 'summary="MM"')
    assert '<span class="v">56.7</span><span class="ci">mean of mmmu, mmvet, ocrbench</span>' in mm
    assert '>partial</span><span class="ci">missing ' + ", ".join(MM_MISSING) + "</span>" in mm
    average = cell(sim, 'summary="Average"')
    assert '<span class="v">56.7</span><span class="ci">mean of MM</span>' in average and "missing GR, WR" in average
    assert "none of google_vm/pick_coke_can" in cell(sim, 'summary="GR"') and "n/a" in cell(sim, 'summary="GR"')
    assert 'title="MM = 56.7 (mean of mmmu, mmvet, ocrbench; partial, missing mmstar' in sim  # Summary.describe()

    only = combined(html, 1)
    assert '<a href="#qa-2">vlm-only</a>' in only and 'title="no simulated run">&ndash;' in only
    assert '<span class="v">50.0</span><span class="ci">mean of mmmu</span>' in cell(only, 'summary="MM"')
    notes = re.findall(r'<p class="note">(.*?)</p>', section(html))
    assert any("MM averages different benchmarks in different runs" in n for n in notes)
    assert any("ocrbench (first 5)" in n for n in notes)


def test_a_mixed_report_keeps_the_simulated_sections_for_the_simulated_run(html: str) -> None:
    assert 'id="summary-table"' in html and 'Plotly.newPlot("success-chart"' in html
    assert '<a href="#qa">multimodal QA</a>' in html
    assert re.search(r'2 runs:\s*<a href="#run-1">toy-random</a>, <a href="#qa-2">vlm-only</a>', html)
    assert html.count('<tr data-run="0"') == 1 and 'data-run="1"' not in html  # the QA-only dir has no sim row


def test_a_qa_only_directory_gets_a_qa_only_report(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "qa.html"
    result = CliRunner().invoke(app, ["report", str(runs["qa"]), "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert '<section id="qa">' in page and "<script" not in page  # no plotly, no episode browser
    for absent in ('id="summary"', 'id="charts"', 'id="episodes"', 'id="runs"'):
        assert absent not in page
    assert bench_row(card(page, "qa-1"), "mmmu")[1:5] == ["50.0%", "50.0", "4", "full split"]


def test_a_folder_with_neither_a_run_nor_qa_results_is_still_refused(tmp_path: Path) -> None:
    (tmp_path / "empty" / "qa").mkdir(parents=True)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "empty"), "-o", str(tmp_path / "r.html")])
    assert result.exit_code != 0 and "is not a vlascore run directory" in result.output


def test_a_run_without_qa_results_renders_as_before(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vlascore.report.build as build

    monkeypatch.setattr(build, "utcnow", lambda: "2000-01-01T00:00:00+00:00")
    plain = tmp_path / "toy-random"
    shutil.copytree(runs["sim"], plain, ignore=shutil.ignore_patterns("qa"))
    page = build.build_report([plain])
    assert 'id="qa"' not in page and "Multimodal QA" not in page and "qa-combined" not in page
    assert SIM_TOC in page
    (plain / "qa" / "work").mkdir(parents=True)  # `vlascore qa` started, nothing finished: still no section
    assert build.build_report([plain]) == page


@pytest.mark.browser
def test_reports_with_qa_load_in_a_browser_without_errors(page: Any, runs: dict[str, Path], tmp_path: Path) -> None:
    from vlascore.report import write_report

    for paths in ([runs["sim"], runs["qa"]], [runs["qa"]]):
        out = write_report(paths, tmp_path / "r.html")
        page.goto(out.as_uri())
        assert page.locator("#qa-combined tbody tr").count() == len(paths)
        assert page.log.problems == []
