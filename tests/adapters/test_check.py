"""`vlascore adapter check`: each contract violation is found and named; a good adapter passes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from vlascore.adapters import ADAPTERS, Adapter, EpisodeContext, PolicyStep
from vlascore.adapters.check import check_adapter
from vlascore.backends import Observation
from vlascore.cli import app
from vlascore.suites import ActionSpace, load_suite

TASK = load_suite("toy").tasks[0]


class Good(Adapter):
    name = "good"
    reasons = True

    def reset(self, context: EpisodeContext) -> None:
        self.rng = np.random.default_rng(context.seed)

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        return PolicyStep(self.rng.uniform(-1, 1, 7), reasoning="go", intention="reach")


class WrongShape(Good):
    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        return PolicyStep(np.zeros(6), reasoning="go")


class Unseeded(Good):
    def reset(self, context: EpisodeContext) -> None:
        self.rng = np.random.default_rng()  # ignores the seed


class Silent(Good):
    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        return PolicyStep(super().act(obs, instruction).action)


class BadGripper(Good):
    action_space = ActionSpace(gripper_binary=True)


class OddBatch(Good):
    def act_batch(self, observations: list[Observation], instructions: list[str]) -> list[PolicyStep]:
        return [PolicyStep(np.zeros(7), reasoning="batch") for _ in observations]


class Loud(Good):
    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        step = super().act(obs, instruction)
        return PolicyStep(step.action * 3, step.reasoning)


class Joint(Good):
    action_space = ActionSpace(mode="joint_delta", rotation="none", dim=8)


def statuses(cls: type[Adapter], **kw: Any) -> dict[str, str]:
    (report,) = check_adapter(cls, [TASK], **kw)
    return {c.name: c.status for c in report.checks}


def test_a_good_adapter_passes_with_latency_figures() -> None:
    (report,) = check_adapter(Good, [TASK], timed_calls=4)
    assert not report.problems and len(report.latency_ms) == 4
    assert {"construct", "info", "conventions", "actions", "reasoning", "determinism", "act_batch", "latency"} <= {
        c.name for c in report.checks
    }


@pytest.mark.parametrize(
    ("cls", "check"),
    [
        (WrongShape, "actions"),
        (Unseeded, "determinism"),
        (Silent, "reasoning"),
        (BadGripper, "gripper"),
        (OddBatch, "act_batch"),
        (Joint, "conventions"),
    ],
)
def test_each_violation_fails_its_check(cls: type[Adapter], check: str) -> None:
    assert statuses(cls)[check] == "fail"


def test_out_of_bounds_is_a_warning_and_latency_can_fail() -> None:
    assert statuses(Loud)["bounds"] == "warn"
    assert statuses(Good, max_latency_ms=0.0)["latency"] == "fail"


def test_construction_failure_is_reported() -> None:
    def boom() -> Adapter:
        raise RuntimeError("no checkpoint")

    (report,) = check_adapter(boom, [TASK])
    assert [(c.name, c.status) for c in report.checks] == [("construct", "fail")]
    assert "RuntimeError: no checkpoint" in report.checks[0].detail


def test_cli_exits_1_listing_the_problems(tmp_path: Path) -> None:
    ADAPTERS.register("check-unseeded", Unseeded)
    ADAPTERS.register("check-good", Good)
    cli = CliRunner()
    bad = cli.invoke(app, ["adapter", "check", "check-unseeded", "-s", "toy", "--json"])
    assert bad.exit_code == 1 and "1 problem(s): ToyPick: determinism" in bad.stderr
    assert json.loads(bad.stdout)["ok"] is False  # stdout holds the JSON alone, the verdict goes to stderr
    good = cli.invoke(app, ["adapter", "check", "check-good", "-s", "toy"])
    assert good.exit_code == 0 and "passes the adapter checks on 1 task(s)" in good.stdout
    typo = cli.invoke(app, ["adapter", "check", "check-god", "-s", "toy"])
    assert typo.exit_code == 1 and "Did you mean 'check-good'" in typo.stderr


def test_random_passes_on_every_simplerenv_suite_in_its_own_convention() -> None:
    for suite in ("simpler-bridge", "simpler-google-vm", "simpler-widowx"):
        result = CliRunner().invoke(app, ["adapter", "check", "random", "-s", suite])
        assert result.exit_code == 0, result.output
        assert "speaks each task's convention" in " ".join(result.output.split())
