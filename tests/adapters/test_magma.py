"""The `magma` adapter on a tiny offline checkpoint loaded through transformers' remote-code path: the chat prompt,
the image preprocessing and batch axes, action tokens at the tail of the base vocabulary, statistics from a file,
batching, errors, and a toy episode through the runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import small_suite
from tiny_magma import BRIDGE, magma_tokenizer, tiny_magma
from tiny_openvla import centre, obs, spy_generate, unnormalise

import vlascore
from vlascore import runner
from vlascore.adapters import ADAPTERS
from vlascore.adapters.magma import MagmaAdapter
from vlascore.suites import Suite

pytest.importorskip("transformers")

TOKENIZER = magma_tokenizer()
BINS = [10, 50, 100, 128, 200, 254, 250]  # the gripper's bin: open
PROMPT = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are agent that can see, talk and act."
    "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n<image_start><image><image_end>\nWhat action should "
    "the robot take to Pick up the red cube?<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
    "\n\n"
)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reply = [TOKENIZER.vocab_size - 1 - b for b in BINS]  # the base vocabulary's tail, below the added specials
    return tiny_magma(tmp_path_factory.mktemp("magma") / "ckpt", reply=reply, with_stats=True)


@pytest.fixture(scope="module")
def steered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_magma(tmp_path_factory.mktemp("magma-steered") / "ckpt", steer=True, with_stats=True)


def adapter(path: Path, **options: Any) -> MagmaAdapter:
    return MagmaAdapter(path=str(path), **{"device": "cpu", **options})


def test_remote_code_chat_prompt_and_planted_action(planted: Path) -> None:
    a = adapter(planted)
    assert type(a.model).__name__ == "MagmaForCausalLM" and type(a.model).__module__.startswith("transformers_modules")
    assert type(a.processor).__name__ == "MagmaProcessor" and a.batch == 1  # remote code: one sample per call
    calls = spy_generate(a)
    step = a.act(obs(), "Pick up the red cube")
    sent = a.processor.calls[-1]
    assert sent["text"] == PROMPT and sent["size"] == (256, 256)  # instruction as given; image resized to 256
    pixels, sizes = calls[0]["pixel_values"], calls[0]["image_sizes"]
    assert tuple(pixels.shape) == (1, 1, 3, 32, 32) and sizes.tolist() == [[[256, 256]]]  # batch and crop axes
    assert calls[0]["max_new_tokens"] == 32 and calls[0]["do_sample"] is False
    np.testing.assert_allclose(step.action[:6], unnormalise(BRIDGE, [centre(b) for b in BINS])[:6], atol=1e-12)
    assert step.action[6] == 1.0  # WidowX: open
    assert a.actions.vocab_size == TOKENIZER.vocab_size < len(TOKENIZER)
    assert (a.unnorm_key, a.info()["norm_stats"]) == ("bridge_orig", str(planted / "dataset_statistics.json"))
    assert a.action_space.rotation == "euler_rpy" and not a.action_space.normalized


def test_statistics_are_required_and_can_come_from_a_file(planted: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    tiny_magma(bare, mm_use_image_start_end=False)
    with pytest.raises(ValueError, match=r"no action statistics; pass them with -M norm_stats=FILE.json"):
        adapter(bare)
    table = tmp_path / "stats.json"
    table.write_text(json.dumps({"bridge_orig": {"action": BRIDGE}, "fractal20220817_data": {"action": BRIDGE}}))
    with pytest.raises(ValueError, match="Keys: bridge_orig, fractal20220817_data"):
        adapter(bare, norm_stats=str(table))
    a = adapter(bare, norm_stats=str(table), unnorm_key="fractal20220817_data", sticky_repeat=4)
    assert (a.robot, a.gripper.repeat, a.action_space.gripper_open) == ("google", 4, -1)
    assert "<image>\nWhat action should the robot take to lift?" in a.prompt("lift")  # no image start/end tokens


def test_remote_code_needs_trust(planted: Path) -> None:
    with pytest.raises(ValueError, match="ships its own modelling code .*trust_remote_code=true"):
        adapter(planted, trust_remote_code=False)


def test_cuda_on_a_machine_without_it_is_a_clear_error(planted: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="sees no CUDA device"):
        adapter(planted, device="cuda")


def test_batch_equals_one_by_one(steered: Path) -> None:
    a = adapter(steered, batch=4, robot="generic")
    colours = ([0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255])
    observations = [obs(np.full((48, 64, 3), c, np.uint8)) for c in colours]
    instructions = ["pick up the red cube", "push the ball", "stack the green cube onto the blue cube", "lift"]
    calls = spy_generate(a)
    batched = a.act_batch(observations, instructions)
    assert len(calls) == 1 and tuple(calls[0]["pixel_values"].shape[:2]) == (4, 1)
    mask = calls[0]["attention_mask"]
    assert mask[:, -1].all() and not mask[:, 0].all()  # prompts of different lengths, padded on the left
    single = [a.act(o, i) for o, i in zip(observations, instructions, strict=True)]
    for b, s in zip(batched, single, strict=True):
        np.testing.assert_array_equal(b.action, s.action)
    assert len({tuple(b.action) for b in batched}) > 1


def test_registered() -> None:
    cls = ADAPTERS.get("magma")
    assert cls is MagmaAdapter and cls.extras == ("models",) and "norm_stats" in cls.needs


def test_a_toy_episode_runs_through_the_runner(planted: Path, tmp_path: Path, toy_suite: Suite) -> None:
    suite = small_suite(toy_suite, ["ToyPick"], [0], max_steps=2)
    summary = runner.run(
        model="magma", model_args={"path": str(planted), "device": "cpu"}, suite=suite, out=tmp_path / "r"
    )
    assert summary.ran == 1 and summary.errored == 0
    run = vlascore.load_run(tmp_path / "r")
    assert run.episodes.loc[0, "num_steps"] == 2 and run.run.adapter_info["unnorm_key"] == "bridge_orig"
