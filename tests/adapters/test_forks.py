"""Forks of a model adapter for concurrent episodes (a shared policy, vectorised envs): they share the weights, keep
their own episode state, and several forks' calls are answered by one batched forward equal to one-by-one calls."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import small_suite
from tiny_openvla import tiny_openvla

import vlascore
from vlascore import runner
from vlascore.adapters.token_policy import ActionTokenPolicy
from vlascore.suites import ActionSpace, Suite

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def steered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_openvla(tmp_path_factory.mktemp("openvla-forks") / "ckpt", steer=True)


def test_openvla_forks_share_the_model_and_batch_their_calls(
    steered: Path, tmp_path: Path, toy_suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Google Robot's gripper post-processing is relative and sticky: per-episode state each fork must keep apart.
    args: dict[str, Any] = {"path": str(steered), "device": "cpu", "unnorm_key": "bridge_orig", "robot": "google"}
    suite = small_suite(toy_suite, ["ToyPick"], [0, 1, 2, 3], max_steps=6)
    # a task taking the Google Robot's relative gripper in metres, with xyz Euler angles: only the rotation converts
    space = ActionSpace(
        mode="ee_delta", rotation="euler_xyz", dim=7, normalized=False, gripper_open=-1, gripper="relative"
    )
    suite = suite.model_copy(update={"tasks": [suite.tasks[0].model_copy(update={"action_space": space})]})
    forwards: list[int] = []
    real = ActionTokenPolicy.generate

    def counted(self: ActionTokenPolicy, images: list[Any], *rest: Any, **kw: Any) -> Any:
        forwards.append(len(images))
        return real(self, images, *rest, **kw)

    monkeypatch.setattr(ActionTokenPolicy, "generate", counted)
    runner.run(model="openvla", model_args=args, suite=suite, out=tmp_path / "one")
    assert set(forwards) == {1}
    forwards.clear()
    runner.run(model="openvla", model_args=args, suite=suite, out=tmp_path / "vec", num_envs=3)
    assert max(forwards) == 3 and sum(forwards) == 24  # 4 episodes x 6 steps, mostly 3 at a time
    one, vec = vlascore.load_run(tmp_path / "one"), vlascore.load_run(tmp_path / "vec")
    key = ["episode_id", "step"]
    a, b = (r.steps.sort_values(key).reset_index(drop=True) for r in (one, vec))
    assert a["action"].tolist() == b["action"].tolist()
    assert len({tuple(x) for x in a["action"]}) > 1  # the answers depend on the frames
    assert one.run.adapter_info["conversions"]  # the toy task's convention is converted: the wrapper forks too


def test_a_fork_copies_no_weights(steered: Path) -> None:
    from vlascore.adapters.openvla import OpenVLAAdapter

    lead = OpenVLAAdapter(path=str(steered), device="cpu", unnorm_key="bridge_orig", robot="google")
    twin = lead.fork()
    assert isinstance(twin, OpenVLAAdapter)
    assert twin.model is lead.model and twin.processor is lead.processor
    assert twin.gripper is not lead.gripper and twin.stats is not lead.stats
    lead.gripper(0.9)  # the sticky state moves in the lead only
    assert twin.gripper.previous is None and lead.gripper.previous == pytest.approx(0.9)
    np.testing.assert_array_equal(lead.actions.centers, twin.actions.centers)


@pytest.fixture
def _forget_instructvla() -> Iterator[None]:
    """The adapter puts -M code on sys.path and imports the fake package: undo both after the test."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in [m for m in sys.modules if m == "vla" or m.startswith("vla.")]:
        del sys.modules[name]


@pytest.mark.usefixtures("_forget_instructvla")
def test_instructvla_forks_keep_their_noise_and_cached_answer_apart(tmp_path: Path, toy_suite: Suite) -> None:
    # The action expert draws noise from torch's generator, and the model caches its answer and call counter on
    # itself: interleaved episodes on one model must each see their own stream and state.
    from tiny_instructvla import fake_instructvla_code, tiny_instructvla_checkpoint

    code = fake_instructvla_code(tmp_path / "InstructVLA")
    ckpt = tmp_path / "noisy"
    tiny_instructvla_checkpoint(ckpt, code, head_scale=1.0, noise_scale=0.05, answer="i will pick it up", seed=1)
    args = {"path": str(ckpt), "code": str(code), "unnorm_key": "bridge_dataset", "ensemble": "none"}
    suite = small_suite(toy_suite, ["ToyPick"], [0, 1, 2], max_steps=5)
    runner.run(model="instructvla", model_args=args, suite=suite, out=tmp_path / "one")
    runner.run(model="instructvla", model_args=args, suite=suite, out=tmp_path / "vec", num_envs=3)
    one, vec = vlascore.load_run(tmp_path / "one"), vlascore.load_run(tmp_path / "vec")
    key = ["episode_id", "step"]
    a, b = (r.steps.sort_values(key).reset_index(drop=True) for r in (one, vec))
    assert a["action"].tolist() == b["action"].tolist() and a["reasoning"].tolist() == b["reasoning"].tolist()
    first = a.groupby("episode_id")["action"].first()
    assert len({tuple(x) for x in first}) == 3  # each seed draws its own noise
