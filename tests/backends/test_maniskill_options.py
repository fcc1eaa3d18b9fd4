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
    assert default.describe() == {"sim_backend": "cpu", "render_backend": "cpu", "num_envs": 1}
    off = make_backend("maniskill", images=False)  # `-B images=false`
    assert off.env_kwargs(task) == {**default.env_kwargs(task), "obs_mode": "none"}
    assert off.describe() == {**default.describe(), "images": False}
    with pytest.raises(ValueError, match="images must be true or false, not 'no'"):
        ManiSkillBackend(images="no")  # type: ignore[arg-type]
