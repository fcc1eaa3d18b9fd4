"""vlascore.evaluate: a policy object or a plain function, run and scored from Python as `vlascore run` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import ToyExpert

import vlascore
from vlascore.adapters import PolicyStep
from vlascore.adapters.function import FunctionPolicy
from vlascore.backends import Observation
from vlascore.cli import app
from vlascore.store import StoreError


def test_an_adapter_object_runs_and_scores_like_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    run = vlascore.evaluate(ToyExpert(), suite="toy", episodes=3, out=tmp_path / "api")
    assert run.run.adapter == "toy-expert" and len(run.episodes) == 3 and run.results.suite_mean == 1.0
    assert (tmp_path / "api" / "results.json").is_file()
    cli = CliRunner().invoke(
        app, ["run", "-m", "toy-expert", "-s", "toy", "-n", "3", "-o", str(tmp_path / "cli"), "--no-progress"]
    )
    assert cli.exit_code == 0, cli.output
    same = vlascore.load_run(tmp_path / "cli")
    assert run.steps.drop(columns=["episode_id"]).equals(same.steps.drop(columns=["episode_id"]))
    assert (
        vlascore.evaluate(ToyExpert(), suite="toy", episodes=4, out=tmp_path / "api", resume=True).episodes.shape[0]
        == 4
    )
    with pytest.raises(StoreError, match="already holds a run"):
        vlascore.evaluate(ToyExpert(), suite="toy", episodes=1, out=tmp_path / "api")


def test_a_plain_function_speaks_the_tasks_convention(tmp_path: Path) -> None:
    def stay(obs: Observation, instruction: str) -> np.ndarray:
        return np.array([0, 0, 0, 0, 0, 0, 1.0])

    run = vlascore.evaluate(stay, suite="toy", episodes=2, out=tmp_path / "f")
    assert run.run.adapter == "test_a_plain_function_speaks_the_tasks_convention.<locals>.stay"
    assert run.run.adapter_info["speaks_task_convention"] is True
    assert [a[-1] for a in run.steps["action"]] == [1.0] * len(run.steps)


def test_a_function_that_reasons(tmp_path: Path) -> None:
    expert = ToyExpert()

    def talk(obs: Observation, instruction: str) -> PolicyStep:
        return expert.act(obs, instruction)

    run = vlascore.evaluate(
        FunctionPolicy(talk, reasons=True), suite="toy", episodes=2, name="talker", out=tmp_path / "t"
    )
    assert run.run.adapter == "talker" and run.run.adapter_info["reasons"] is True
    assert run.steps["reasoning"].str.startswith("Plan: grasp then carry").all()
    with pytest.raises(TypeError, match="must be callable"):
        FunctionPolicy(42)  # type: ignore[arg-type]
