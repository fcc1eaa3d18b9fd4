"""The LIBERO suites state the protocol published LIBERO results use (OpenVLA's and openpi's LIBERO evaluation
scripts): 10 tasks x initial states 0-49 per suite, the per-suite step limits, 10 settle steps, 256x256 agentview
images turned by 180 degrees, LIBERO's 7-dim OSC_POSE actions, LIBERO's task language and task order; columns per
suite and their average. No simulator needed (the files are checked against hf-libero's when it is installed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlascore.backends.libero_setup import package_root
from vlascore.cli import app
from vlascore.suites import ActionSpace, load_suite

# suite -> (LIBERO's folder, step limit, the longest training demonstration the scripts cite)
PROTOCOL = {
    "libero-spatial": ("libero_spatial", 220, 193),
    "libero-object": ("libero_object", 280, 254),
    "libero-goal": ("libero_goal", 300, 270),
    "libero-10": ("libero_10", 520, 505),
}
# LIBERO's task order (hf-libero's libero_suite_task_map, task order 0), as both scripts iterate it
ORDER = {
    "libero_object": [
        "alphabet_soup",
        "cream_cheese",
        "salad_dressing",
        "bbq_sauce",
        "ketchup",
        "tomato_sauce",
        "butter",
        "milk",
        "chocolate_pudding",
        "orange_juice",
    ],
}
LIBERO_ACTIONS = ActionSpace(mode="ee_delta", rotation="axis_angle", dim=7, normalized=True, gripper_open=-1)


def language(bddl_stem: str) -> str:
    """LIBERO's task language from a BDDL file name (its benchmark's rule: drop a SCENE prefix, underscores to
    spaces), restated here so the suites are checked against it independently."""
    if bddl_stem[0].isupper():
        bddl_stem = bddl_stem[bddl_stem.find("SCENE") + (8 if "SCENE10" in bddl_stem else 7) :]
    return bddl_stem.replace("_", " ")


@pytest.mark.parametrize("name", sorted(PROTOCOL))
def test_each_suite_states_the_published_protocol(name: str) -> None:
    folder, steps, _longest = PROTOCOL[name]
    suite = load_suite(name)
    assert suite.backend == "libero" and len(suite.tasks) == 10
    for task in suite.tasks:
        assert task.env_id.startswith(f"{folder}/")
        assert task.seeds == list(range(50)) and task.max_steps == steps and task.success_mode == "ever"
        assert task.camera == "agentview" and task.resolution == (256, 256)
        assert task.control_mode == "OSC_POSE" and task.control_freq == 20 and task.sim_freq == 500
        assert task.action_space == LIBERO_ACTIONS
        assert task.env_kwargs == {
            "settle_steps": 10,
            "rotate_images": True,
            "wrist_camera": "robot0_eye_in_hand",
            "placement_seed": 0,
        }
        assert task.instruction == language(task.env_id.split("/", 1)[1])
        assert len(task.objects) >= 2, "the grounded judge needs an object and a target"
    (column,) = suite.columns
    assert column.key == f"libero/{column.id}" and column.tasks == [t.id for t in suite.tasks]
    header = Path(__file__).resolve().parents[1].joinpath("tasks", f"{name}.yaml").read_text()
    assert "run_libero_eval.py" in header and "examples/libero/main.py" in header and f"{_longest} steps" in header


def test_libero_object_keeps_liberos_task_order() -> None:
    assert [t.id for t in load_suite("libero-object").tasks] == ORDER["libero_object"]


def test_the_combined_suite_averages_the_four_suite_columns() -> None:
    combined = load_suite("libero")
    assert len(combined.tasks) == 40
    for name in PROTOCOL:  # the same protocol, task by task
        for task in load_suite(name).tasks:
            assert combined.task(task.id) == task
    assert [c.key for c in combined.result_columns] == ["libero/spatial", "libero/object", "libero/goal", "libero/long"]
    (average,) = combined.averages
    assert average.columns == ["spatial", "object", "goal", "long"]


@pytest.mark.skipif(package_root() is None, reason="hf-libero is not installed (pip install 'vlascore[libero]')")
def test_every_task_names_liberos_own_files_in_liberos_order() -> None:
    root = package_root()
    assert root is not None
    for name, (folder, _steps, _longest) in PROTOCOL.items():
        stems = []
        for task in load_suite(name).tasks:
            assert (root / "bddl_files" / f"{task.env_id}.bddl").is_file()
            assert (root / "init_files" / f"{task.env_id}.pruned_init").is_file()
            stems.append(task.env_id.split("/", 1)[1])
        text = (root / "benchmark" / "libero_suite_task_map.py").read_text()
        block = text[text.index(f'"{folder}": [') :]
        listed = [line.strip().strip('",') for line in block.splitlines()[1:11]]
        assert stems == listed, name


def test_tasks_list_shows_the_libero_columns_and_average() -> None:
    result = CliRunner().invoke(app, ["tasks", "list", "libero"])
    assert result.exit_code == 0
    assert "average libero_average: mean of spatial, object, goal, long" in result.stdout
    assert "OSC_POSE" in result.stdout and "256x256" in result.stdout
