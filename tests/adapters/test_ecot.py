"""The `ecot` adapter on tiny offline checkpoints: the reasoning prompt, planted reasoning returned as reasoning and
intention, the actions after it, the generation budget, reasoning held for N steps, batching, and a toy episode."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import small_suite
from tiny_openvla import BRIDGE, centre, obs, openvla_tokenizer, spy_generate, tiny_openvla, unnormalise

import vlascore
from vlascore import runner
from vlascore.adapters import ADAPTERS
from vlascore.adapters.ecot import ECoTAdapter, intention_of, parse_reasoning
from vlascore.suites import Suite

pytest.importorskip("transformers")

TOKENIZER = openvla_tokenizer()
VOCAB = len(TOKENIZER) + 256
BINS = [10, 50, 100, 128, 200, 254, 3]
# every token distinct (the planted chain has one successor per token); the tags are single tokens
REASONING = (
    "lift red cube PLAN: reach grasp VISIBLE OBJECTS: sphere SUBTASK REASONING: it SUBTASK: move_to goal "
    "MOVE REASONING: left MOVE: down GRIPPER POSITION: [ 1 ] ACTION:"
)
PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions. USER: What action should the robot take to pick up "
    "the red cube? ASSISTANT: TASK:"
)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reply = TOKENIZER(REASONING, add_special_tokens=False)["input_ids"] + [VOCAB - 1 - b for b in BINS]
    return tiny_openvla(tmp_path_factory.mktemp("ecot") / "ckpt", after="TASK:", reply=reply)


def adapter(path: Path, **options: Any) -> ECoTAdapter:
    return ECoTAdapter(path=str(path), **{"device": "cpu", "unnorm_key": "bridge_orig", **options})


def test_reasoning_then_action(planted: Path) -> None:
    a = adapter(planted)
    calls = spy_generate(a)
    step = a.act(obs(), "Pick up the red cube")
    assert a.processor.calls[-1]["text"] == [PROMPT]
    ids = calls[0]["input_ids"][0].tolist()
    assert ids[-1] == TOKENIZER.convert_tokens_to_ids("TASK:")  # no empty token: the answer goes on with a word
    assert calls[0]["max_new_tokens"] == 1024 and calls[0]["do_sample"] is False
    assert step.reasoning == "TASK: " + REASONING.removesuffix(" ACTION:")
    assert step.intention == "move_to goal; down"
    np.testing.assert_allclose(step.action[:6], unnormalise(BRIDGE, [centre(b) for b in BINS])[:6], atol=1e-12)
    assert step.action[6] == -1.0
    assert a.reasons and a.info()["max_new_tokens"] == 1024


def test_parse_reasoning_of_an_ecot_style_answer() -> None:
    text = (
        "TASK: Put the carrot on the plate. PLAN: Move to the carrot, grasp it, move to the plate, release. "
        "VISIBLE OBJECTS: carrot [81, 120, 130, 171], plate [140, 60, 210, 130] SUBTASK REASONING: The carrot "
        "is not grasped yet. SUBTASK: Grasp the carrot. MOVE REASONING: The carrot is below the gripper. "
        "MOVE: move down GRIPPER POSITION: [110, 96]"
    )
    parts = parse_reasoning(text)
    assert parts["TASK"] == "Put the carrot on the plate."
    assert parts["SUBTASK"] == "Grasp the carrot." and parts["SUBTASK REASONING"] == "The carrot is not grasped yet."
    assert parts["MOVE"] == "move down" and parts["MOVE REASONING"] == "The carrot is below the gripper."
    assert parts["VISIBLE OBJECTS"].startswith("carrot [81") and parts["GRIPPER POSITION"] == "[110, 96]"
    assert intention_of(parts) == "Grasp the carrot.; move down"
    assert intention_of(parse_reasoning("TASK: x PLAN: y")) is None


def test_a_budget_too_small_for_the_reasoning_is_an_error(planted: Path) -> None:
    with pytest.raises(ValueError, match=r"does not end in 7 action tokens.*-M max_new_tokens, now 12"):
        adapter(planted, max_new_tokens=12).act(obs(), "pick up the red cube")


def test_reasoning_held_for_n_steps(planted: Path) -> None:
    a = adapter(planted, reason_every=3, empty_token="none")  # the planted chain runs on from "ACTION:" itself
    calls = spy_generate(a)
    steps = [a.act(obs(), "pick up the red cube") for _ in range(4)]
    texts = [c["text"][0] for c in a.processor.calls[-4:]]
    held = PROMPT + " " + REASONING
    assert texts == [PROMPT, held, held, PROMPT]
    assert [c["max_new_tokens"] for c in calls] == [1024, 8, 8, 1024]
    assert len({s.reasoning for s in steps}) == 1 and steps[1].intention == "move_to goal; down"
    for s in steps:
        np.testing.assert_array_equal(s.action, steps[0].action)
    a.reset(context=None)  # type: ignore[arg-type]  # a new episode reasons afresh
    a.act(obs(), "pick up the red cube")
    assert a.processor.calls[-1]["text"] == [PROMPT]
    auto = adapter(planted, reason_every=2)
    auto_calls = spy_generate(auto)
    auto.act(obs(), "pick up the red cube")
    with contextlib.suppress(ValueError):  # '▁' after ACTION: is off the planted chain: whatever the model says
        auto.act(obs(), "pick up the red cube")
    assert auto_calls[1]["input_ids"][0, -1] == TOKENIZER.convert_tokens_to_ids("\u2581")  # as after OpenVLA's Out:


def test_batch_equals_one_by_one(planted: Path) -> None:
    a = adapter(planted)
    observations = [obs(np.full((48, 64, 3), c, np.uint8)) for c in (0, 80, 160, 240)]
    instructions = ["pick up the red cube", "push it", "place the green cube onto the blue bin", "lift"]
    calls = spy_generate(a)
    batched = a.act_batch(observations, instructions)
    assert len(calls) == 1 and calls[0]["input_ids"].shape[0] == 4
    for b, o, i in zip(batched, observations, instructions, strict=True):
        s = a.act(o, i)
        np.testing.assert_array_equal(b.action, s.action)
        assert (b.reasoning, b.intention) == (s.reasoning, s.intention)


def test_cuda_on_a_machine_without_it_is_a_clear_error(planted: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="sees no CUDA device"):
        adapter(planted, device="cuda")


def test_registered() -> None:
    cls = ADAPTERS.get("ecot")
    assert cls is ECoTAdapter and cls.reasons and cls.extras == ("models",) and "16 GB" in cls.needs
    with pytest.raises(ValueError, match="reason_every must be >= 1"):
        ECoTAdapter.configure(object.__new__(ECoTAdapter), reason_every=0)


def test_a_toy_episode_records_the_reasoning(planted: Path, tmp_path: Path, toy_suite: Suite) -> None:
    suite = small_suite(toy_suite, ["ToyPick"], [0], max_steps=2)
    args = {"path": str(planted), "device": "cpu", "unnorm_key": "bridge_orig"}
    summary = runner.run(model="ecot", model_args=args, suite=suite, out=tmp_path / "r")
    assert summary.ran == 1 and summary.errored == 0
    steps = vlascore.load_run(tmp_path / "r").steps
    assert len(steps) == 2 and steps["reasoning"].str.startswith("TASK: lift red cube PLAN:").all()
    assert (steps["intention"] == "move_to goal; down").all()
