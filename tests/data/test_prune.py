"""`vlascore data prune` / `view` / `triggers` / `train-trigger` on toy runs of the scripted expert (which narrates
its phases), through the CLI as a user calls it."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import vlascore
from vlascore import runner
from vlascore.cli import app
from vlascore.data.kinematic import action_labels
from vlascore.data.labels import read_labels, read_prune_record
from vlascore.data.opening import open_source
from vlascore.data.prune import apply_ablation, label_source, prune
from vlascore.data.triggers import TRIGGERS, IntentionTrigger, SceneTrigger, make_trigger
from vlascore.suites import load_suite

cli = CliRunner()


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("toy") / "scripted"
    runner.run(model="scripted", suite=load_suite("toy"), out=out, episodes=6)
    return out


def invoke(*args: str) -> tuple[int, str]:
    result = cli.invoke(app, list(args))
    return result.exit_code, result.output


def test_prune_writes_a_pruned_copy_with_labels(toy_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "pruned"
    code, output = invoke("data", "prune", str(toy_run), "-o", str(out), "--no-progress")
    assert code == 0, output
    assert "reasoning kept: frame-diff, dual" in output and "ToyPick" in output
    src, dst = vlascore.load_run(toy_run), vlascore.load_run(out)
    labels = read_labels(out / "pruning" / "labels.parquet")
    record = read_prune_record(out)
    assert len(labels) == len(src.steps) and not record.failed
    merged = src.steps.merge(dst.steps, on=["episode_id", "step"], suffixes=("_src", "_dst")).merge(
        labels, on=["episode_id", "step"]
    )
    assert len(merged) == len(src.steps)
    # Every action is kept; reasoning only at kept steps, and there unchanged.
    assert (merged["action_src"] == merged["action_dst"]).all()
    assert merged.loc[merged["kept"], "reasoning_dst"].equals(merged.loc[merged["kept"], "reasoning_src"])
    assert merged.loc[~merged["kept"], "reasoning_dst"].isna().all()
    assert (merged["kept"] == (merged["scene"] & merged["action"] & merged["has_reasoning"])).all()
    assert 0 < merged["kept"].sum() < len(merged)
    # The action labels are the kinematic layer's on the source's trajectories.
    for traj in open_source(toy_run).trajectories():
        got = labels[labels["episode_id"] == traj.episode_id].sort_values("step")["action"].to_numpy()
        assert (got == action_labels(traj)).all()
    all_stats = record.stats[-1]
    assert all_stats.task == "all" and all_stats.kept_steps == int(labels["kept"].sum())
    assert all_stats.kept_fraction == pytest.approx(labels["kept"].sum() / labels["has_reasoning"].sum())
    assert dst.frames("ToyPick-0")[0].shape == src.frames("ToyPick-0")[0].shape
    html = (out / "pruning" / "view.html").read_text()
    assert "ToyPick-0" in html and "kept reasoning" in html and "data:image/png;base64," in html
    # The pruned copy is a run the rest of vlascore reads: it can be scored.
    code, output = invoke("score", str(out))
    assert code == 0, output


def test_prune_refuses_to_overwrite_and_replaces_with_overwrite(toy_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "pruned"
    assert invoke("data", "prune", str(toy_run), "-o", str(out), "--no-progress", "--view", "0")[0] == 0
    code, output = invoke("data", "prune", str(toy_run), "-o", str(out), "--no-progress")
    assert code == 2 and "already exists" in output and "--overwrite" in output
    code, output = invoke(
        "data", "prune", str(toy_run), "-o", str(out), "--no-progress", "--overwrite", "--ablation", "no-scene"
    )
    assert code == 0, output
    assert read_prune_record(out).ablation == "no-scene"
    other = tmp_path / "not-pruned"
    other.mkdir()
    code, output = invoke("data", "prune", str(toy_run), "-o", str(other), "--overwrite")
    assert code == 2 and "is not a pruned copy" in output
    code, output = invoke("data", "prune", str(toy_run), "-o", str(toy_run / "inside"))
    assert code == 2 and "must not be the source, inside it or above it" in output
    code, output = invoke("data", "prune", str(toy_run), "-o", str(toy_run.parent), "--overwrite")
    assert code == 2 and "must not be the source, inside it or above it" in output and toy_run.is_dir()
    assert not list(tmp_path.glob(".*partial*"))


def test_ablations(toy_run: Path) -> None:
    source = open_source(toy_run)
    episodes, failed = label_source(source, make_trigger("frame-diff"))
    assert not failed
    dual_kept = sum(int(e.kept.sum()) for e in episodes)
    reasoning = sum(int(e.has_reasoning.sum()) for e in episodes)
    for name, expected in (("no-scene", "action"), ("no-action", "scene")):
        copy = [e.__class__(**vars(e)) for e in episodes]
        apply_ablation(copy, name)  # type: ignore[arg-type]
        assert all((c.kept == (getattr(c, expected) & c.has_reasoning)).all() for c in copy)
    draws = []
    for seed in (0, 0, 1):
        copy = [e.__class__(**vars(e)) for e in episodes]
        fraction = apply_ablation(copy, "random", seed=seed)
        assert fraction == pytest.approx(dual_kept / reasoning)
        for c in copy:
            assert c.kept.sum() == round(fraction * c.has_reasoning.sum()) and not (c.kept & ~c.has_reasoning).any()
        draws.append(np.concatenate([c.kept for c in copy]))
    assert (draws[0] == draws[1]).all() and not (draws[0] == draws[2]).all()
    copy = [e.__class__(**vars(e)) for e in episodes]
    assert apply_ablation(copy, "random", keep_fraction=1.0) == 1.0
    assert all((c.kept == c.has_reasoning).all() for c in copy)


def test_intention_trigger_marks_the_narrated_phase_changes(toy_run: Path) -> None:
    trigger = IntentionTrigger(radius=1)
    for traj in open_source(toy_run).trajectories():
        changes = [i for i in range(1, len(traj)) if traj.intention[i] != traj.intention[i - 1]]
        assert changes, "the scripted expert narrates its phases"
        expected = np.zeros(len(traj), dtype=bool)
        for c in changes:
            expected[c - 1 : c + 2] = True
        assert (trigger.scene_labels(traj) == expected).all()


def test_frame_diff_trigger_finds_a_pause_in_synthetic_frames() -> None:
    from vlascore.data.triggers import FrameDiffTrigger

    frames = np.zeros((20, 32, 32, 3), dtype=np.uint8)
    x = [0, 2, 4, 6, 8, 10, 11, 11, 12, 14, 16, 18, 20, 22, 23, 23, 24, 25, 26, 27]  # pauses at frames 7 and 15
    for k, pos in enumerate(x):
        frames[k, 10:16, pos : pos + 6] = 255
    assert FrameDiffTrigger(side=32).boundaries(frames).tolist() == [7, 15]


def test_trigger_options_and_registry(toy_run: Path, tmp_path: Path) -> None:
    code, output = invoke("data", "prune", str(toy_run), "-o", str(tmp_path / "x"), "--trigger", "frame-dif")
    assert code == 2 and "did you mean 'frame-diff'" in output.lower()
    code, output = invoke("data", "prune", str(toy_run), "-o", str(tmp_path / "x"), "-T", "speed=3")
    assert code == 2 and "has no option 'speed'" in output and "window, radius, side" in output
    code, output = invoke("data", "prune", str(toy_run), "-o", str(tmp_path / "x"), "-T", "radius=-1")
    assert code == 2 and "radius=-1 must be between 0 and 50" in output
    code, output = invoke("data", "prune", str(toy_run), "-o", str(tmp_path / "x"), "--ablation", "half")
    assert code == 2 and "--ablation must be one of dual, no-action, no-scene, random" in output

    class EveryStep(SceneTrigger):  # a third-party trigger: every step is a boundary
        name = "every-step"
        summary = "every step"

        def scene_labels(self, traj):  # type: ignore[no-untyped-def]
            return np.ones(len(traj), dtype=bool)

    TRIGGERS.register("every-step", EveryStep)
    code, output = invoke("data", "triggers")
    assert code == 0 and all(n in output for n in ("frame-diff", "intention", "learned", "every-step"))
    record = prune(toy_run, tmp_path / "every", trigger="every-step", view_episodes=0)
    stats = record.stats[-1]
    assert stats.scene_steps == stats.steps and stats.kept_steps == stats.action_steps  # == the no-scene ablation


def test_an_unreadable_episode_is_left_out_with_its_reason(toy_run: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(toy_run, broken)
    with sqlite3.connect(broken / "traces.sqlite") as conn:
        conn.execute("UPDATE steps SET ee_pose = '[1, 2]' WHERE episode_id = 'ToyPick-2' AND step = 3")
    out = tmp_path / "pruned"
    code, output = invoke("data", "prune", str(broken), "-o", str(out), "--no-progress")
    assert code == 0, output
    assert "left out ToyPick-2" in output
    record = read_prune_record(out)
    assert [f.episode_id for f in record.failed] == ["ToyPick-2"] and "ee_pose" in record.failed[0].reason
    assert "ToyPick-2" not in set(vlascore.load_run(out).episodes["episode_id"])
    assert record.stats[-1].episodes == 5


def test_sources_without_what_the_trigger_needs_are_refused(toy_run: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(toy_run, bare)
    shutil.rmtree(bare / "frames")
    with sqlite3.connect(bare / "traces.sqlite") as conn:
        conn.execute("UPDATE episodes SET frames_file = NULL")
    code, output = invoke("data", "prune", str(bare), "-o", str(tmp_path / "o"))
    assert code == 2 and "needs frames" in output and "--trigger" in output
    assert (
        invoke("data", "prune", str(bare), "-o", str(tmp_path / "o"), "--trigger", "intention", "--no-progress")[0] == 0
    )
    with sqlite3.connect(bare / "traces.sqlite") as conn:
        conn.execute("UPDATE steps SET reasoning = NULL")
    code, output = invoke("data", "prune", str(bare), "-o", str(tmp_path / "o2"), "--trigger", "intention")
    assert code == 2 and "no reasoning text" in output
    (tmp_path / "empty").mkdir()
    code, output = invoke("data", "prune", str(tmp_path / "empty"), "-o", str(tmp_path / "o3"))
    assert code == 2 and "neither a vlascore run" in output


def test_progress_lines_when_stderr_is_not_a_terminal(toy_run: Path, tmp_path: Path) -> None:
    code, output = invoke("data", "prune", str(toy_run), "-o", str(tmp_path / "p"), "--view", "0")
    assert code == 0 and "labelling scripted: 6/6" in output


def test_view_command(toy_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "pruned"
    prune(toy_run, out, view_episodes=0)
    assert not (out / "pruning" / "view.html").exists()
    code, output = invoke("data", "view", str(out), "-e", "ToyPick-3", "-o", str(tmp_path / "v.html"))
    assert code == 0, output
    html = (tmp_path / "v.html").read_text()
    assert "ToyPick-3" in html and "ToyPick-0" not in html and "1 of 6" in html
    code, output = invoke("data", "view", str(out), "-e", "Nope-1")
    assert code == 2 and "no episode Nope-1" in output


def test_policy_text_is_escaped_in_the_view(toy_run: Path, tmp_path: Path) -> None:
    hostile = tmp_path / "hostile"
    shutil.copytree(toy_run, hostile)
    with sqlite3.connect(hostile / "traces.sqlite") as conn:
        conn.execute("UPDATE steps SET reasoning = '<script>alert(1)</script>' WHERE episode_id = 'ToyPick-0'")
    out = tmp_path / "p"
    prune(hostile, out, trigger="intention", ablation="no-action")
    html = (out / "pruning" / "view.html").read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4:UserWarning")  # from the hostile file below
def test_learned_trigger_trains_on_labels_and_prunes(toy_run: Path, tmp_path: Path) -> None:
    by_intention = tmp_path / "by-intention"
    prune(toy_run, by_intention, trigger="intention", view_episodes=0)
    labels = read_labels(by_intention / "pruning" / "labels.parquet")
    csv = tmp_path / "boundaries.csv"
    train = labels[labels["episode_id"].isin(["ToyPick-0", "ToyPick-1", "ToyPick-2", "ToyPick-3"])]
    train[train["scene"]][["episode_id", "step"]].to_csv(csv, index=False)
    model = tmp_path / "trigger.pt"
    code, output = invoke(
        "data",
        "train-trigger",
        str(toy_run),
        "--labels",
        str(csv),
        "-o",
        str(model),
        "--epochs",
        "150",
        "--no-progress",
    )
    assert code == 0, output
    assert "trained on 4 episode(s)" in output and model.is_file()
    out = tmp_path / "learned"
    code, output = invoke(
        "data",
        "prune",
        str(toy_run),
        "-o",
        str(out),
        "--trigger",
        "learned",
        "-T",
        f"model={model}",
        "--no-progress",
        "--view",
        "0",
    )
    assert code == 0, output
    learned = read_labels(out / "pruning" / "labels.parquet").set_index(["episode_id", "step"])["scene"]
    target = labels.set_index(["episode_id", "step"])["scene"]
    held_out = target.index.get_level_values(0).isin(["ToyPick-4", "ToyPick-5"])
    agree = (learned[held_out] == target[held_out]).mean()
    base = max(target[held_out].mean(), 1 - target[held_out].mean())  # always answering the majority label
    assert agree > base, (agree, base)
    # A model file that is not one, or that carries code, is refused in one line.
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x04not a model")
    code, output = invoke(
        "data", "prune", str(toy_run), "-o", str(tmp_path / "o"), "--trigger", "learned", "-T", f"model={bad}"
    )
    assert code == 2 and "cannot load trigger model" in output
    code, output = invoke("data", "prune", str(toy_run), "-o", str(tmp_path / "o"), "--trigger", "learned")
    assert code == 2 and "-T model=trigger.pt" in output


def test_labels_record_versions_are_checked(toy_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "p"
    prune(toy_run, out, view_episodes=0)
    raw = json.loads((out / "pruning" / "pruning.json").read_text())
    raw["schema_version"] = 99
    (out / "pruning" / "pruning.json").write_text(json.dumps(raw))
    code, output = invoke("data", "view", str(out))
    assert code == 2 and "newer than this vlascore reads" in output
    labels = pd.read_parquet(out / "pruning" / "labels.parquet")
    labels["schema_version"] = 7
    labels.to_parquet(out / "pruning" / "labels.parquet")
    with pytest.raises(Exception, match="newer than this vlascore reads"):
        read_labels(out / "pruning" / "labels.parquet")


def test_a_corrupt_frames_file_leaves_out_only_its_episode(toy_run: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(toy_run, broken)
    (broken / "frames" / "ToyPick-1.npz").write_bytes(b"PK\x03\x04 not a zip")
    record = prune(broken, tmp_path / "pruned", view_episodes=0)
    assert [f.episode_id for f in record.failed] == ["ToyPick-1"] and "BadZipFile" in record.failed[0].reason
    assert record.stats[-1].episodes == 5
