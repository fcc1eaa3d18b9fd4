"""The HTML report: real content, offline, decodable thumbnails, escaping, and the CLI command."""

from __future__ import annotations

import base64
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
from vlascore.report import build_report, write_report
from vlascore.report.timeline import collapse
from vlascore.scoring import score_run
from vlascore.store import StoreError, load_run
from vlascore.suites import load_suite

XSS = "<script>alert(1)</script>"
PNG_URI = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


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
    steps = pd.DataFrame({
        "episode_id": ["a"] * 6 + ["b"] * 3,
        "step": [0, 1, 2, 3, 4, 5, 0, 1, 2],
        "intention": ["reach", "reach", None, "grasp", "reach", "reach", "reach", "reach", "reach"],
    })  # fmt: skip
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
        row = re.search(rf"<td>{t.task}</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>", toy_html)
        assert row, t.task
        assert row.group(1) == f"{100 * t.success_rate:.1f}"
        assert row.group(2) == f"{100 * t.ci_low:.1f}&ndash;{100 * t.ci_high:.1f}"
    foot = re.search(r"<td>suite mean</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>", toy_html)
    assert foot and foot.group(1) == f"{100 * results.suite_mean:.1f}"
    assert foot.group(2) == f"{100 * results.suite_ci_low:.1f}&ndash;{100 * results.suite_ci_high:.1f}"
    for field in ("toy-random", "random", results.suite_fingerprint, results.protocol_version):
        assert field in toy_html
    assert toy_html.count('<details class="ep"') == 3
    for seed in range(3):
        assert f"<code>ToyPick-{seed}</code>" in toy_html


def test_report_is_offline_with_plotly_inlined(toy_html: str) -> None:
    assert not re.search(r"<script[^>]*\bsrc\s*=", toy_html, re.I)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?(https?:)?//", toy_html, re.I)
    assert get_plotlyjs() in toy_html
    assert 'Plotly.newPlot("success-chart"' in toy_html
    assert '"error_y": {"array"' in toy_html and '"arrayminus"' in toy_html


def test_report_embeds_decodable_thumbnails(toy_run: Path, toy_html: str) -> None:
    uris = PNG_URI.findall(toy_html)
    run = load_run(toy_run)
    expected = sum(min(8, len(run.frames(e)[0])) for e in run.episodes["episode_id"])
    assert len(uris) == expected and 0 < expected <= 8 * 3
    frames, _ = run.frames("ToyPick-0")
    first = decode_png(base64.b64decode(uris[0]))
    assert np.array_equal(first, thumbnail(frames[0]))  # the first thumbnail is the episode's first frame


def test_reasoning_and_intention_are_escaped(tmp_path: Path) -> None:
    out = tmp_path / "xss"
    runner.run(model="xss-test", suite=load_suite("toy"), out=out, episodes=1)
    html = build_report([out])
    assert XSS not in html and "<b>still</b>" not in html
    assert "I think &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "steps 0-39</span>: stay &lt;b&gt;still&lt;/b&gt;" in html  # 40 identical steps collapse into one


def test_timeline_shows_step_ranges_and_several_runs_compare(toy_run: Path, tmp_path: Path) -> None:
    expert = tmp_path / "expert"
    runner.run(model="toy-expert", suite=load_suite("toy"), out=expert, episodes=2)
    html = build_report([expert, toy_run])
    assert re.search(r"steps 0-\d+</span>: reach the cube", html)
    assert re.search(r"steps \d+-\d+</span>: carry the cube to the goal", html)
    assert 'id="run-1-episodes"' in html and 'id="run-2-episodes"' in html
    assert html.count('"type": "bar"') == 2
    ok = score_run(load_run(expert)).tasks[0]
    assert ok.successes > 0 and f"<td>{100 * ok.success_rate:.1f}</td>" in html
    assert "not directly comparable" not in html  # same suite spec


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


def test_unreadable_frames_do_not_sink_the_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner.run(model="random", suite=load_suite("toy"), out=out, episodes=2)
    (out / "frames" / "ToyPick-1.npz").write_bytes(b"not a zip file")
    html = build_report([out])
    assert "frames unreadable" in html
    assert len(PNG_URI.findall(html)) == 8  # ToyPick-0's filmstrip is still there
    assert not (out / "results.json").exists()  # the report only reads the run
