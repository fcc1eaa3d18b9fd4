"""The HTML report: real content, offline, decodable thumbnails, escaping, and the CLI command."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

from vlascore import runner
from vlascore.adapters import ADAPTERS, Adapter, PolicyStep
from vlascore.backends import Observation
from vlascore.cli import app
from vlascore.images import PNG_SIGNATURE, encode_png, sample_indices, thumbnail
from vlascore.judging.engine import judge_run
from vlascore.report import build_report, write_report
from vlascore.report.episodes import encode_actions, filmstrip_ids
from vlascore.report.timeline import collapse
from vlascore.scoring import mcnemar_exact, score_run
from vlascore.scoring.power import mcnemar_sample_size
from vlascore.store import StoreError, load_run
from vlascore.suites import load_suite

XSS = "<script>alert(1)</script>"
DATA = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)
CHARTS = re.compile(r'<script type="application/json" id="report-charts">(.*?)</script>', re.S)


class XssAdapter(Adapter):
    """Does nothing, and says something hostile."""

    name = "xss-test"
    reasons = True

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        return PolicyStep(np.zeros(7), reasoning=f"I think {XSS} & more", intention="stay <b>still</b>")


ADAPTERS.register("xss-test", XssAdapter)


def png_chunks(data: bytes) -> dict[bytes, bytes]:
    """Chunk tag -> data (IDAT chunks concatenated); checks the signature and every CRC."""
    assert data[:8] == PNG_SIGNATURE
    chunks: dict[bytes, bytes] = {}
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + body) & 0xFFFFFFFF, tag
        chunks[tag] = chunks.get(tag, b"") + body
        pos += 12 + length
    assert list(chunks)[0] == b"IHDR" and list(chunks)[-1] == b"IEND"
    return chunks


def decode_png(data: bytes) -> np.ndarray:
    """Inverse of encode_png (8-bit RGB, filter 0 only)."""
    chunks = png_chunks(data)
    w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour, interlace) == (8, 2, 0)
    raw = zlib.decompress(chunks[b"IDAT"])
    assert len(raw) == h * (1 + 3 * w)
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(h, 1 + 3 * w)
    assert not rows[:, 0].any(), "every scanline uses filter 0"
    return rows[:, 1:].reshape(h, w, 3)


def report_data(html: str) -> dict:
    """The episode browser's JSON, as the page's script reads it."""
    match = DATA.search(html)
    assert match, "no report-data block"
    return json.loads(match.group(1))


def report_charts(html: str) -> dict:
    match = CHARTS.search(html)
    assert match, "no report-charts block"
    return json.loads(match.group(1))


def thumbnails(episode: dict) -> list[bytes]:
    prefix = "data:image/png;base64,"
    assert all(f[0].startswith(prefix) for f in episode.get("f", []))
    return [base64.b64decode(f[0][len(prefix) :]) for f in episode.get("f", [])]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "toy-random"
    runner.run(model="random", suite=load_suite("toy"), out=out, episodes=3)
    return out


@pytest.fixture(scope="module")
def toy_html(toy_run: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = write_report([toy_run], tmp_path_factory.mktemp("report") / "sub" / "report.html")
    assert path.is_file()
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """toy-expert and random on the same 8 seeds, judged by the grounded judge."""
    base = tmp_path_factory.mktemp("judged")
    out = {}
    for model in ("toy-expert", "random"):
        out[model] = base / model
        runner.run(model=model, suite=load_suite("toy"), out=out[model], episodes=8)
        judge_run(out[model], "grounded")
    return out


@pytest.fixture(scope="module")
def compare_html(judged: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report([judged["toy-expert"], judged["random"]], tmp_path_factory.mktemp("cmp") / "report.html")


# -- building blocks -----------------------------------------------------------------------------------
def test_png_encoder_round_trips_rgb_images() -> None:
    img = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(encode_png(img)), img)
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(decode_png(encode_png(grey)), np.repeat(grey[:, :, None], 3, axis=2))
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4, 4), dtype=np.uint8))


def test_thumbnail_box_averages_to_the_size_limit() -> None:
    img = np.zeros((128, 100, 3), dtype=np.uint8)
    img[:, 50:] = 200
    small = thumbnail(img, max_side=64)
    assert small.shape == (64, 50, 3) and small.dtype == np.uint8
    assert small[0, 0, 0] == 0 and small[0, -1, 0] == 200
    assert thumbnail(img, max_side=128) is img


@pytest.mark.parametrize(
    ("n", "expected"), [(0, []), (1, [0]), (5, [0, 1, 2, 3, 4]), (101, [0, 14, 29, 43, 57, 71, 86, 100])]
)
def test_sample_indices_are_uniform_and_keep_first_and_last(n: int, expected: list[int]) -> None:
    assert sample_indices(n, 8) == expected


def test_timeline_collapses_consecutive_repeats_per_episode() -> None:
    steps = pd.DataFrame(
        {
            "episode_id": ["a"] * 6 + ["b"] * 3,
            "step": [0, 1, 2, 3, 4, 5, 0, 1, 2],
            "intention": ["reach", "reach", None, "grasp", "reach", "reach", "reach", "reach", "reach"],
        }
    )
    segs = collapse(steps.sample(frac=1, random_state=1), "intention")  # order of rows must not matter
    got = {e: [(s.label, s.text) for s in segs[e]] for e in segs}
    assert got == {
        "a": [("steps 0-1", "reach"), ("step 3", "grasp"), ("steps 4-5", "reach")],
        "b": [("steps 0-2", "reach")],  # not merged across episodes
    }


# -- the report ----------------------------------------------------------------------------------------
def test_report_shows_the_scored_numbers(toy_run: Path, toy_html: str) -> None:
    results = score_run(load_run(toy_run))
    assert "ToyPick" in toy_html
    for t in results.tasks:
        row = re.search(rf'<td class="l">{t.task}</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>', toy_html)
        assert row, t.task
        assert row.group(1) == f"{100 * t.success_rate:.1f}"
        assert row.group(2) == f"{100 * t.ci_low:.1f}&ndash;{100 * t.ci_high:.1f}"
    foot = re.search(r'<td class="l">suite mean</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>', toy_html)
    assert foot and foot.group(1) == f"{100 * results.suite_mean:.1f}"
    assert foot.group(2) == f"{100 * results.suite_ci_low:.1f}&ndash;{100 * results.suite_ci_high:.1f}"
    for field in ("toy-random", "random", results.suite_fingerprint, results.protocol_version, "not judged"):
        assert field in toy_html
    episodes = report_data(toy_html)["episodes"]
    assert [e["id"] for e in episodes] == [f"ToyPick-{seed}" for seed in range(3)]
    steps = load_run(toy_run).episodes.set_index("episode_id")["num_steps"].to_dict()
    assert {e["id"]: e["n"] for e in episodes} == steps


def test_report_is_offline_with_plotly_inlined(toy_html: str) -> None:
    assert not re.search(r"<script[^>]*\bsrc\s*=", toy_html, re.I)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//", toy_html, re.I)
    assert get_plotlyjs() in toy_html
    assert 'Plotly.newPlot("success-chart"' in toy_html
    (bars,) = report_charts(toy_html)["success"]["data"]
    assert bars["type"] == "bar" and len(bars["error_y"]["array"]) == len(bars["error_y"]["arrayminus"]) == 2


def test_report_embeds_decodable_thumbnails(toy_run: Path, toy_html: str) -> None:
    run = load_run(toy_run)
    episodes = report_data(toy_html)["episodes"]
    for ep in episodes:
        frames, steps = run.frames(ep["id"])
        pngs = thumbnails(ep)
        assert len(pngs) == min(8, len(frames)) > 0
        assert np.array_equal(decode_png(pngs[0]), thumbnail(frames[0]))  # the first is the episode's first frame
        assert [f[1] for f in ep["f"]] == [int(steps[i]) for i in sample_indices(len(frames), 8)]
        assert ep["f"][-1][2] is True  # the final frame (after the last step) is marked


def test_actions_round_trip_through_the_int16_encoding(toy_run: Path, toy_html: str) -> None:
    run = load_run(toy_run)
    ep = report_data(toy_html)["episodes"][0]
    actions = np.array(run.steps.loc[run.steps["episode_id"] == ep["id"], "action"].tolist())
    a = ep["a"]
    q = np.frombuffer(base64.b64decode(a["q"]), dtype="<i2").reshape(-1, a["d"])
    decoded = q / 32767 * np.array(a["s"])
    assert a["n"] == len(actions) and a["k"] == 1
    assert np.allclose(decoded, actions, atol=np.abs(actions).max() / 30000)
    long = np.random.default_rng(0).uniform(-1, 1, size=(1001, 7))
    enc = encode_actions(long, max_points=200)
    assert enc["k"] == 6 and len(base64.b64decode(enc["q"])) == 2 * 7 * (len(range(0, 1001, 6)) + 1)  # + last step


def test_reasoning_and_intention_are_escaped(tmp_path: Path) -> None:
    out = tmp_path / "xss"
    runner.run(model="xss-test", suite=load_suite("toy"), out=out, episodes=1)
    html = build_report([out])
    assert XSS not in html and "<b>still</b>" not in html  # JSON is embedded with <, >, & escaped
    (ep,) = report_data(html)["episodes"]
    assert ep["tl"]["reasoning"] == [[0, 39, f"I think {XSS} & more"]]  # 40 identical steps collapse into one
    assert ep["tl"]["intention"] == [[0, 39, "stay <b>still</b>"]]  # the page shows it as text (browser test)


def test_timeline_shows_step_ranges_and_several_runs_compare(toy_run: Path, tmp_path: Path) -> None:
    expert = tmp_path / "expert"
    runner.run(model="toy-expert", suite=load_suite("toy"), out=expert, episodes=2)
    html = build_report([expert, toy_run])
    episodes = report_data(html)["episodes"]
    first = episodes[0]["tl"]["intention"]
    assert first[0][0] == 0 and first[0][2] == "reach the cube" and first[-1][2] == "carry the cube to the goal"
    assert {e["r"] for e in episodes} == {0, 1}
    assert [t["type"] for t in report_charts(html)["success"]["data"]] == ["bar", "bar"]
    ok = score_run(load_run(expert)).tasks[0]
    assert ok.successes > 0 and f"<td>{100 * ok.success_rate:.1f}</td>" in html
    assert "not directly comparable" not in html  # same suite spec
    assert 'class="card comparison"' in html


def test_summary_and_radars_carry_the_vla_scores(judged: dict[str, Path], compare_html: Path) -> None:
    html = compare_html.read_text(encoding="utf-8")
    for i, model in enumerate(("toy-expert", "random")):
        (v,) = score_run(load_run(judged[model])).vla
        row = re.search(rf'<tr data-run="{i}" data-judge="grounded">(.*?)</tr>', html, re.S)
        assert row, model
        values = re.findall(r'<span class="v">([^<]*)</span><span class="ci">([^<]*)</span>', row.group(1))
        expected = [v.sim, v.reasoning, v.action, v.intention, v.alignment, v.vla_score]
        shown = [e for e in expected if e is not None]  # a specialist's R and RA are "-"
        assert values == [(f"{e.value:.1f}", f"{e.ci_low:.1f}&ndash;{e.ci_high:.1f}") for e in shown]
    assert html.count('<div class="plot radar-plot"') == 2 and "Plotly.newPlot(r.id" in html


def test_paired_comparison_shows_a_significant_difference(judged: dict[str, Path], compare_html: Path) -> None:
    html = compare_html.read_text(encoding="utf-8")
    ea, eb = (load_run(judged[m]).episodes for m in ("toy-expert", "random"))
    a_only = int((ea["success"].to_numpy() & ~eb["success"].to_numpy()).sum())
    b_only = int((~ea["success"].to_numpy() & eb["success"].to_numpy()).sum())
    row = re.search(r'<tr class="overall" data-metric="success">(.*?)</tr>', html, re.S)
    assert row and f"McNemar exact ({a_only} vs {b_only} discordant)" in row.group(1)
    p = mcnemar_exact(a_only, b_only)
    assert p < 0.05 and f"{p:.4f}" in row.group(1) and "significant</span> (toy-expert higher)" in row.group(1)
    n = len(ea)  # every episode is shared: the pairs needed for 80% power, and whether the runs had them
    needed = mcnemar_sample_size(a_only / n, b_only / n)
    assert needed is not None
    enough = re.search(r'<td class="enough">([^<]*)</td>', row.group(1))
    assert enough and enough.group(1) == f"{needed:,} ({'enough' if n >= needed else 'too few'})"
    vla = re.search(r'<tr class="overall" data-metric="vla:grounded">(.*?)</tr>', html, re.S)
    assert vla and "sign-flip permutation" in vla.group(1) and "significant</span> (toy-expert higher)" in vla.group(1)


def test_failure_breakdown_counts_the_records(judged: dict[str, Path], compare_html: Path) -> None:
    from vlascore.scoring import read_judgement_files

    html = compare_html.read_text(encoding="utf-8")
    (jf,) = read_judgement_files(judged["random"])
    start = html.index('<div class="card failures" data-run="1">')
    card = re.match(r"(.*?)</section>", html[start:], re.S)  # the last card of the section: run 1 (random)
    assert card
    eps = load_run(judged["random"]).episodes
    counts = eps["termination"].value_counts()
    total = re.search(r'<tr class="total"><td class="l">all</td>(.*?)</tr>', card.group(1), re.S)
    assert total and re.findall(r"<td[^>]*>(\d+)</td>", total.group(1)) == [
        str(counts.get(t, 0)) for t in ("success", "max_steps", "terminated", "error")
    ] + [str(len(eps))]
    flagged = {m: sum(m in j.failure_modes for j in jf.judgements) for j in jf.judgements for m in j.failure_modes}
    assert flagged, "the grounded judge flags a random policy's failures"
    for mode, n in flagged.items():
        row = re.search(rf'<tr data-mode="{mode}"><td[^>]*>[^<]*</td><td>(\d+)</td>', card.group(1))
        assert row and int(row.group(1)) == n, mode


def test_episode_browser_carries_every_verdict(judged: dict[str, Path], compare_html: Path) -> None:
    from vlascore.scoring import read_judgement_files, trajectory_scores

    data = report_data(compare_html.read_text(encoding="utf-8"))
    assert [r["judges"] for r in data["runs"]] == [["grounded"], ["grounded"]]
    assert data["runs"][0]["actions"]["ToyPick"] == ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
    run = load_run(judged["toy-expert"])
    (jf,) = read_judgement_files(judged["toy-expert"])
    scores = trajectory_scores(run, jf).set_index("episode_id")["score"]
    by_id = {e["id"]: e for e in data["episodes"] if e["r"] == 0}
    for j in jf.judgements:
        (v,) = by_id[j.episode_id]["j"]
        assert v["s"] == "ok" and v["th"] == j.thought and v["m"] == j.failure_modes
        assert v["d"] == {
            "R": j.scores["Reasoning"],
            "A": j.scores["Action"],
            "I": j.scores["Intention"],
            "RA": j.scores["Alignment"],
        }
        assert v["v"] == pytest.approx(100 * scores[j.episode_id], abs=0.01)


def test_filmstrips_are_capped_and_spread_over_tasks(judged: dict[str, Path], tmp_path: Path) -> None:
    import pandas as pd

    eps = pd.DataFrame(
        {
            "episode_id": [f"{t}-{s}" for t in "ABC" for s in range(4)],
            "task": [t for t in "ABC" for _ in range(4)],
            "frames_file": "x",
        }
    )
    assert filmstrip_ids(eps, 5) == ["A-0", "B-0", "C-0", "A-1", "B-1"]
    assert filmstrip_ids(eps, 0) == [] and len(filmstrip_ids(eps, 100)) == 12
    data = report_data(build_report([judged["random"]], filmstrips=3))
    with_strip = [e["id"] for e in data["episodes"] if "f" in e]
    assert with_strip == ["ToyPick-0", "ToyPick-1", "ToyPick-2"]
    note = next(e["fn"] for e in data["episodes"] if "f" not in e)
    assert "--episode ToyPick-3" in note


def test_episode_option_focuses_the_browser(judged: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "focus.html"
    res = CliRunner().invoke(
        app, ["report", str(judged["random"]), "-e", "ToyPick-5", "--filmstrips", "0", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    html = out.read_text(encoding="utf-8")
    (ep,) = report_data(html)["episodes"]
    assert ep["id"] == "ToyPick-5" and len(thumbnails(ep)) == 8 and "only the episodes asked for" in html
    bad = CliRunner().invoke(app, ["report", str(judged["random"]), "-e", "Nope-1", "-o", str(tmp_path / "x.html")])
    assert bad.exit_code != 0 and "has no episode Nope-1" in bad.output and "Traceback" not in bad.output


def test_missing_run_raises_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a vlascore run directory"):
        build_report([tmp_path / "nope"])


# -- CLI -----------------------------------------------------------------------------------------------
def test_cli_report_writes_the_file(toy_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(toy_run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "ToyPick" in out.read_text(encoding="utf-8")
    assert f"report written to {out}" in result.output


def test_cli_report_on_a_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    missing = tmp_path / "missing-run"
    result = CliRunner().invoke(app, ["report", str(missing), "-o", str(tmp_path / "r.html")])
    assert result.exit_code != 0
    assert "error:" in result.output and "is not a vlascore run directory" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r.html").exists()


def test_cli_baseline_must_be_one_of_the_runs(judged: dict[str, Path], tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app,
        [
            "report",
            str(judged["random"]),
            str(judged["toy-expert"]),
            "--baseline",
            "nope",
            "-o",
            str(tmp_path / "r.html"),
        ],
    )
    assert res.exit_code != 0 and "--baseline 'nope' is none of the runs" in res.output


def test_unreadable_frames_do_not_sink_the_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner.run(model="random", suite=load_suite("toy"), out=out, episodes=2)
    (out / "frames" / "ToyPick-1.npz").write_bytes(b"not a zip file")
    episodes = report_data(build_report([out]))["episodes"]
    assert "frames unreadable" in episodes[1]["fn"] and "f" not in episodes[1]
    assert len(thumbnails(episodes[0])) == 8  # ToyPick-0's filmstrip is still there
    assert not (out / "results.json").exists()  # the report only reads the run


def test_steps_stored_out_of_order_read_the_same(tmp_path: Path) -> None:
    import shutil

    from vlascore.records import EpisodeRecord, StepRecord
    from vlascore.report.episodes import read_steps
    from vlascore.store import RunStore

    fwd = tmp_path / "fwd"
    runner.run(model="toy-expert", suite=load_suite("toy"), out=fwd, episodes=2)
    rev = tmp_path / "rev"
    shutil.copytree(fwd, rev)
    run = load_run(fwd)
    store = RunStore(rev)
    for record in run.episodes.to_dict("records"):
        steps = run.store.steps_frame([record["episode_id"]]).to_dict("records")
        store.write_episode(EpisodeRecord.model_validate(record), [StepRecord.model_validate(s) for s in steps[::-1]])
    store.close()
    assert RunStore(fwd).step_scan() is not None and RunStore(rev).step_scan() is None  # the slow path is taken
    assert read_steps(load_run(rev)) == read_steps(load_run(fwd))


class ChattyAdapter(Adapter):
    """Says something new, and long, at every step."""

    name = "chatty-test"
    reasons = True

    def reset(self, context) -> None:  # type: ignore[no-untyped-def]
        self.t = 0

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        self.t += 1
        return PolicyStep(np.zeros(7), reasoning=f"thought {self.t} " + "x" * 30, intention="wait")


ADAPTERS.register("chatty-test", ChattyAdapter)


def test_timelines_are_capped_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vlascore.report import episodes

    out = tmp_path / "chatty"
    runner.run(model="chatty-test", suite=load_suite("toy"), out=out, episodes=1)
    monkeypatch.setattr(episodes, "MAX_SEGMENTS", 10)
    monkeypatch.setattr(episodes, "MAX_SEGMENT_CHARS", 12)
    lines, hidden, _ = episodes.read_steps(load_run(out))
    reasoning = lines["ToyPick-0"]["reasoning"]
    assert [s[:2] for s in reasoning] == [[i, i] for i in range(10)]  # one segment per step, the first 10 kept
    assert reasoning[0][2] == "thought 1 xx [... cut]"
    assert hidden == {"ToyPick-0\0reasoning": 40 - 10}
    assert lines["ToyPick-0"]["intention"] == [[0, 39, "wait"]]
