"""`vlascore submit` (bundle.pack): what a bundle holds, and the runs it refuses."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from boardkit import MODELS, World, drop_episode, entries, get_world, make_run

from vlascore import __version__
from vlascore.board.bundle import (
    MANIFEST_FILE,
    Manifest,
    Submission,
    is_http_url,
    layout_problem,
    pack,
)
from vlascore.board.errors import BoardError
from vlascore.judging.engine import judge_run
from vlascore.scoring import RunResults, score_run
from vlascore.store import StoreError, load_run


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return get_world(tmp_path_factory)


def test_a_bundle_holds_the_run_its_results_and_a_manifest(world: World) -> None:
    files = entries(world.bundles["expert"])
    run = world.runs["expert"]
    episodes = load_run(run).episodes
    expected = {
        "submission.json",
        "results.json",
        MANIFEST_FILE,
        "run/run.json",
        "run/traces.sqlite",
        "run/judgements/grounded.json",
        *(f"run/{f}" for f in episodes["frames_file"]),
    }
    assert set(files) == expected
    for name in expected - {MANIFEST_FILE, "submission.json", "results.json"}:
        assert files[name] == (run / name.removeprefix("run/")).read_bytes()  # the run's files, byte for byte
    manifest = Manifest.model_validate_json(files[MANIFEST_FILE])
    assert set(manifest.files) == expected - {MANIFEST_FILE}
    for name, entry in manifest.files.items():
        assert entry.size == len(files[name]) and entry.sha256 == hashlib.sha256(files[name]).hexdigest()


def test_submission_and_results_describe_the_run(world: World) -> None:
    files = entries(world.bundles["expert"])
    run = load_run(world.runs["expert"])
    sub = Submission.model_validate_json(files["submission.json"])
    results = RunResults.model_validate_json(files["results.json"])
    fresh = score_run(run)
    assert results.model_dump(exclude={"scored_at"}) == fresh.model_dump(exclude={"scored_at"})
    assert sub.name == world.names["expert"] and sub.adapter == run.run.adapter == MODELS["expert"][0]
    assert (sub.suite, sub.suite_fingerprint, sub.protocol_version) == (
        run.run.suite,
        run.run.suite_fingerprint,
        run.run.protocol_version,
    )
    assert sub.episodes_per_task == {t.task: t.episodes for t in fresh.tasks} and sub.reasons is True
    assert [(j.label, j.judge, j.judge_version, j.judge_model) for j in sub.judges] == [
        (v.label, v.judge, v.judge_version, v.judge_model) for v in fresh.vla
    ]
    assert sub.vlascore_version == __version__ and sub.package_versions == run.run.package_versions
    assert sub.schema_version == 1 and sub.created_at


def test_submit_defaults_the_name_to_the_adapter_and_skips_superseded_and_audit_files(
    tmp_path: Path, world: World
) -> None:
    run = tmp_path / "run"
    shutil.copytree(world.runs["random"], run)
    for extra in ("judgements/superseded/grounded.2020.json", "audit/grounded.json", "results.json", "report.html"):
        (run / extra).parent.mkdir(parents=True, exist_ok=True)
        (run / extra).write_text("{}")
    (run / "judgements" / ".grounded.json.123.tmp").write_text("half-written")
    packed = pack(run, tmp_path / "out" / "b.zip")
    assert packed.submission.name == "random" and packed.path.is_file()
    names = set(entries(packed.path))
    assert not {n for n in names if "superseded" in n or "audit" in n or n.endswith((".tmp", ".html"))}
    assert "run/results.json" not in names
    assert [p.name for p in packed.path.parent.iterdir()] == ["b.zip"]  # no temp file left next to it


def test_submit_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is not a vlascore run directory .* `vlascore run`"):
        pack(tmp_path, tmp_path / "b.zip")
    assert not (tmp_path / "b.zip").exists()


def test_submit_refuses_missing_planned_episodes(tmp_path: Path, world: World) -> None:
    run = tmp_path / "run"
    shutil.copytree(world.runs["silent"], run)
    drop_episode(run, "ToyPick-2")
    with pytest.raises(BoardError, match=r"missing 1 planned episode\(s\): finish it with `vlascore run ... --resume`"):
        pack(run, tmp_path / "b.zip")
    assert not (tmp_path / "b.zip").exists()


def test_submit_refuses_unjudged_episodes(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", "toy-expert", judge=None)
    judge_run(run, "grounded", episode_ids=["ToyPick-0", "ToyPick-1"])
    with pytest.raises(BoardError, match=r"'grounded' has no verdict for 3 episode\(s\): judge them"):
        pack(run, tmp_path / "b.zip")


def test_submit_refuses_a_run_being_written_and_bad_fields(tmp_path: Path, world: World) -> None:
    run = tmp_path / "run"
    shutil.copytree(world.runs["random"], run)
    (run / "traces.sqlite-journal").write_bytes(b"")
    with pytest.raises(BoardError, match="journal file next to it"):
        pack(run, tmp_path / "b.zip")
    (run / "traces.sqlite-journal").unlink()
    with pytest.raises(BoardError, match="not an http"):
        pack(run, tmp_path / "b.zip", url="javascript:alert(1)")
    with pytest.raises(BoardError, match="invalid name"):
        pack(run, tmp_path / "b.zip", name="x" * 500)
    existing = tmp_path / "keep.zip"
    existing.write_bytes(b"an earlier bundle")
    with pytest.raises(BoardError):
        pack(run, existing, url="ftp://nope")
    assert existing.read_bytes() == b"an earlier bundle"  # a refused pack never touches the output


def test_layout_and_url_rules() -> None:
    assert layout_problem("run/frames/ToyPick-0.npz") is None and layout_problem("results.json") is None
    assert layout_problem("run/judgements/grounded@1.0+x.json") is not None  # '@' is the board's
    assert layout_problem("index.html") is not None and layout_problem("run/results.json") is not None
    assert is_http_url("https://example.org/a?b=1&c=2") and is_http_url("HTTP://x.y")
    assert not is_http_url("javascript:alert(1)") and not is_http_url("//x.y") and not is_http_url(None)
    assert not is_http_url('https://x.y/"onmouseover="alert(1)')


def test_the_results_file_is_schema_versioned(world: World) -> None:
    raw = json.loads(entries(world.bundles["expert"])["results.json"])
    assert raw["schema_version"] >= 2 and raw["vla"][0]["schema_version"] >= 1
