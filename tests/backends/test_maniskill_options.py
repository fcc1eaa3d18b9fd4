"""ManiSkill backend options that need no simulator: what they pass to gym.make and record in the run."""

from __future__ import annotations

import pytest

from vlascore.backends import make_backend
from vlascore.backends.maniskill import ManiSkillBackend
from vlascore.suites import load_suite


def test_images_false_builds_envs_without_camera_observations_and_says_so() -> None:
    suite = load_suite("tabletop")
    task = suite.task("PickCube")
    default = ManiSkillBackend()
    assert default.env_kwargs(task)["obs_mode"] == "rgb"  # users' runs still render
    assert default.describe() == {"sim_backend": "cpu", "render_backend": "cpu", "num_envs": 1, "fresh_scene": True}
    off = make_backend("maniskill", images=False)  # `-B images=false`
    assert off.env_kwargs(task) == {**default.env_kwargs(task), "obs_mode": "none"}
    assert off.describe() == {**default.describe(), "images": False}
    with pytest.raises(ValueError, match="images must be true or false, not 'no'"):
        ManiSkillBackend(images="no")  # type: ignore[arg-type]


def test_scenes_are_rebuilt_per_episode_unless_asked_or_vectorised() -> None:
    # every episode from its seed alone by default (a reused PushCube scene carries contact state between episodes)
    assert ManiSkillBackend().fresh_scene is True
    reused = make_backend("maniskill", fresh_scene="false")  # `-B fresh_scene=false`: text takes the declared type
    assert reused.fresh_scene is False and "fresh_scene" not in reused.describe()  # as runs recorded before
    gpu = ManiSkillBackend(sim_backend="gpu", num_envs=4)  # one scene holds every environment: never rebuilt
    assert gpu.fresh_scene is False
    with pytest.raises(ValueError, match="cannot go with --num-envs"):
        ManiSkillBackend(sim_backend="gpu", num_envs=4, fresh_scene=True)
