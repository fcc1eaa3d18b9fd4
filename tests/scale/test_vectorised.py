"""--num-envs: N environments stepped at once by a vectorised backend (the toy one here), one batched policy call
per step; episode boundaries, success and records are those of N separate episodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import small_suite
from scalekit import records

import vlascore
from vlascore import runner
from vlascore.adapters import ADAPTERS, Adapter, EpisodeContext, PolicyStep
from vlascore.backends import Observation
from vlascore.backends.toy import ToyBackend
from vlascore.suites import Suite


class Stuttering(Adapter):
    """Chunks of 3 actions of which 2 run (receding horizon), tagged with the episode's call count; seed 2 raises
    at its fourth call. Episodes of different seeds end at different steps."""

    name = "stuttering"
    chunk_size = 3
    execute_steps = 2
    reasons = True
    uses_privileged_state = True

    def reset(self, context: EpisodeContext) -> None:
        self.seed, self.calls = context.seed, 0

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        self.calls += 1
        if self.seed == 2 and self.calls == 4:
            raise RuntimeError("stutter")
        cube, ee = obs.privileged.objects["cube"][:3], obs.privileged.ee_pose[:3]
        move = np.clip((cube - ee) / 0.05, -1, 1)
        grip = -1.0 if np.linalg.norm(cube - ee) < 0.02 else 1.0
        chunk = np.tile(np.array([*move, self.calls / 100, 0, 0, grip]), (3, 1))
        return PolicyStep(chunk, reasoning=f"call {self.calls}", intention="reach")


ADAPTERS.register("stuttering", Stuttering)


@pytest.mark.parametrize("model", ["toy-expert", "stuttering", "random", "flaky"])
@pytest.mark.parametrize("num_envs", [2, 3])
def test_vectorised_episodes_equal_separate_ones(tmp_path: Path, toy_suite: Suite, model: str, num_envs: int) -> None:
    suite = small_suite(toy_suite, ["ToyPick"], list(range(7)), max_steps=30)
    runner.run(model=model, suite=suite, out=tmp_path / "one")
    summary = runner.run(model=model, suite=suite, out=tmp_path / "vec", num_envs=num_envs)
    assert summary.ran == 7
    assert records(tmp_path / "vec") == records(tmp_path / "one")
    eps = vlascore.load_run(tmp_path / "vec").episodes
    if model == "flaky":  # the policy fails seed 1 at step 3: only that episode, with the same reason
        assert eps.set_index("episode_id").loc["ToyPick-1", "failure_reason"].startswith("RuntimeError in policy at")
    if model == "stuttering":
        assert (eps["status"] == "errored").sum() == 1
    (session,) = vlascore.load_run(tmp_path / "vec").run.sessions
    assert session.num_envs == num_envs and max(session.batch_sizes) == num_envs


def test_the_vectorised_toy_backend_steps_every_slot_in_one_call(toy_suite: Suite) -> None:
    backend = ToyBackend(num_envs=3)
    backend.make(toy_suite.tasks[0])
    one = ToyBackend()
    one.make(toy_suite.tasks[0])
    first = backend.reset_envs({0: 5, 2: 7})
    assert set(first) == {0, 2}
    np.testing.assert_array_equal(first[2].privileged.objects["cube"], one.reset(7).privileged.objects["cube"])
    action = np.array([1.0, 0, 0, 0, 0, 0, 1])
    results = backend.step_envs(np.stack([action, action, action]))
    assert len(results) == 3 and results[2].observation.step == 1
    np.testing.assert_array_equal(
        results[2].observation.privileged.ee_pose, one.step(action).observation.privileged.ee_pose
    )
    assert ToyBackend.vectorised and backend.describe() == {}
    assert ToyBackend(step_seconds=0.5).describe() == {"step_seconds": 0.5}
