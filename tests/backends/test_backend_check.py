"""The backend checker: the toy backend (every toy task) and the real ManiSkill backend pass; each deliberately
broken backend fails with the check that names its fault, and only that check."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from vlascore.backends import BackendError, Observation, StepResult
from vlascore.backends.check import TASK_CHECKS, BackendReport, check_backend, neutral_action, probe_actions
from vlascore.backends.toy import ToyBackend
from vlascore.extras import available
from vlascore.suites import ActionSpace, load_suite

TOY_TASKS = load_suite("toy").tasks


def statuses(report: BackendReport) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def failed(cls: type[ToyBackend]) -> dict[str, str]:
    """Check name -> detail of the failed checks of `cls` on the first toy task."""
    (report,) = check_backend(cls, TOY_TASKS[:1], steps=3)
    return {c.name: c.detail for c in report.problems}


@pytest.mark.parametrize("task", TOY_TASKS, ids=[t.id for t in TOY_TASKS])
def test_the_toy_backend_passes_every_check(task: Any) -> None:
    (report,) = check_backend(ToyBackend, [task])
    assert report.backend == "toy" and report.task == task.id
    assert statuses(report) == {name: "ok" for name in ("construct", *TASK_CHECKS, "close")}, report.checks


def test_one_report_per_task_and_close_once() -> None:
    tasks = [TOY_TASKS[0], TOY_TASKS[0].model_copy(update={"id": "ToyPick-wide", "resolution": (48, 24)})]
    reports = check_backend(ToyBackend, tasks, seed=3, steps=2)
    assert [r.task for r in reports] == ["ToyPick", "ToyPick-wide"] and not any(r.problems for r in reports)
    assert ["close" in statuses(r) for r in reports] == [False, True]
    assert "image (24, 48, 3)" in next(c.detail for c in reports[1].checks if c.name == "reset_observation")


# --- broken backends: each fault is named by its check -----------------------------------------------------------


class WrongImageShape(ToyBackend):
    def _render(self) -> np.ndarray:
        return super()._render()[:, :-4]  # 28 wide where the task declares 32x32


class NonDeterministicReset(ToyBackend):
    resets = 0

    def reset(self, seed: int) -> Observation:
        self.resets += 1  # ignores part of the seed: each reset starts another episode
        return super().reset(seed + self.resets)


class NanReward(ToyBackend):
    def step(self, action: np.ndarray) -> StepResult:
        result = super().step(action)
        result.reward = float("nan")
        return result


class NonUnitQuaternion(ToyBackend):
    def _obs(self) -> Observation:
        obs = super()._obs()
        obs.privileged.ee_pose = np.array([*self.ee, 0.9, 0.1, 0.0, 0.0])  # norm 0.906
        return obs


class UnserialisableDescribe(ToyBackend):
    def describe(self) -> dict[str, Any]:
        return {"camera_intrinsics": np.eye(3)}


class DriftingStep(ToyBackend):
    calls = 0

    def step(self, action: np.ndarray) -> StepResult:
        self.calls += 1
        result = super().step(action)
        result.reward += 1e-6 * self.calls  # state carried across episodes
        return result


class MissingRole(ToyBackend):
    def _obs(self) -> Observation:
        obs = super()._obs()
        del obs.privileged.objects["goal"]
        return obs


class ChangingDescribe(ToyBackend):
    described = 0

    def describe(self) -> dict[str, Any]:
        self.described += 1
        return {"calls": self.described}


class FragileReuse(ToyBackend):
    made = 0

    def make(self, task: Any) -> None:
        self.made += 1
        if self.made > 1:
            raise RuntimeError("env already built")
        super().make(task)


class FailingClose(ToyBackend):
    def close(self) -> None:
        raise OSError("renderer gone")


BROKEN: list[tuple[type[ToyBackend], dict[str, str]]] = [
    (
        WrongImageShape,
        {
            "reset_observation": "image is 28x32 (WxH), the task declares 32x32",
            "step_result": "observation after step: image is 28x32",
        },
    ),
    (NonDeterministicReset, {"reset_seed_determinism": "reset(0) twice gave different initial states"}),
    (NanReward, {"step_result": "reward is nan, not finite"}),
    (
        NonUnitQuaternion,
        {
            "reset_observation": "privileged.ee_pose quaternion [0.9, 0.1, 0.0, 0.0] has norm 0.9055",
            "step_result": "has norm 0.9055",
        },
    ),
    (UnserialisableDescribe, {"describe": "not JSON-serialisable"}),
    (DriftingStep, {"step_determinism": "step 0 of the same seed and actions: reward"}),
    (MissingRole, {"reset_observation": "lacks the task's role(s) goal", "step_result": "role(s) goal"}),
    (ChangingDescribe, {"describe": "changed between calls"}),
    (FragileReuse, {"env_reuse": "make('ToyPick') again raised RuntimeError: env already built"}),
    (FailingClose, {"close": "close() raised OSError: renderer gone"}),
]
"""Each broken backend, with check name -> a phrase of the detail of each check it must fail (and no others)."""


@pytest.mark.parametrize(("cls", "expected"), BROKEN, ids=[cls.__name__ for cls, _ in BROKEN])
def test_a_broken_backend_fails_the_check_that_names_its_fault(cls: type[ToyBackend], expected: dict[str, str]) -> None:
    problems = failed(cls)
    assert set(problems) == set(expected), problems
    for name, text in expected.items():
        assert text in problems[name], (name, problems[name])


def test_a_nondeterministic_reset_skips_the_comparisons_built_on_it() -> None:
    (report,) = check_backend(NonDeterministicReset, TOY_TASKS[:1])
    assert statuses(report)["step_determinism"] == statuses(report)["env_reuse"] == "skip"


def test_a_failed_make_skips_the_task_and_still_closes() -> None:
    class NoEnv(ToyBackend):
        def make(self, task: Any) -> None:
            raise BackendError("no Vulkan device")

    (report,) = check_backend(NoEnv, TOY_TASKS[:1])
    assert [c.name for c in report.problems] == ["make"] and "no Vulkan device" in report.problems[0].detail
    assert {statuses(report)[name] for name in TASK_CHECKS[1:]} == {"skip"} and statuses(report)["close"] == "ok"


def test_a_backend_that_cannot_be_constructed() -> None:
    def construct() -> ToyBackend:
        raise BackendError("SimplerEnv is not installed")

    (report,) = check_backend(construct, TOY_TASKS[:1])
    assert report.backend == "?" and [(c.name, c.status) for c in report.checks] == [("construct", "fail")]


def test_warnings_are_not_problems() -> None:
    class Unnamed(ToyBackend):
        name = ""

        def step(self, action: np.ndarray) -> StepResult:
            result = super().step(action)
            result.success = np.bool_(result.success)  # type: ignore[assignment]
            return result

    class Blank(ToyBackend):
        def _render(self) -> np.ndarray:
            return np.zeros_like(super()._render())

    class IgnoresSeed(ToyBackend):
        def reset(self, seed: int) -> Observation:
            return super().reset(0)

    for cls, name, text in (
        (Unnamed, "name", "sets no `name`"),
        (Unnamed, "step_result", "numpy bool"),
        (Blank, "reset_observation", "a blank render?"),
        (IgnoresSeed, "reset_seed_varies", "is the seed used?"),
    ):
        (report,) = check_backend(cls, TOY_TASKS[:1], steps=2)
        found = {c.name: c for c in report.checks}
        assert not report.problems and found[name].status == "warn" and text in found[name].detail, report.checks


def test_neutral_and_probe_actions_follow_the_task_convention() -> None:
    task = TOY_TASKS[0]
    assert neutral_action(task).tolist() == [0, 0, 0, 0, 0, 0, 1]  # absolute gripper: held open
    google = task.model_copy(
        update={
            "action_space": ActionSpace(rotation="axis_angle", normalized=False, gripper_open=-1, gripper="relative")
        }
    )
    assert neutral_action(google).tolist() == [0] * 7  # relative gripper: no change
    probes = probe_actions(google, 0, 3)
    assert all(np.abs(a[:6]).max() <= 0.02 and a[6] == 0 for a in probes) and not np.array_equal(*probes[:2])
    assert all(np.array_equal(a, b) for a, b in zip(probes, probe_actions(google, 0, 3), strict=True))


@pytest.mark.slow
@pytest.mark.skipif(not available("mani_skill"), reason="needs the simulator: pip install 'vlascore[sim]'")
def test_the_maniskill_backend_passes_on_a_tabletop_task() -> None:
    from vlascore.backends.maniskill import ManiSkillBackend

    (report,) = check_backend(ManiSkillBackend, [load_suite("tabletop").task("PickCube")], steps=3)
    assert report.backend == "maniskill"
    assert statuses(report) == {name: "ok" for name in ("construct", *TASK_CHECKS, "close")}, report.checks
