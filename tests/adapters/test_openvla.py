"""The `openvla` adapter on tiny offline checkpoints: prompt, image preprocessing, the empty-token quirk, action-token
decoding, un-normalisation, gripper post-processing, batching, errors, and a toy episode through the runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import small_suite
from tiny_openvla import BRIDGE, EMPTY, FRACTAL, centre, obs, openvla_tokenizer, spy_generate, tiny_openvla, unnormalise

import vlascore
from vlascore import runner
from vlascore.adapters import ADAPTERS, make_adapter
from vlascore.adapters.openvla import OpenVLAAdapter
from vlascore.adapters.token_policy import ActionTokenPolicy, GripperPost
from vlascore.suites import ActionSpace, Suite

pytest.importorskip("transformers")

BINS = [10, 50, 100, 128, 200, 254, 3]  # planted action bins, one per dimension (the gripper's: closed)
TOKENIZER = openvla_tokenizer()
VOCAB = len(TOKENIZER) + 256  # text_config.vocab_size - pad_to_multiple_of of tiny_openvla checkpoints


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reply = [VOCAB - 1 - b for b in BINS]
    return tiny_openvla(tmp_path_factory.mktemp("openvla") / "ckpt", after=EMPTY, reply=reply)


@pytest.fixture(scope="module")
def steered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_openvla(tmp_path_factory.mktemp("openvla-steered") / "ckpt", steer=True)


def adapter(path: Path, **options: Any) -> OpenVLAAdapter:
    return OpenVLAAdapter(path=str(path), **{"device": "cpu", "unnorm_key": "bridge_orig", **options})


def test_planted_action_tokens_are_decoded_unnormalised_and_post_processed(planted: Path) -> None:
    a = adapter(planted)
    step = a.act(obs(), "Pick up the red cube")
    expected = unnormalise(BRIDGE, [centre(b) for b in BINS])
    np.testing.assert_allclose(step.action[:6], expected[:6], atol=1e-12)
    assert centre(BINS[6]) < 0.5 and step.action[6] == -1.0  # WidowX: predicted openness < 0.5 -> close (-1)
    assert step.reasoning is None and step.intention is None
    assert a.action_space == ActionSpace(
        mode="ee_delta", rotation="euler_rpy", dim=7, normalized=False, gripper_open=1, gripper_binary=True
    )
    assert a.actions.vocab_size == VOCAB  # text_config.vocab_size - pad_to_multiple_of


def test_prompt_image_size_and_generation_inputs(planted: Path) -> None:
    a = adapter(planted)
    calls = spy_generate(a)
    a.act(obs(), "  Pick up the Red Cube ")
    sent = a.processor.calls[-1]
    assert sent["text"] == ["In: What action should the robot take to pick up the red cube?\nOut:"]
    assert sent["sizes"] == [(224, 224)]  # resized before the processor, as SimplerEnv feeds OpenVLA
    (call,) = calls
    ids = call["input_ids"][0].tolist()
    assert ids[-2:] == [TOKENIZER.convert_tokens_to_ids(":"), TOKENIZER.convert_tokens_to_ids(EMPTY)]
    assert ids[0] == TOKENIZER.bos_token_id and call["attention_mask"].sum() == len(ids)
    assert call["max_new_tokens"] == 7 and call["do_sample"] is False and call["num_beams"] == 1
    assert tuple(call["pixel_values"].shape) == (1, 3, 32, 32)


def test_the_empty_token_matters_and_is_never_doubled(planted: Path) -> None:
    with pytest.raises(ValueError, match=r"does not end in 7 action tokens .*max_new_tokens, now 7"):
        adapter(planted, empty_token="none").act(obs(), "pick up the red cube")  # the planted reply follows '▁' only
    torch = pytest.importorskip("torch")
    ids = torch.tensor([[0, 0, 5, 6], [7, 8, 9, 1]])
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    out = ActionTokenPolicy.with_empty_token({"input_ids": ids, "attention_mask": mask, "pixel_values": 3}, 1, 0)
    assert out["input_ids"].tolist() == [[0, 5, 6, 1], [7, 8, 9, 1]]  # appended where missing, re-padded on the left
    assert out["attention_mask"].tolist() == [[0, 1, 1, 1], [1, 1, 1, 1]] and out["pixel_values"] == 3
    ended = {"input_ids": torch.tensor([[4, 1]]), "attention_mask": torch.tensor([[1, 1]])}
    assert ActionTokenPolicy.with_empty_token(ended, 1, 0) is ended


def test_center_crop_option_crops_before_resizing(planted: Path) -> None:
    ring = np.zeros((64, 64, 3), np.uint8)
    ring[..., 1] = 200
    ring[0, :], ring[-1, :], ring[:, 0], ring[:, -1] = (255, 0, 0), (255, 0, 0), (255, 0, 0), (255, 0, 0)
    full, cropped = adapter(planted), adapter(planted, center_crop=0.9)
    full.act(obs(ring), "pick up the red cube")
    cropped.act(obs(ring), "pick up the red cube")
    seen_full, seen_cropped = full.processor.calls[-1]["images"][0], cropped.processor.calls[-1]["images"][0]
    assert seen_full.shape == seen_cropped.shape == (224, 224, 3)
    assert seen_full[0, :, 0].max() > 200 and seen_cropped[..., 0].max() < 40  # the 1-pixel red ring is cut off
    assert cropped.info()["image"]["center_crop"] == 0.9


def test_fractal_statistics_mean_the_google_robot_gripper(planted: Path) -> None:
    a = adapter(planted, unnorm_key="fractal20220817_data")
    assert (a.robot, a.action_space.gripper_open, a.action_space.gripper_binary) == ("google", -1, False)
    first, second = a.act(obs(), "pick up the red cube"), a.act(obs(), "pick up the red cube")
    np.testing.assert_allclose(first.action[:6], unnormalise(FRACTAL, [centre(b) for b in BINS])[:6], atol=1e-12)
    assert first.action[6] == 0.0 and second.action[6] == 0.0  # no change of openness: no gripper command
    assert adapter(planted, unnorm_key="fractal20220817_data", robot="generic").act(obs(), "x").action[6] == -1.0


def test_google_gripper_is_relative_and_sticky() -> None:
    g = GripperPost("google", repeat=3)
    seq = [g(p) for p in (1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0)]
    assert seq == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, -1.0, -1.0]  # close held 3 steps, then reopening
    g.reset()
    assert g(0.0) == 0.0  # a new episode starts from no reference
    widowx, generic = GripperPost("widowx", 1), GripperPost("generic", 1)
    assert [widowx(p) for p in (0.2, 0.6)] == [-1.0, 1.0]
    assert [generic(p) for p in (0.25, 1.3, -0.2)] == [-0.5, 1.0, -1.0]


def test_unnorm_key_must_be_chosen_and_errors_list_the_keys(planted: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ValueError,
        match=r"2 datasets; choose one with -M unnorm_key=KEY .*Keys: bridge_orig, "
        r"fractal20220817_data",
    ):
        adapter(planted, unnorm_key=None)
    with pytest.raises(ValueError, match=r"unnorm_key 'bridge' is not in .*config.json.*bridge_orig"):
        adapter(planted, unnorm_key="bridge")
    with pytest.raises(ValueError, match="unknown robot 'franka'"):
        adapter(planted, robot="franka")
    with pytest.raises(ValueError, match="bad --model-arg .*unknown option.*temperature"):
        make_adapter(
            "openvla", {"path": str(planted), "device": "cpu", "unnorm_key": "bridge_orig", "temperature": 0.5}
        )


def test_norm_stats_file_overrides_the_checkpoint(planted: Path, tmp_path: Path) -> None:
    mine = {"q01": [-1.0] * 6 + [0.0], "q99": [1.0] * 6 + [1.0], "mask": [True] * 7}
    file = tmp_path / "config.json"
    file.write_text(json.dumps({"norm_stats": {"my_robot": {"action": mine}}}))
    a = adapter(planted, unnorm_key=None, norm_stats=str(file))
    assert (a.unnorm_key, a.robot, a.info()["norm_stats"]) == ("my_robot", "generic", str(file))
    step = a.act(obs(), "pick up the red cube")
    np.testing.assert_allclose(step.action[:6], [centre(b) for b in BINS[:6]], atol=1e-12)
    assert step.action[6] == pytest.approx(2 * (0.5 * (centre(BINS[6]) + 1)) - 1)  # un-normalised to 0..1, then 2g-1
    with pytest.raises(ValueError, match="does not exist"):
        adapter(planted, norm_stats=str(tmp_path / "missing.json"))


def test_cuda_on_a_machine_without_it_is_a_clear_error(planted: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="sees no CUDA device.*-M device=cpu"):
        adapter(planted, device="cuda")


def test_batch_equals_one_by_one(steered: Path) -> None:
    a = adapter(steered, robot="generic")
    colours = ([0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255])
    observations = [obs(np.full((48, 64, 3), c, np.uint8)) for c in colours]
    instructions = ["pick up the red cube", "push the ball", "stack the green cube onto the blue cube", "lift"]
    calls = spy_generate(a)
    batched = a.act_batch(observations, instructions)
    assert len(calls) == 1 and calls[0]["input_ids"].shape[0] == 4  # one generate call, left-padded
    assert a.processor.calls[-1]["padding"] is True
    single = [a.act(o, i) for o, i in zip(observations, instructions, strict=True)]
    for b, s in zip(batched, single, strict=True):
        np.testing.assert_array_equal(b.action, s.action)
    assert len({tuple(b.action) for b in batched}) > 1  # the answers depend on the inputs
    a.batch = 3
    np.testing.assert_array_equal(
        [s.action for s in a.act_batch(observations, instructions)], [s.action for s in batched]
    )


def test_registered_with_its_extra_and_needs() -> None:
    cls = ADAPTERS.get("openvla")
    assert cls is OpenVLAAdapter and cls.extras == ("models",) and "16 GB" in cls.needs
    assert cls.default_path == "openvla/openvla-7b"


def test_a_toy_episode_runs_through_the_runner(planted: Path, tmp_path: Path, toy_suite: Suite) -> None:
    suite = small_suite(toy_suite, ["ToyPick"], [0], max_steps=3)
    args = {"path": str(planted), "device": "cpu", "unnorm_key": "bridge_orig"}
    summary = runner.run(model="openvla", model_args=args, suite=suite, out=tmp_path / "r")
    assert summary.ran == 1 and summary.errored == 0
    run = vlascore.load_run(tmp_path / "r")
    assert run.episodes.loc[0, "status"] == "ok" and run.episodes.loc[0, "num_steps"] == 3
    info = run.run.adapter_info
    assert info["unnorm_key"] == "bridge_orig" and info["action_space"]["rotation"] == "euler_rpy"
    actions = np.array(run.steps["action"].tolist())
    assert actions.shape == (3, 7) and np.allclose(actions, actions[0])  # the same planted action every step
