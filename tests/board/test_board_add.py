"""`leaderboard add` (Board.add): an accepted bundle is stored byte for byte; every rejection names its reason
and leaves the whole tree (board, bundle, neighbours) exactly as it was."""

from __future__ import annotations

import json
import re
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from boardkit import (
    World,
    copy_board,
    drop_episode,
    edit_json,
    entries,
    forge_declared_size,
    get_world,
    make_run,
    rebundle,
    snapshot,
    write_zip,
)
from conftest import small_suite, write_suite

from vlascore.board import Board, BoardError, BoardRecord, Limits, Rejected
from vlascore.board.board import INDEX_FILE, BoardIndex
from vlascore.board.bundle import MANIFEST_FILE, make_submission, pack, write_bundle
from vlascore.judging import load_judge
from vlascore.judging.engine import judge_run
from vlascore.scoring import RunResults, score_run
from vlascore.store import load_run
from vlascore.suites import load_suite


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return get_world(tmp_path_factory)


# -- accepted ---------------------------------------------------------------------------------------------
def test_an_accepted_bundle_is_stored_as_submitted(tmp_path: Path, world: World) -> None:
    board = Board(tmp_path / "board")
    messages: list[str] = []
    record = board.add(world.bundles["noisy"], progress=messages.append)
    assert messages[0].startswith("checking") and any(m.startswith("extracting") for m in messages)
    folder = board.folder(record.id)
    for name, data in entries(world.bundles["noisy"]).items():
        assert folder.joinpath(*name.split("/")).read_bytes() == data
    assert board.verify(record) == []  # reading the traces (scoring them) changed no byte
    assert record.name == world.names["noisy"] and record.id.startswith("noisy-expert-")
    assert record.id.endswith(record.manifest_sha256[:10])
    assert [r.id for r in board.records()] == [record.id]
    index = BoardIndex.model_validate_json((board.path / INDEX_FILE).read_text())
    assert [r.id for r in index.submissions] == [record.id]
    stored = RunResults.model_validate_json((folder / "scores.json").read_text())
    fresh = score_run(load_run(world.runs["noisy"]))
    assert stored.model_dump(exclude={"scored_at"}) == fresh.model_dump(exclude={"scored_at"})
    config = yaml.safe_load((board.path / "board.yaml").read_text())
    assert config["min_episodes_per_task"] == 5 and config["max_files"] == 200_000
    assert not (board.path / ".staging").exists()
    assert BoardRecord.model_validate_json((folder / "record.json").read_text()) == record


def test_a_run_without_judgements_is_accepted_as_success_only(world: World) -> None:
    (entry,) = [e for e in Board(world.full_board).entries() if e.record.name == world.names["silent"]]
    assert entry.results.vla == [] and entry.submission.judges == []


def test_a_board_suite_and_judge_are_accepted_once_the_owner_places_them(tmp_path: Path) -> None:
    suite = small_suite(load_suite("toy"), ["ToyPick"], list(range(8)), max_steps=30)
    spec = yaml.safe_load(Path(load_judge("grounded").source).read_text())
    spec["params"]["weights"]["action"] = {"smoothness": 0.2, "efficiency": 0.2, "precision": 0.6}
    judge = tmp_path / "grounded-custom.yaml"
    judge.write_text(yaml.safe_dump(spec))
    run = make_run(tmp_path / "run", "toy-expert", suite=suite, judge=str(judge))
    bundle = pack(run, tmp_path / "b.zip").path
    board = tmp_path / "board"
    with pytest.raises(Rejected, match="fingerprint .* is not one this board accepts"):
        Board(board).add(bundle)
    (board / "suites").mkdir(parents=True)
    write_suite(suite, board / "suites" / "toy-short.yaml")
    with pytest.raises(Rejected, match="judged by grounded version .* which this board does not accept"):
        Board(board).add(bundle)
    (board / "judges").mkdir()
    shutil.copy(judge, board / "judges" / "grounded-custom.yaml")
    record = Board(board).add(bundle)
    assert record.suite_fingerprint == suite.fingerprint


# -- rejected -----------------------------------------------------------------------------------------------
def packed_anyway(run_dir: Path, out: Path) -> Path:
    """A bundle of a run that `submit` refuses, written past its checks: what a board must refuse on its own."""
    run = load_run(run_dir)
    results = score_run(run)
    return write_bundle(run, results, make_submission(run.run, results, None, None, None, [], None), out).path


def rejected(
    tmp_path: Path,
    world: World,
    bundle: Path | Callable[[Path], Path],
    match: str,
    board_src: Path | None = None,
    **options: object,
) -> Rejected:
    """Add `bundle` to a copy of the base board; it must be rejected with `match` and change nothing at all."""
    board = copy_board(board_src or world.base_board, tmp_path / "board")
    path = bundle(tmp_path) if callable(bundle) else bundle
    before = snapshot(tmp_path)
    with pytest.raises(Rejected, match=match) as info:
        Board(board).add(path, **options)  # type: ignore[arg-type]
    assert snapshot(tmp_path) == before
    assert len(Board(board).records()) == len(Board(board_src or world.base_board).records())
    return info.value


def with_extra(name: str | zipfile.ZipInfo, data: bytes = b"x", fix_manifest: bool = False) -> Callable[..., Path]:
    def make(tmp: Path, *, world: World) -> Path:
        return rebundle(world.bundles["random"], tmp / "bad.zip", extra=[(name, data)], fix_manifest=fix_manifest)

    return make


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("../../../escaped.txt", r"'\.\.' component"),
        ("../../escaped.txt", r"'\.\.' component"),
        ("run/../../../../escaped.txt", r"'\.\.' component"),
        ("C:/escaped.txt", "drive letter"),
        ("\\escaped.txt", "backslash"),
        ("run\\..\\..\\escaped.txt", "backslash"),
    ],
)
def test_unsafe_entry_names_are_refused(tmp_path: Path, world: World, name: str, match: str) -> None:
    rejected(tmp_path, world, lambda t: with_extra(name)(t, world=world), match)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()


def test_an_absolute_entry_is_refused(tmp_path: Path, world: World) -> None:
    target = tmp_path / "absolute.txt"
    rejected(tmp_path, world, lambda t: with_extra(str(target))(t, world=world), "absolute path")
    assert not target.exists()


def test_a_symlink_entry_is_refused(tmp_path: Path, world: World) -> None:
    link = zipfile.ZipInfo("run/frames/ToyPick-9.npz")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    rejected(
        tmp_path,
        world,
        lambda t: with_extra(link, b"/etc/passwd", fix_manifest=True)(t, world=world),
        "'run/frames/ToyPick-9.npz' is a symbolic link",
    )


def test_a_duplicate_entry_is_refused(tmp_path: Path, world: World) -> None:
    rejected(tmp_path, world, lambda t: with_extra("submission.json", b"{}")(t, world=world), "appears twice")


def test_too_many_files_are_refused(tmp_path: Path, world: World) -> None:
    n = len(entries(world.bundles["random"]))
    err = rejected(
        tmp_path,
        world,
        world.bundles["random"],
        f"{n} entries, more than this board's limit of 5",
        limits=Limits(max_files=5),
    )
    assert err.fix and "max_files" in err.fix


def test_a_bundle_too_large_is_refused(tmp_path: Path, world: World) -> None:
    rejected(
        tmp_path,
        world,
        world.bundles["random"],
        "unpacks to .* more than this board's limit of 1.0 KiB",
        limits=Limits(max_bytes=1024),
    )


def test_a_lying_size_header_is_refused(tmp_path: Path, world: World) -> None:
    def make(t: Path) -> Path:
        bundle = rebundle(world.bundles["random"], t / "bad.zip", extra=[("run/frames/ToyPick-77.npz", bytes(1 << 21))])
        forge_declared_size(bundle, "run/frames/ToyPick-77.npz", 64)
        return bundle

    declared = sum(len(d) for d in entries(world.bundles["random"]).values()) + 64
    rejected(
        tmp_path,
        world,
        make,
        "'run/frames/ToyPick-77.npz' is corrupt or does not match its header",
        limits=Limits(max_bytes=declared + 4096),
    )


def test_a_tampered_file_is_refused(tmp_path: Path, world: World) -> None:
    files = entries(world.bundles["random"])
    forged = edit_json(files["submission.json"], lambda s: s.update(name="Someone else"))
    rejected(
        tmp_path,
        world,
        lambda t: rebundle(
            world.bundles["random"], t / "bad.zip", fix_manifest=False, replace={"submission.json": forged}
        ),
        "submission.json is .* bytes, but MANIFEST.json says",
    )
    same_size = files["run/traces.sqlite"][:-1] + bytes([files["run/traces.sqlite"][-1] ^ 1])
    rejected(
        tmp_path / "2",
        world,
        lambda t: rebundle(
            world.bundles["random"], t / "bad.zip", fix_manifest=False, replace={"run/traces.sqlite": same_size}
        ),
        "run/traces.sqlite does not match its sha256 in MANIFEST.json",
    )


def test_an_unlisted_file_is_refused(tmp_path: Path, world: World) -> None:
    rejected(
        tmp_path,
        world,
        lambda t: with_extra("run/frames/ToyPick-99.npz")(t, world=world),
        r"holds file\(s\) MANIFEST.json does not list: run/frames/ToyPick-99.npz",
    )


def test_a_listed_file_that_is_missing_and_a_stray_file_are_refused(tmp_path: Path, world: World) -> None:
    rejected(
        tmp_path,
        world,
        lambda t: rebundle(
            world.bundles["random"], t / "bad.zip", fix_manifest=False, drop=("run/frames/ToyPick-0.npz",)
        ),
        r"lists file\(s\) the bundle does not hold: run/frames/ToyPick-0.npz",
    )
    rejected(
        tmp_path / "2",
        world,
        lambda t: with_extra("index.html", b"<script>", fix_manifest=True)(t, world=world),
        "'index.html' is not part of a bundle",
    )
    rejected(
        tmp_path / "3",
        world,
        lambda t: rebundle(world.bundles["random"], t / "bad.zip", drop=(MANIFEST_FILE,), fix_manifest=False),
        "has no MANIFEST.json",
    )


def test_hand_edited_results_are_refused(tmp_path: Path, world: World) -> None:
    files = entries(world.bundles["noisy"])
    real = json.loads(files["results.json"])

    def better(r: dict) -> None:
        r["tasks"][0]["successes"] += 1
        r["tasks"][0]["success_rate"] = r["tasks"][0]["successes"] / r["tasks"][0]["completed"]
        r["suite_mean"] = r["tasks"][0]["success_rate"]

    edited = edit_json(files["results.json"], better)
    err = rejected(
        tmp_path,
        world,
        lambda t: rebundle(world.bundles["noisy"], t / "bad.zip", replace={"results.json": edited}),
        "results.json differs from the board's recomputation",
    )
    assert (
        f"suite_mean: submitted {json.loads(edited)['suite_mean']!r}, recomputed {real['suite_mean']!r}" in err.reason
    )
    vla = edit_json(files["results.json"], lambda r: r["vla"][0]["vla_score"].update(value=99.0))
    err = rejected(
        tmp_path / "2",
        world,
        lambda t: rebundle(world.bundles["noisy"], t / "bad.zip", replace={"results.json": vla}),
        r"vla\[0\]\.vla_score\.value: submitted 99\.0",
    )


def test_claims_that_disagree_with_the_run_are_refused(tmp_path: Path, world: World) -> None:
    sub = edit_json(
        entries(world.bundles["noisy"])["submission.json"], lambda s: s["episodes_per_task"].update(ToyPick=50)
    )
    rejected(
        tmp_path,
        world,
        lambda t: rebundle(world.bundles["noisy"], t / "bad.zip", replace={"submission.json": sub}),
        "submission.json does not match the bundled run: episodes_per_task.ToyPick: submitted 50, recomputed 5",
    )


def test_a_newer_schema_is_refused_with_upgrade_advice(tmp_path: Path, world: World) -> None:
    sub = edit_json(entries(world.bundles["random"])["submission.json"], lambda s: s.update(schema_version=99))
    err = rejected(
        tmp_path,
        world,
        lambda t: rebundle(world.bundles["random"], t / "bad.zip", replace={"submission.json": sub}),
        "submission.json has schema version 99, newer than this vlascore reads",
    )
    assert err.fix and "upgrade vlascore" in err.fix


def test_an_unknown_suite_fingerprint_is_refused(tmp_path: Path, world: World) -> None:
    suite = small_suite(load_suite("toy"), ["ToyPick"], list(range(10)), max_steps=25)
    run = make_run(tmp_path / "src" / "run", "random", suite=suite)
    bundle = pack(run, tmp_path / "src" / "b.zip").path
    err = rejected(tmp_path, world, bundle, f"suite 'toy' with fingerprint {suite.fingerprint} is not one")
    assert err.fix and "suites/" in err.fix


def test_an_edited_frozen_suite_spec_is_refused(tmp_path: Path, world: World) -> None:
    files = entries(world.bundles["random"])
    run_json = edit_json(files["run/run.json"], lambda r: r["suite_spec"]["tasks"][0].update(max_steps=400))
    rejected(
        tmp_path,
        world,
        lambda t: rebundle(world.bundles["random"], t / "bad.zip", replace={"run/run.json": run_json}),
        "frozen suite spec hashes to .* not to the fingerprint it claims",
    )


def test_an_unknown_judge_version_is_refused(tmp_path: Path, world: World) -> None:
    spec = yaml.safe_load(Path(load_judge("grounded").source).read_text())
    spec["params"]["weights"]["reasoning"] = {"objects": 0.9, "subgoals": 0.1}
    judge = tmp_path / "src" / "grounded-mine.yaml"
    judge.parent.mkdir()
    judge.write_text(yaml.safe_dump(spec))
    run = make_run(tmp_path / "src" / "run", "toy-expert", judge=str(judge))
    version = load_judge(judge).effective_version
    bundle = pack(run, tmp_path / "src" / "b.zip").path
    known = load_judge("grounded").effective_version
    err = rejected(
        tmp_path,
        world,
        bundle,
        re.escape(
            f"judged by grounded version {version}, which this board does "
            f"not accept (this board knows grounded {known})"
        ),
    )
    assert err.fix and "judges/" in err.fix


def test_too_few_episodes_per_task_are_refused(tmp_path: Path, world: World) -> None:
    run = make_run(tmp_path / "src" / "run", "random", episodes=3)
    bundle = pack(run, tmp_path / "src" / "b.zip").path
    err = rejected(tmp_path, world, bundle, r"task ToyPick has 3 episode\(s\); this board needs at least 5")
    assert err.fix and "--episodes 5 --resume" in err.fix
    rejected(tmp_path / "2", world, world.bundles["random"], "needs at least 6", min_episodes=6)


def test_cherry_picked_seeds_are_refused(tmp_path: Path, world: World) -> None:
    run = make_run(tmp_path / "src" / "run", "random", episodes=6, judge=None)
    drop_episode(run, "ToyPick-4")  # keep seeds 0, 1, 2, 3 and 5: as if seed 4 went badly and was left out
    record = json.loads((run / "run.json").read_text())
    record["seeds"]["ToyPick"] = [0, 1, 2, 3, 5]
    (run / "run.json").write_text(json.dumps(record))
    judge_run(run, "grounded")
    message = r"seeds 0, 1, 2, 3, 5 are not the first 5 seeds of the suite \(0, 1, 2, 3, 4\)"
    with pytest.raises(BoardError, match=message):  # `submit` refuses it up front...
        pack(run, tmp_path / "src" / "b.zip")
    rejected(tmp_path, world, packed_anyway(run, tmp_path / "src" / "b.zip"), message)  # ...and so does the board


def test_a_run_missing_a_task_of_its_suite_is_refused(tmp_path: Path, world: World) -> None:
    toy = load_suite("toy")
    two = toy.model_copy(update={"tasks": [toy.tasks[0], toy.tasks[0].model_copy(update={"id": "ToyPick2"})]})
    board_src = copy_board(world.base_board, tmp_path / "src" / "board")
    (board_src / "suites").mkdir()
    write_suite(two, board_src / "suites" / "two.yaml")
    run = make_run(tmp_path / "src" / "run", "random", suite=two, tasks=["ToyPick"])
    message = r"covers 1 of the suite's 2 tasks \(missing: ToyPick2\)"
    with pytest.raises(BoardError, match=message):  # `submit` refuses it up front, before a board would
        pack(run, tmp_path / "src" / "b.zip")
    rejected(tmp_path, world, packed_anyway(run, tmp_path / "src" / "b.zip"), message, board_src=board_src)


def test_unjudged_and_missing_episodes_are_refused(tmp_path: Path, world: World) -> None:
    run = make_run(tmp_path / "src" / "run", "toy-expert", judge=None)
    judge_run(run, "grounded", episode_ids=["ToyPick-0"])
    loaded = load_run(run)
    results = score_run(loaded)
    from vlascore.board.bundle import make_submission

    bundle = write_bundle(loaded, results, make_submission(loaded.run, results), tmp_path / "src" / "b.zip").path
    rejected(tmp_path, world, bundle, r"judgement file 'grounded' has no verdict for 4 episode\(s\)")
    other = make_run(tmp_path / "src" / "run2", "random", judge=None)
    drop_episode(other, "ToyPick-3")
    loaded = load_run(other)
    results = score_run(loaded)
    bundle = write_bundle(loaded, results, make_submission(loaded.run, results), tmp_path / "src" / "c.zip").path
    rejected(tmp_path / "2", world, bundle, r"missing 1 planned episode\(s\)")


def test_a_duplicate_bundle_is_refused(tmp_path: Path, world: World) -> None:
    (existing,) = Board(world.base_board).records()
    rejected(tmp_path, world, world.bundles["expert"], f"this bundle is already on the board as {existing.id}")
    repacked = pack(world.runs["expert"], tmp_path / "src" / "again.zip", name="Same run, new name").path
    rejected(
        tmp_path / "2", world, repacked, f"the same run \\(identical traces\\) is already on the board as {existing.id}"
    )


def test_not_a_zip_and_not_a_file_are_refused(tmp_path: Path, world: World) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "b.zip").write_text("not a zip")
    rejected(tmp_path, world, tmp_path / "src" / "b.zip", "is not a readable zip file")
    rejected(tmp_path / "2", world, tmp_path / "missing.zip", "is not a file")


def test_a_rejection_on_a_new_board_leaves_no_folder(tmp_path: Path, world: World) -> None:
    bundle = write_zip(tmp_path / "b.zip", [("../x", b"")])
    before = snapshot(tmp_path)
    with pytest.raises(Rejected):
        Board(tmp_path / "new-board").add(bundle)
    assert snapshot(tmp_path) == before and not (tmp_path / "new-board").exists()


def test_a_folder_that_is_not_a_board_is_refused(tmp_path: Path, world: World) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    from vlascore.board import BoardError

    with pytest.raises(BoardError, match="does not look like a board folder"):
        Board(tmp_path).add(world.bundles["random"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_edited_grounded_verdicts_are_refused_unless_the_board_opts_out(tmp_path: Path, world: World) -> None:
    run = tmp_path / "src" / "run"
    shutil.copytree(world.runs["noisy"], run)
    path = run / "judgements" / "grounded.json"
    judgements = json.loads(path.read_text())
    first = judgements["judgements"][0]
    first["scores"]["Action"] = 10 if first["scores"]["Action"] != 10 else 9
    path.write_text(json.dumps(judgements))
    bundle = pack(run, tmp_path / "src" / "b.zip").path  # results.json recomputed from the edited verdicts
    rejected(tmp_path, world, bundle, f"gives other scores for episode\\(s\\) {first['episode_id']}: the verdicts were")
    board = copy_board(world.base_board, tmp_path / "lenient")
    config = yaml.safe_load((board / "board.yaml").read_text())
    (board / "board.yaml").write_text(yaml.safe_dump({**config, "verify_grounded": False}))
    assert Board(board).add(bundle).adapter == "board-noisy"
