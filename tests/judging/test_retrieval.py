"""The retrieval knowledge base: `kb add` refusals, build/load, stale indexes, task and scene retrieval, the shipped
judges/kb, the judge's Example slot and the `vlascore kb` commands. Offline: toy runs, hashing + histogram embedders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import jctx, small_suite
from typer.testing import CliRunner

import vlascore
from vlascore import runner
from vlascore.cli import app
from vlascore.judging.catalog import load_judge
from vlascore.judging.definitions import RetrievalSettings
from vlascore.judging.engine import judge_run
from vlascore.judging.judgement import dimensions_for
from vlascore.judging.mockserver import MockOpenAI
from vlascore.judging.retrieval import (
    FRAME_MAX_SIDE,
    FRAMES_PER_ENTRY,
    INDEX_JSON,
    INDEX_NPZ,
    REVIEWED_FILE,
    KBEntry,
    KBError,
    KnowledgeBase,
    default_kb_dir,
    kb_add,
    kb_build,
    parse_scores,
    read_entries,
    read_entry_frames,
)
from vlascore.suites import Suite, load_suite

# Toy copies of ToyPick with other categories and instructions: the same numpy world (so seed N renders the same
# scene in every task), different task families for task retrieval.
TOY_TASKS = {
    "ToyPick": ("Pick", "pick up the red cube and move it to the green goal"),
    "ToyPush": ("Push", "push the red cube across the table onto the green target"),
    "ToyStack": ("Stack", "stack the red cube on top of the green block"),
    "ToyPut": ("Put", "put the red ball into the green bin"),
}
REASONING = {"Reasoning": 8, "Action": 7, "Intention": 9, "Alignment": 8}
SPECIALIST = {"Action": 2, "Intention": 1}
PICK = TOY_TASKS["ToyPick"][1]
ALL = RetrievalSettings(top_k=50)


def toy_categories() -> Suite:
    toy = load_suite("toy")
    pick = toy.task("ToyPick")
    tasks = [
        pick.model_copy(update={"id": tid, "category": cat, "instruction": text, "seeds": [0, 1, 2]})
        for tid, (cat, text) in TOY_TASKS.items()
    ]
    return toy.model_copy(update={"tasks": tasks})


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """expert: 4 tasks x seeds 0-2 (reasoning, all succeed); random: ToyPick 0-1 (specialist); flaky: seed 1 errors."""
    base = tmp_path_factory.mktemp("kb-runs")
    suite = toy_categories()
    runner.run(model="toy-expert", suite=suite, out=base / "expert")
    runner.run(model="random", suite=small_suite(suite, ["ToyPick"], [0, 1]), out=base / "random")
    runner.run(model="flaky", suite=small_suite(suite, ["ToyPick"], [0, 1]), out=base / "flaky")
    return {"expert": base / "expert", "random": base / "random", "flaky": base / "flaky"}


def add(kb: Path, run: Path, episode: str, **kw: object) -> KBEntry:
    scores = kw.pop("scores", SPECIALIST if run.name == "random" else REASONING)
    rationale = kw.pop("rationale", f"reviewed {episode} of {run.name}: reaches, grasps and carries the cube.")
    return kb_add(kb, run, episode, rationale, scores, "test reviewer", **kw)  # type: ignore[arg-type]


@pytest.fixture
def kb(runs: dict[str, Path], tmp_path: Path) -> Path:
    """Seven entries: expert ToyPick 0-2 and one per other category, random ToyPick-0; built."""
    path = tmp_path / "kb"
    for ep in ("ToyPick-0", "ToyPick-1", "ToyPick-2", "ToyPush-0", "ToyStack-0", "ToyPut-0"):
        add(path, runs["expert"], ep, entry_id=f"x-{ep}")
    add(path, runs["random"], "ToyPick-0", entry_id="r-ToyPick-0")
    kb_build(path)
    return path


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# -- kb add --------------------------------------------------------------------------------------------------
def test_add_copies_sampled_small_frames_and_the_episode_facts(runs: dict[str, Path], tmp_path: Path) -> None:
    entry = add(tmp_path / "kb", runs["expert"], "ToyStack-1")
    assert entry.id == "expert-ToyStack-1" and entry.category == "Stack" and entry.mode == "reasoning"
    assert entry.instruction == TOY_TASKS["ToyStack"][1] and entry.success is True
    assert entry.source.adapter == "toy-expert" and entry.source.episode_id == "ToyStack-1"
    run = vlascore.load_run(runs["expert"])
    frames, steps = run.frames("ToyStack-1")
    assert entry.num_steps == int(run.episodes.set_index("episode_id").loc["ToyStack-1", "num_steps"])
    kept, kept_steps = read_entry_frames(tmp_path / "kb", entry)
    assert kept.dtype == np.uint8 and kept.shape == (FRAMES_PER_ENTRY, 32, 32, 3)  # 32 px: not shrunk
    assert kept_steps[0] == steps[0] and kept_steps[-1] == steps[-1]  # first and last frame kept
    np.testing.assert_array_equal(kept[-1], frames[-1])
    assert read_entries(tmp_path / "kb") == [entry]
    assert entry.covers("reasoning") and entry.covers("specialist")
    spec = add(tmp_path / "kb", runs["random"], "ToyPick-1", category="Move")  # category override
    assert spec.mode == "specialist" and spec.category == "Move" and spec.scores == SPECIALIST
    assert not spec.covers("reasoning") and spec.covers("specialist")


def test_add_shrinks_large_frames_to_at_most_64_px(tmp_path: Path) -> None:
    suite = small_suite(toy_categories(), ["ToyPick"], [0])
    wide = suite.model_copy(update={"tasks": [suite.tasks[0].model_copy(update={"resolution": (128, 96)})]})
    runner.run(model="toy-expert", suite=wide, out=tmp_path / "wide")
    frames = vlascore.load_run(tmp_path / "wide").frames("ToyPick-0")[0]
    assert frames.shape[1:] == (96, 128, 3)
    kept, _ = read_entry_frames(tmp_path / "kb", add(tmp_path / "kb", tmp_path / "wide", "ToyPick-0"))
    assert kept.shape == (FRAMES_PER_ENTRY, 48, 64, 3)  # shrunk by 2 (box average), aspect kept
    boxed = frames[0].reshape(48, 2, 64, 2, 3).mean(axis=(1, 3)).round().astype(np.uint8)
    np.testing.assert_array_equal(kept[0], boxed)


@pytest.mark.parametrize(
    ("run", "episode", "kw", "message"),
    [
        ("expert", "ToyPick-9", {}, "no episode 'ToyPick-9' in run"),
        (
            "flaky",
            "ToyPick-1",
            {},
            "'ToyPick-1' errored (RuntimeError in policy at step 3: boom at step 3); only completed episodes",
        ),
        (
            "expert",
            "ToyPick-1",
            {"scores": {"Action": 8, "Intention": 9}},
            "a reasoning policy (toy-expert) is scored on exactly Reasoning, Action, Intention, Alignment; got Action",
        ),
        (
            "random",
            "ToyPick-1",
            {"scores": REASONING},
            "a specialist policy (random) is scored on exactly Action, Intention; got Reasoning",
        ),
        ("expert", "ToyPick-1", {"scores": {**REASONING, "Action": 11}}, "scores must be integers 0-10, got Action=11"),
        ("expert", "ToyPick-1", {"scores": {**REASONING, "Alignment": -1}}, "got Alignment=-1"),
        ("expert", "ToyPick-1", {"scores": {**REASONING, "Action": True}}, "got Action=True"),
        ("expert", "ToyPick-1", {"entry_id": "x-ToyPick-0"}, "entry id 'x-ToyPick-0' is already in"),
        (
            "expert",
            "ToyPick-0",
            {"entry_id": "again"},
            "'ToyPick-0' of run 'expert' is already in the KB as 'x-ToyPick-0'",
        ),
        ("expert", "ToyStack-2", {"entry_id": "bad id!"}, "use letters, digits"),
        ("expert", "ToyStack-2", {"rationale": "   "}, "rationale\n  Value error, must not be empty"),
    ],
)
def test_add_refusals_name_the_problem_and_write_nothing(
    runs: dict[str, Path], kb: Path, run: str, episode: str, kw: dict[str, object], message: str
) -> None:
    before = snapshot(kb)
    with pytest.raises(KBError) as info:
        add(kb, runs[run], episode, **kw)
    assert message in str(info.value)
    assert snapshot(kb) == before  # no frames file, no line, index untouched
    KnowledgeBase.load(kb)  # still consistent


def test_add_into_a_missing_folder_that_is_refused_creates_nothing(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(KBError, match="not a vlascore run directory"):
        add(tmp_path / "kb", tmp_path / "no-run", "ToyPick-0")
    with pytest.raises(KBError, match="scored on exactly"):
        add(tmp_path / "kb", runs["expert"], "ToyPick-0", scores={"Action": 5})
    assert not (tmp_path / "kb").exists()


def test_parse_scores_short_and_long_keys() -> None:
    assert parse_scores("r=7, A=8,intention=9,RA=6") == {"Reasoning": 7, "Action": 8, "Intention": 9, "Alignment": 6}
    for text, why in [
        ("A=8,B=2", "expected DIMENSION=INT"),
        ("A=8,Action=9", "Action given twice"),
        ("A=8.5", "Action must be an integer 0-10, got '8.5'"),
        ("A8", "expected DIMENSION=INT"),
    ]:
        with pytest.raises(KBError, match=why):
            parse_scores(text)


# -- build and load ------------------------------------------------------------------------------------------
def test_build_then_load(kb: Path) -> None:
    loaded = KnowledgeBase.load(kb)
    ids = ["x-ToyPick-0", "x-ToyPick-1", "x-ToyPick-2", "x-ToyPush-0", "x-ToyStack-0", "x-ToyPut-0", "r-ToyPick-0"]
    assert [e.id for e in loaded.entries] == ids and loaded.meta["ids"] == ids
    assert loaded.text.shape == (7, 1024) and loaded.image.shape == (7, 4**3 + 8 * 8 * 3)
    np.testing.assert_allclose(np.linalg.norm(loaded.text, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(loaded.image, axis=1), 1.0, atol=1e-5)
    assert loaded.text[0] @ loaded.text[6] == pytest.approx(1.0, abs=1e-5)  # same instruction, same vector
    meta = json.loads((kb / INDEX_JSON).read_text())
    assert meta["text_embedder"] == {
        "spec": "hashing",
        "name": "hashing",
        "version": "1+d1024",
        "dim": 1024,
        "options": {},
    }
    assert meta["image_embedder"]["name"] == "histogram" and meta["image_embedder"]["dim"] == 256
    assert meta["frames_per_entry"] == FRAMES_PER_ENTRY and meta["frame_max_side"] == FRAME_MAX_SIDE
    assert loaded.frames("x-ToyPut-0").shape == (FRAMES_PER_ENTRY, 32, 32, 3)


def test_build_from_an_edited_reviewed_jsonl_replaces_the_kb_copy(kb: Path, tmp_path: Path) -> None:
    lines = (kb / REVIEWED_FILE).read_text().splitlines()
    edited = [json.loads(line) for line in lines[:3]]
    edited[1]["rationale"] = "corrected by a second reviewer: the grasp slips once."
    source = tmp_path / "edited.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in edited))
    meta = kb_build(kb, source)
    assert meta["ids"] == ["x-ToyPick-0", "x-ToyPick-1", "x-ToyPick-2"]
    loaded = KnowledgeBase.load(kb)
    assert loaded.by_id["x-ToyPick-1"].rationale == "corrected by a second reviewer: the grasp slips once."
    assert [e.id for e in read_entries(kb)] == meta["ids"]


def test_build_refuses_missing_frames_and_an_empty_kb(kb: Path, tmp_path: Path) -> None:
    before = snapshot(kb)
    (kb / "frames" / "x-ToyPut-0.npz").rename(tmp_path / "moved.npz")
    with pytest.raises(KBError, match="frames missing in .* for: x-ToyPut-0"):
        kb_build(kb)
    (tmp_path / "moved.npz").rename(kb / "frames" / "x-ToyPut-0.npz")
    assert snapshot(kb) == before
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(KBError, match="has no entries"):
        kb_build(kb, tmp_path / "empty.jsonl")
    with pytest.raises(KBError, match="no knowledge base at"):
        kb_build(tmp_path / "nowhere")


def test_a_failing_embedder_is_a_kb_error_and_leaves_the_index_alone(kb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLASCORE_TEST_NO_KEY", raising=False)
    before = snapshot(kb)
    no_key = r"cannot build the index of .*: openai embedder: \$VLASCORE_TEST_NO_KEY is not set"
    with pytest.raises(KBError, match=no_key):
        kb_build(kb, text_embedder_spec="openai", text_options={"api_key_env": "VLASCORE_TEST_NO_KEY"})
    assert snapshot(kb) == before
    KnowledgeBase.load(kb)


def test_an_entry_added_after_the_build_is_refused_until_rebuilt(runs: dict[str, Path], kb: Path) -> None:
    add(kb, runs["expert"], "ToyPush-1", entry_id="late")
    stale = rf"out of date \(not indexed: late\); rebuild it with `vlascore kb build --kb {kb}`"
    with pytest.raises(KBError, match=stale):
        KnowledgeBase.load(kb)
    kb_build(kb)
    assert KnowledgeBase.load(kb).entries[-1].id == "late"


def test_changed_frames_or_instruction_are_refused_but_a_new_rationale_is_not(kb: Path) -> None:
    path = kb / "frames" / "x-ToyPick-1.npz"
    with np.load(path) as data:
        frames, steps = data["frames"], data["steps"]
    np.savez_compressed(path, frames=255 - frames, steps=steps)
    with pytest.raises(KBError, match=r"frames changed: x-ToyPick-1\); rebuild it with `vlascore kb build"):
        KnowledgeBase.load(kb)
    kb_build(kb)
    KnowledgeBase.load(kb)

    entries = read_entries(kb)
    entries[2] = entries[2].model_copy(
        update={
            "rationale": "rewritten after a second look",
            "scores": {"Reasoning": 3, "Action": 4, "Intention": 5, "Alignment": 6},
        }
    )
    (kb / REVIEWED_FILE).write_text("".join(e.model_dump_json() + "\n" for e in entries))
    loaded = KnowledgeBase.load(kb)  # rationale and scores are read at load time: no rebuild needed
    assert loaded.by_id["x-ToyPick-2"].rationale == "rewritten after a second look"
    assert loaded.by_id["x-ToyPick-2"].scores["Reasoning"] == 3

    entries[3] = entries[3].model_copy(update={"instruction": "shove the cube"})
    (kb / REVIEWED_FILE).write_text("".join(e.model_dump_json() + "\n" for e in entries))
    with pytest.raises(KBError, match=r"instruction, category or frames changed: x-ToyPush-0\); rebuild"):
        KnowledgeBase.load(kb)


def test_a_half_written_or_missing_index_is_refused(kb: Path) -> None:
    (kb / INDEX_NPZ).write_bytes((kb / INDEX_NPZ).read_bytes()[:-10])
    with pytest.raises(KBError, match="does not match index.json \\(interrupted build\\?\\); rebuild"):
        KnowledgeBase.load(kb)
    (kb / INDEX_JSON).unlink()
    with pytest.raises(KBError, match="has no index \\(index.json\\); rebuild"):
        KnowledgeBase.load(kb)


def test_an_index_built_with_another_embedder_is_refused(kb: Path) -> None:
    kb_build(kb, text_options={"dim": 256})
    loaded = KnowledgeBase.load(kb)
    assert loaded.meta["text_embedder"]["version"] == "1+d256"
    with pytest.raises(
        KBError,
        match=r"built with text embedder hashing 1\+d256, but hashing 1\+d1024 was asked "
        r"for; rebuild it with `vlascore kb build",
    ):
        loaded.search(PICK, None, "reasoning", RetrievalSettings())
    kb_build(kb)
    other = r"image embedder histogram .* but clip .*; rebuild it with .*--image-embedder clip"
    with pytest.raises(KBError, match=other):
        KnowledgeBase.load(kb).search(
            PICK, np.zeros((2, 8, 8, 3), np.uint8), "reasoning", RetrievalSettings(image_embedder="clip")
        )


def test_an_index_built_against_an_embeddings_endpoint_queries_the_same_endpoint(
    kb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLASCORE_TEST_EMBED_KEY", "sk-local")
    monkeypatch.delenv("VLASCORE_EMBEDDINGS_BASE_URL", raising=False)
    with MockOpenAI(embed_dim=16) as server:
        options = {"base_url": server.url, "api_key_env": "VLASCORE_TEST_EMBED_KEY"}
        meta = kb_build(kb, text_embedder_spec="openai:mock-embed", text_options=options)
        assert meta["text_embedder"]["options"] == options  # how to reach it, never the key itself
        assert "sk-local" not in (kb / INDEX_JSON).read_text()
        built = len(server.requests)
        settings = RetrievalSettings(text_embedder="openai:mock-embed", image_embedder="histogram")
        loaded = KnowledgeBase.load(kb)
        for _ in range(2):
            loaded.search(PICK, None, "reasoning", settings)
        assert len(server.requests) == built + 2  # the query reached the endpoint the index was built with
        assert server.requests[-1]["input"] == [PICK]


# -- retrieval -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("instruction", "category"),
    [
        ("pick the cube up and carry it to the goal", "Pick"),
        ("push the cube onto the target", "Push"),
        ("stack one cube on top of the other", "Stack"),
        ("put the ball in the bin", "Put"),
        ("drop the ball in the bin", "Put"),
    ],
)
def test_task_retrieval_picks_the_category_of_a_paraphrase(kb: Path, instruction: str, category: str) -> None:
    result = KnowledgeBase.load(kb).search(instruction, None, "reasoning", ALL)
    assert result.category == category
    assert next(iter(result.category_similarity)) == category  # ranked first
    assert result.hits and {h.entry.category for h in result.hits} == {category}
    assert all(h.scene_similarity is None for h in result.hits)


def test_scene_retrieval_picks_the_visually_closest_entry_in_the_category(runs: dict[str, Path], kb: Path) -> None:
    loaded = KnowledgeBase.load(kb)
    expert, rand = vlascore.load_run(runs["expert"]), vlascore.load_run(runs["random"])
    for seed in (0, 1, 2):  # the entry's own episode: identical sampled frames
        hits = loaded.search(PICK, expert.frames(f"ToyPick-{seed}")[0], "reasoning", ALL).hits
        assert hits[0].entry.id == f"x-ToyPick-{seed}" and hits[0].scene_similarity == pytest.approx(1.0, abs=1e-5)
        sims = [h.scene_similarity for h in hits[:3] if h.scene_similarity is not None]
        assert len(sims) == 3 and sims == sorted(sims, reverse=True)
    # Another policy on seed 1 (same cube and goal, other arm motion) is closest to the seed-1 reference.
    hits = loaded.search(PICK, rand.frames("ToyPick-1")[0], "reasoning", ALL).hits
    assert hits[0].entry.id == "x-ToyPick-1" and 0.8 < hits[0].scene_similarity < 0.99  # type: ignore[operator]
    # ToyPush seed 0 looks exactly like ToyPick seed 0: the instruction picks the family, the frames the entry.
    frames = expert.frames("ToyPush-0")[0]
    assert loaded.search(PICK, frames, "reasoning", ALL).hits[0].entry.id == "x-ToyPick-0"
    push = loaded.search(TOY_TASKS["ToyPush"][1], frames, "reasoning", ALL)
    assert push.category == "Push" and [h.entry.id for h in push.hits] == ["x-ToyPush-0"]


def test_entries_covering_the_mode_come_first(runs: dict[str, Path], kb: Path) -> None:
    loaded = KnowledgeBase.load(kb)
    frames = vlascore.load_run(runs["random"]).frames("ToyPick-0")[0]
    reasoning = loaded.search(PICK, frames, "reasoning", ALL).hits
    # r-ToyPick-0 is the identical scene but scores no Reasoning/Alignment: last for a reasoning judge.
    assert [h.entry.id for h in reasoning][-1] == "r-ToyPick-0" and reasoning[-1].scene_similarity == pytest.approx(1)
    assert reasoning[0].entry.id == "x-ToyPick-0"
    specialist = loaded.retrieve(PICK, frames, "specialist", RetrievalSettings(top_k=2))
    assert [e.id for e in specialist] == ["r-ToyPick-0", "x-ToyPick-0"]  # a specialist's example first
    assert loaded.retrieve(PICK, frames, "specialist", RetrievalSettings(enabled=False)) == []


def test_retrieval_is_deterministic_and_breaks_ties_by_id(kb: Path) -> None:
    loaded = KnowledgeBase.load(kb)
    first = loaded.search(PICK, None, "reasoning", ALL)
    # No frames: the three expert ToyPick entries tie on the identical instruction; ordered by id.
    assert [h.entry.id for h in first.hits] == ["x-ToyPick-0", "x-ToyPick-1", "x-ToyPick-2", "r-ToyPick-0"]
    assert first.hits[0].task_similarity == pytest.approx(1.0, abs=1e-5)
    again = KnowledgeBase.load(kb).search(PICK, None, "reasoning", ALL)
    assert [(h.entry.id, h.task_similarity) for h in again.hits] == [
        (h.entry.id, h.task_similarity) for h in first.hits
    ]


# -- the shipped knowledge base ------------------------------------------------------------------------------
def test_shipped_kb_loads_is_current_and_covers_every_tabletop_task() -> None:
    root = default_kb_dir()
    loaded = KnowledgeBase.load(root)  # refuses a stale index or changed frames
    entries = read_entries(root)
    assert 12 <= len(entries) <= 40
    for judge in ("vla-score-reasoning", "vla-score-specialist"):
        settings = load_judge(judge).retrieval
        assert loaded.meta["text_embedder"]["spec"] == settings.text_embedder
        assert loaded.meta["image_embedder"]["spec"] == settings.image_embedder
    tabletop = load_suite("tabletop")
    for e in entries:
        assert set(e.scores) == set(dimensions_for(e.mode)), e.id
        assert len(e.rationale) > 80 and e.reviewed_by.strip(), e.id
        task = tabletop.task(e.task)
        assert (e.category, e.instruction) == (task.category, task.instruction), e.id
        frames, steps = read_entry_frames(root, e)
        assert frames.dtype == np.uint8 and len(frames) == len(steps) <= FRAMES_PER_ENTRY, e.id
        assert max(frames.shape[1:3]) <= FRAME_MAX_SIDE, e.id
        assert (root / e.frames_file).stat().st_size < 64_000, e.id
    assert {e.success for e in entries} == {True, False} and {e.mode for e in entries} == {"reasoning", "specialist"}
    for task in tabletop.tasks:
        mine = [e for e in entries if e.category == task.category]
        assert any(e.success for e in mine) and any(not e.success for e in mine), task.id
        for mode in ("reasoning", "specialist"):
            result = loaded.search(task.instruction, None, mode, RetrievalSettings(top_k=1))  # type: ignore[arg-type]
            assert result.category == task.category, (task.id, mode)
            (hit,) = result.hits
            assert hit.entry.category == task.category and hit.entry.covers(mode)  # type: ignore[arg-type]


def test_shipped_kb_scene_retrieval_returns_the_entry_for_its_own_frames() -> None:
    loaded = KnowledgeBase.load()
    for e in loaded.entries:
        hits = loaded.search(e.instruction, loaded.frames(e.id), e.mode, RetrievalSettings(top_k=1)).hits
        assert hits[0].entry.id == e.id and hits[0].scene_similarity == pytest.approx(1.0, abs=1e-5)


# -- the VLM judge's Example slot ----------------------------------------------------------------------------
def test_judge_request_carries_the_retrieved_example(runs: dict[str, Path], kb: Path, tmp_path: Path) -> None:
    suite = toy_categories()
    run = tmp_path / "judged"
    runner.run(model="toy-expert", suite=small_suite(suite, ["ToyPick", "ToyPush"], [1]), out=run)
    entries = KnowledgeBase.load(kb).by_id
    opts = {"cache_dir": None, "use_cache": False, "concurrency": 1}
    with MockOpenAI() as server:
        jf = judge_run(run, "vla-score", jctx("m", base_url=server.url, retrieval=True, kb_dir=kb, **opts))  # type: ignore[arg-type]
        systems = [r["messages"][0]["content"] for r in server.requests]
    by_ep = {j.episode_id: j for j in jf.judgements}
    assert by_ep["ToyPick-1"].examples == ["x-ToyPick-1"]  # same seed: the visually closest Pick entry
    assert by_ep["ToyPush-1"].examples == ["x-ToyPush-0"]  # the only Push entry
    pick_sys = systems[0]
    example = pick_sys.split("## Example", 1)[1].split("## Output", 1)[0]
    assert f"- Thought: {entries['x-ToyPick-1'].rationale}" in example
    assert f"- Task: {PICK} (category Pick; simulator outcome: success)" in example
    assert '- Result: {"Reasoning": 8, "Action": 7, "Intention": 9, "Alignment": 8}' in example
    assert entries["x-ToyPush-0"].rationale in systems[1] and entries["x-ToyPick-1"].rationale not in systems[1]

    with MockOpenAI() as server:
        off = judge_run(run, "vla-score", jctx("m", base_url=server.url, retrieval=False, kb_dir=kb, **opts))  # type: ignore[arg-type]
        assert "## Example" not in server.requests[0]["messages"][0]["content"]
    assert all(j.examples == [] for j in off.judgements)


def test_specialist_judge_is_shown_a_specialist_example(runs: dict[str, Path], kb: Path) -> None:
    with MockOpenAI() as server:
        jf = judge_run(
            runs["random"],
            "vla-score",
            jctx("m", base_url=server.url, retrieval=True, kb_dir=kb, cache_dir=None, use_cache=False, concurrency=1),
            episode_ids=["ToyPick-1"],
            label="t",
        )
        system = server.requests[0]["messages"][0]["content"]
    assert jf.judgements[0].examples == ["r-ToyPick-0"]
    assert '- Result: {"Action": 2, "Intention": 1}' in system and "Alignment" not in system


def test_a_judge_is_never_shown_the_episode_it_judges(runs: dict[str, Path], kb: Path) -> None:
    with MockOpenAI() as server:
        jf = judge_run(
            runs["random"],
            "vla-score",
            jctx("m", base_url=server.url, retrieval=True, kb_dir=kb, cache_dir=None, use_cache=False, concurrency=1),
            label="t",
        )
    examples = {j.episode_id: j.examples for j in jf.judgements}
    # r-ToyPick-0 records random's ToyPick-0 itself: that episode gets the nearest other entry instead.
    assert examples["ToyPick-1"] == ["r-ToyPick-0"] and examples["ToyPick-0"] not in ([], ["r-ToyPick-0"])


def test_judge_with_a_stale_kb_stops_before_any_call(runs: dict[str, Path], kb: Path) -> None:
    add(kb, runs["expert"], "ToyPut-1", entry_id="late")
    with MockOpenAI() as server:
        with pytest.raises(KBError, match="not indexed: late"):
            judge_run(runs["expert"], "vla-score", jctx("m", base_url=server.url, kb_dir=kb, cache_dir=None))
        assert server.chat_calls == 0


# -- the CLI -------------------------------------------------------------------------------------------------
def test_cli_add_build_list_search(runs: dict[str, Path], tmp_path: Path) -> None:
    cli, kb = CliRunner(env={"COLUMNS": "200"}), tmp_path / "kb"  # wide enough that rich does not wrap or elide
    (tmp_path / "r.txt").write_text("Slow but steady: grasps on the first try and carries the cube straight up.\n")
    res = cli.invoke(
        app,
        [
            "kb",
            "add",
            str(runs["expert"]),
            "ToyPick-1",
            "--kb",
            str(kb),
            "--scores",
            "R=8,A=7,I=9,RA=8",
            "--rationale-file",
            str(tmp_path / "r.txt"),
            "--reviewed-by",
            "Ada",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "added expert-ToyPick-1 (ToyPick, reasoning, success=True, Reasoning=8, Action=7, Intention=9, " in (
        res.output
    )
    res = cli.invoke(
        app,
        [
            "kb",
            "add",
            str(runs["random"]),
            "ToyPick-0",
            "--kb",
            str(kb),
            "--scores",
            "A=1,I=0",
            "--rationale",
            "Flails at random; never nears the cube.",
            "--reviewed-by",
            "Ada",
            "--id",
            "rand-0",
        ],
    )
    assert res.exit_code == 0, res.output
    (entry,) = [e for e in read_entries(kb) if e.id == "expert-ToyPick-1"]
    assert entry.rationale == "Slow but steady: grasps on the first try and carries the cube straight up."

    res = cli.invoke(app, ["kb", "list", "--kb", str(kb)])
    assert res.exit_code == 0 and "(2 entries)" in res.output and "has no index (index.json); rebuild" in res.output

    res = cli.invoke(app, ["kb", "build", "--kb", str(kb), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "indexed 2 entries" in res.output and "text: hashing 1+d1024, 1024 dims" in res.output

    res = cli.invoke(app, ["kb", "list", "--kb", str(kb), "--full"])
    assert res.exit_code == 0 and "index up to date" in res.output and "Flails at random" in res.output
    assert "A=1 I=0" in res.output and "R=8 A=7 I=9 RA=8" in res.output

    res = cli.invoke(
        app,
        [
            "kb",
            "search",
            "lift the cube to the goal",
            str(runs["expert"]),
            "ToyPick-1",
            "--kb",
            str(kb),
            "--mode",
            "specialist",
            "--top-k",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "task retrieval: Pick" in res.output
    # The episode is itself in the KB: like a judge, search never returns the entry of the episode it is given.
    assert "1. rand-0: Flails" in res.output and "expert-ToyPick-1" not in res.output
    res = cli.invoke(
        app, ["kb", "search", "lift the cube to the goal", "--kb", str(kb), "--mode", "specialist", "--top-k", "2"]
    )
    assert res.exit_code == 0, res.output
    assert "1. rand-0: Flails" in res.output and "2. expert-ToyPick-1: Slow but steady" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["add", "{expert}", "ToyPick-1", "--scores", "A=1,I=2", "--rationale", "x", "--reviewed-by", "me"],
            "is scored on exactly Reasoning, Action, Intention, Alignment",
        ),
        (
            ["add", "{expert}", "ToyPick-1", "--scores", "R=1,A=1,I=1,RA=1", "--reviewed-by", "me"],
            "exactly one of --rationale TEXT or --rationale-file FILE",
        ),
        (
            ["add", "{expert}", "ToyPick-1", "--scores", "A=x", "--rationale", "x", "--reviewed-by", "me"],
            "Action must be an integer 0-10",
        ),
        (["build", "--kb", "{empty}"], "no knowledge base at"),
        (["build", "--text-embedder", "hashng"], "Did you mean 'hashing'"),
        (["list", "--kb", "{empty}"], "no knowledge base at"),
        (["search", "pick", "{expert}"], "give both RUN and EPISODE_ID"),
        (["search", "pick", "--mode", "expert"], "--mode must be reasoning or specialist"),
        (["search", "pick", "{expert}", "ToyPick-7"], "no frames stored for episode 'ToyPick-7'"),
    ],
)
def test_cli_errors_exit_2_with_the_fix(
    runs: dict[str, Path], kb: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    argv = ["kb", *(a.format(expert=runs["expert"], empty=tmp_path / "empty") for a in args)]
    if "--kb" not in argv:
        argv += ["--kb", str(kb)]
    before = snapshot(kb)
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split()), res.output
    assert snapshot(kb) == before


def test_shipped_kb_is_the_cli_default() -> None:
    res = CliRunner().invoke(app, ["kb", "list"])
    assert res.exit_code == 0 and "index up to date" in res.output
    res = CliRunner().invoke(app, ["kb", "search", "place the ball into the shallow bin", "--top-k", "1"])
    assert res.exit_code == 0 and "task retrieval: Put" in res.output
