"""SpatialVLA through its remote-code loading path, on a tiny checkpoint whose action tokens the test chooses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import small_suite
from tiny_spatialvla import tiny_spatialvla

import vlascore
from vlascore import runner
from vlascore.adapters import EpisodeContext, make_adapter
from vlascore.adapters.check import check_adapter, synthetic_observation
from vlascore.adapters.conventions import plan_conversion
from vlascore.backends import Observation
from vlascore.suites import Suite, load_suite

pytest.importorskip("transformers")

# (translation cell, rotation cell, gripper bin) per chunk step; cells index 4 x 4 x 4 grids with centres
# -0.75 -0.25 0.25 0.75 on every axis
ACTIONS = [((0, 1, 2), (3, 2, 1), 0), ((1, 1, 1), (0, 0, 0), 1), ((3, 3, 3), (2, 2, 2), 1), ((2, 0, 1), (1, 3, 0), 1)]
# by hand: 0.5 * (centre + 1) * (q99 - q01) + q01 with bridge_orig's q01/q99 (tiny_spatialvla.BRIDGE); the gripper
# bin is the 0/1 openness, thresholded at 0.5 into -1 close / +1 open (WidowX)
RAW = np.array(
    [
        [-0.015, -0.01, 0.02, 0.075, 0.15, -0.05, 0.0],
        [-0.005, -0.01, 0.0, -0.075, -0.05, -0.15, 1.0],
        [0.015, 0.03, 0.04, 0.025, 0.15, 0.05, 1.0],
        [0.005, -0.03, 0.0, -0.025, 0.25, -0.15, 1.0],
    ]
)
EXPECTED = np.column_stack([RAW[:, :6], [-1.0, 1.0, 1.0, 1.0]])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_spatialvla(tmp_path_factory.mktemp("spatialvla") / "spatialvla-tiny", actions=ACTIONS)


def make(path: Path, **options: Any) -> Any:
    return make_adapter("spatialvla", {"path": str(path), "unnorm_key": "bridge_orig", **options})


def obs(value: int = 0, size: int = 32) -> Observation:
    o = synthetic_observation(load_suite("toy").tasks[0], np.random.default_rng(value))
    o.image = np.full((size, size, 3), value, dtype=np.uint8)
    return o


def start(adapter: Any, seed: int = 0) -> None:
    adapter.reset(EpisodeContext(task=load_suite("toy").tasks[0], seed=seed, episode_id=f"ToyPick-{seed}"))


def test_chunk_by_hand_and_what_the_processor_received(ckpt: Path) -> None:
    adapter = make(ckpt, ensemble="none")
    start(adapter)
    step = adapter.act(obs(size=48), "Pick up the RED cube")
    np.testing.assert_allclose(step.action, EXPECTED, atol=1e-12)
    assert step.reasoning is None and step.intention is None
    call = adapter.processor.calls[-1]
    assert call["text"] == ["pick up the red cube"]  # the bare instruction, lower-cased (SimplerEnv / training)
    assert call["sizes"] == [(224, 224)] and call["do_normalize"] is False
    assert call["unnorm_key"] == "bridge_orig/1.0.0"  # the version suffix completed
    info = adapter.info()
    assert (info["chunk_size"], info["execute_steps"], info["dtype"], info["robot"]) == (4, None, "bfloat16", "widowx")
    assert info["action_space"] == {
        "mode": "ee_delta",
        "rotation": "euler_rpy",
        "dim": 7,
        "normalized": False,
        "gripper_open": 1,
        "gripper_binary": True,
        "gripper": "absolute",
    }
    assert type(adapter.model).__module__.startswith("transformers_modules")  # the checkpoint's own code ran


def test_temporal_ensemble_and_execute(ckpt: Path) -> None:
    adapter = make(ckpt)  # SimplerEnv's default: ensemble with temperature -0.8, one action per call
    start(adapter)
    first, second = adapter.act(obs(), "pick"), adapter.act(obs(), "pick")
    np.testing.assert_allclose(first.action, EXPECTED[:1], atol=1e-12)
    # the previous chunk's 2nd action and this chunk's 1st, weights exp(0.8 * [0, 1]) normalised
    w_old = 1 / (1 + np.exp(0.8))
    mixed = w_old * RAW[1] + (1 - w_old) * RAW[0]
    np.testing.assert_allclose(second.action[0, :6], mixed[:6], atol=1e-12)
    assert second.action[0, 6] == -1.0  # ensembled openness 0.31: closed
    plain = make(ckpt, ensemble=0)  # the plain mean: openness 0.5 (closed), then 2/3 (open)
    start(plain)
    assert [plain.act(obs(), "pick").action[0, 6] for _ in range(3)] == [-1.0, -1.0, 1.0]
    assert (adapter.execute_steps, adapter.info()["ensemble_temperature"]) == (1, -0.8)
    with pytest.raises(ValueError, match="ensemble=none"):
        make(ckpt, execute=2)
    two = make(ckpt, ensemble="none", execute=2)
    start(two)
    assert two.execute_steps == 2
    np.testing.assert_allclose(two.act(obs(), "pick").action, EXPECTED[:2], atol=1e-12)


def test_unnorm_key_choice_and_errors(ckpt: Path) -> None:
    with pytest.raises(ValueError, match=r"-M unnorm_key=KEY.*Keys: bridge_orig/1.0.0, fractal20220817_data/0.1.0"):
        make_adapter("spatialvla", {"path": str(ckpt)})
    with pytest.raises(ValueError, match="Did you mean 'bridge_orig/1.0.0'"):
        make(ckpt, unnorm_key="bridge_orig/1.0")
    google = make(ckpt, unnorm_key="fractal20220817_data", ensemble="none")
    assert google.unnorm_key == "fractal20220817_data/0.1.0" and google.gripper.robot == "google"
    assert (google.action_space.gripper_open, google.action_space.gripper_binary) == (-1, False)
    start(google)  # sticky relative gripper: the first call commands no change, then 0 - 1 = -1 (open) is held
    np.testing.assert_allclose(google.act(obs(), "pick").action[:, 6], [0.0, -1.0, -1.0, -1.0])
    with pytest.raises(ValueError, match="bfloat16"):
        make(ckpt, dtype="float32")
    with pytest.raises(ValueError, match="bad --model-arg.*unknown option"):
        make(ckpt, temperature=1)


def test_independent_calls_match_one_by_one_and_history(tmp_path: Path) -> None:
    path = tiny_spatialvla(tmp_path / "random", num_obs_steps=2, obs_delta=2, seed=3)  # actions from the weights
    adapter = make(path, ensemble="none")
    images = [adapter.images([obs(v)])[0] for v in (0, 200)]
    both = adapter.predict(images, ["pick up the red cube", "push the cube"])
    one = adapter.predict(images[:1], ["pick up the red cube"]) + adapter.predict(images[1:], ["push the cube"])
    assert all(np.array_equal(a.action, b.action) for a, b in zip(both, one, strict=True))
    assert not np.array_equal(both[0].action, both[1].action)  # the image and prompt reach the random weights
    # history of num_obs_steps=2 frames obs_delta=2 apart; the first frame stands in at the start
    start(adapter)
    adapter.processor.calls.clear()
    for v in (10, 20, 30, 40):
        adapter.act(obs(v), "pick")
    seen = [[int(im.mean()) for im in call["images"]] for call in adapter.processor.calls]
    assert seen == [[10, 10], [10, 20], [10, 30], [20, 40]]


def test_conformance_check_passes(ckpt: Path, toy_suite: Suite) -> None:
    reports = check_adapter(lambda: make(ckpt), [toy_suite.tasks[0]], steps=3, timed_calls=1)
    assert not reports[0].problems, [(c.name, c.detail) for c in reports[0].checks]
    assert {c.name: c.status for c in reports[0].checks}["act_batch"] == "ok"


def test_a_toy_episode_through_the_runner(ckpt: Path, toy_suite: Suite, tmp_path: Path) -> None:
    suite = small_suite(toy_suite, ["ToyPick"], [0], max_steps=4)
    summary = runner.run(
        model="spatialvla",
        model_args={"path": str(ckpt), "unnorm_key": "bridge_orig"},
        suite=suite,
        out=tmp_path / "r",
        episodes=1,
    )
    assert (summary.ran, summary.errored) == (1, 0)
    run = vlascore.load_run(tmp_path / "r")
    assert len(run.steps) == 4 and run.run.adapter_info["unnorm_key"] == "bridge_orig/1.0.0"
    conversion = run.run.adapter_info["conversions"]["ToyPick"]
    assert conversion["from"]["rotation"] == "euler_rpy" and conversion["from"]["normalized"] is False
    adapter = make(ckpt)
    to_toy = plan_conversion(adapter.action_space, suite.tasks[0])
    assert to_toy is not None
    np.testing.assert_allclose(run.steps["action"].iloc[0], to_toy(EXPECTED[:1])[0], atol=1e-9)


def test_remote_code_for_older_transformers_says_so(tmp_path: Path) -> None:
    path = tiny_spatialvla(tmp_path / "old-code", actions=ACTIONS)
    modeling = path / "modeling_spatialvla.py"
    modeling.write_text("from transformers.cache_utils import HybridCache  # noqa: F401\n" + modeling.read_text())
    with pytest.raises(ImportError, match="cannot import the modelling code.*HybridCache") as err:
        make(path)
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        assert "transformers>=4.47,<5" in str(err.value)
