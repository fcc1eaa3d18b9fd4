"""Columns, averages and per-variant task rates (SimplerEnv's aggregation) on real toy runs, worked by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from vlascore import runner
from vlascore.adapters import ADAPTERS, Adapter, EpisodeContext, PolicyStep
from vlascore.backends import Observation
from vlascore.cli import app
from vlascore.qa.summary import combined_row
from vlascore.scoring import score_run
from vlascore.store import load_run
from vlascore.suites import load_suite_file


class SeedPicker(Adapter):
    """Carries the cube to the goal on the episodes listed in WINS (by index), stands still on the others."""

    name = "seed-picker"
    uses_privileged_state = True
    WINS = {"a": {0, 2}, "b": {1}}

    def reset(self, context: EpisodeContext) -> None:
        self.win = context.seed in self.WINS.get(context.task.id, set())

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        if not self.win:
            return PolicyStep(np.array([0, 0, 0, 0, 0, 0, 1.0]))
        p = obs.privileged
        ee, cube, goal = p.ee_pose[:3], p.objects["cube"][:3], p.objects["goal"][:3]
        if not p.is_grasped:
            return PolicyStep(
                np.array(
                    [*np.clip((cube - ee) / 0.05, -1, 1), 0, 0, 0, -1.0 if np.linalg.norm(cube - ee) < 0.02 else 1.0]
                )
            )
        return PolicyStep(np.array([*np.clip((goal - ee) / 0.05, -1, 1), 0, 0, 0, -1.0]))


ADAPTERS.register("seed-picker", SeedPicker)

SUITE = {
    "name": "gridtoy",
    "protocol_version": "1",
    "backend": "toy",
    "key_prefix": "g",
    "defaults": {
        "env_id": "ToyPick-v0",
        "instruction": "pick",
        "max_steps": 40,
        "camera": "top",
        "resolution": [32, 32],
        "objects": {"cube": "cube", "goal": "goal"},
        "control_mode": "ee_delta",
    },
    "tasks": [
        # variant one: episodes 0-1, variant two: episodes 2-5 -> wins {0, 2}: rates 1/2 and 1/4, task 0.375
        {
            "id": "a",
            "mean_over": ["variant"],
            "grid": [
                {"variant": "one", "axes": [{"name": "e", "range": {"key": "e", "count": 2}}]},
                {"variant": "two", "axes": [{"name": "e", "range": {"key": "e", "count": 4}}]},
            ],
        },
        {"id": "b", "grid": {"axes": [{"name": "e", "range": {"key": "e", "count": 2}}]}},  # wins {1}: 0.5
        {"id": "c", "seeds": [0, 1]},
    ],
    "columns": [
        {"id": "ab", "title": "A and B", "tasks": ["a", "b"]},
        {"id": "a", "tasks": ["a"], "in_mean": False},
        {"id": "c", "tasks": ["c"], "key": "elsewhere/c"},
    ],
    "averages": [{"id": "both", "columns": ["ab", "c"]}, {"id": "just_ab", "columns": ["ab"]}],
}


@pytest.fixture
def grid_suite(tmp_path: Path):
    path = tmp_path / "gridtoy.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    return load_suite_file(path)


def test_columns_averages_and_variant_means_are_worked_out_as_simplerenv_does(grid_suite, tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner.run(model="seed-picker", suite=grid_suite, out=out, tasks=["a", "b"])
    res = score_run(load_run(out))
    a = next(t for t in res.tasks if t.task == "a")
    assert (a.successes, a.episodes, a.mean_over) == (2, 6, ["variant"])
    assert a.groups == {"variant=one": 0.5, "variant=two": 0.25}
    assert a.success_rate == pytest.approx(0.375)  # not the pooled 2/6
    cols = {c.id: c for c in res.columns}
    assert cols["ab"].success_rate == pytest.approx((0.375 + 0.5) / 2) and cols["ab"].key == "g/ab"
    assert cols["c"].success_rate is None and cols["c"].missing == ["c"] and cols["c"].key == "elsewhere/c"
    avgs = {x.id: x for x in res.averages}
    # an average is never taken over fewer columns than it names
    assert avgs["both"].value is None and avgs["both"].missing == ["c"]
    assert avgs["just_ab"].value == pytest.approx(0.4375) and avgs["just_ab"].keys == ["g/ab"]
    # the suite mean counts the in-mean columns that have a rate, and says which
    assert res.suite_mean == pytest.approx(0.4375) and res.suite_mean_columns == ["ab"]
    row = combined_row(out, results=res)
    assert row.sim_columns["g/ab"] == pytest.approx(43.75) and row.sim_columns["g/a"] == pytest.approx(37.5)
    one = " ".join(CliRunner().invoke(app, ["score", str(out)]).output.split())
    assert "│ column ab │ 43.8" in one and "mean of 1" not in one, one  # the mean of one column is that column

    runner.run(model="seed-picker", suite=grid_suite, out=out, resume=True)  # add task c: no successes
    res = score_run(load_run(out))
    both = next(x for x in res.averages if x.id == "both")
    assert both.value == pytest.approx((0.4375 + 0.0) / 2) and both.columns == ["ab", "c"]

    result = CliRunner().invoke(app, ["score", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert all(part in text for part in ("variant)", "columns of gridtoy", "mean of ab, c", "mean of 2 columns")), text
    stored = json.loads((out / "results.json").read_text())
    assert stored["schema_version"] == 3 and [c["id"] for c in stored["columns"]] == ["ab", "a", "c"]


def test_suites_without_columns_score_as_before(toy_suite, tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner.run(model="toy-expert", suite=toy_suite, out=out, episodes=3)
    res = score_run(load_run(out))
    assert [c.key for c in res.columns] == ["toy/ToyPick"] and res.averages == []
    assert res.suite_mean == res.tasks[0].success_rate and res.suite_mean_columns == ["ToyPick"]
    assert res.tasks[0].groups == {} and res.tasks[0].mean_over == []


def test_success_mode_can_be_chosen_and_is_recorded(toy_suite, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        ["run", "-m", "toy-expert", "-s", "toy", "-n", "2", "-o", str(out), "--success-mode", "final", "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    run = load_run(out)
    assert run.run.suite_fingerprint == toy_suite.with_success_mode("final").fingerprint != toy_suite.fingerprint
    assert {t["success_mode"] for t in run.run.suite_spec["tasks"]} == {"final"}
    assert (run.episodes["num_steps"] == 40).all()  # final: runs to the horizon
    bad = CliRunner().invoke(app, ["run", "-m", "toy-expert", "-s", "toy", "--success-mode", "sometimes"])
    assert bad.exit_code == 2 and "--success-mode must be final or ever" in bad.output
