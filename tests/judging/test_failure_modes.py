"""The failure-mode taxonomy: keyword tagging of a judge's rationale, negations, and its place in the version."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlascore.judging import load_judge
from vlascore.judging.failure_modes import FailureModeError, load_taxonomy
from vlascore.paths import data_dir


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The robot did not reach the goal and collided with the table.", ["missed_goal", "collision"]),
        ("No collisions; smooth, direct and efficient.", []),
        ("The arm doesn't collide with anything and never drops the cube.", []),
        ("The gripper failed to grasp the cube, oscillating next to it.", ["missed_grasp", "jerky_motion"]),
        ("It moved slowly but finished without dropping the cube.", ["inefficient_path"]),
        ("Reasoning is missing, and the motion does not match the plan.", ["no_reasoning", "misaligned"]),
        ("It dropped the ball before the bin.", ["dropped_object"]),
        ("", []),
    ],
)
def test_rationales_are_tagged_and_negations_respected(text: str, expected: list[str]) -> None:
    assert load_taxonomy().tag(text) == expected


def test_every_grounded_flag_is_a_taxonomy_mode() -> None:
    modes = set(load_taxonomy().modes)
    grounded = {
        "missed_goal",
        "missed_grasp",
        "jerky_motion",
        "inefficient_path",
        "no_reasoning",
        "incomplete_plan",
        "misaligned",
    }
    assert grounded <= modes


def test_the_taxonomy_is_part_of_the_effective_version(tmp_path: Path) -> None:
    judges = data_dir("judges")
    copy = tmp_path / "grounded.yaml"
    copy.write_text((judges / "grounded.yaml").read_text())
    (tmp_path / "failure_modes.yaml").write_text((judges / "failure_modes" / "taxonomy.yaml").read_text())
    assert load_judge(copy).effective_version == load_judge("grounded").effective_version  # the shipped taxonomy
    with copy.open("a") as fh:
        fh.write("failure_modes: failure_modes.yaml\n")  # its own copy, next to it
    before = load_judge(copy)
    assert before.taxonomy.modes == load_judge("grounded").taxonomy.modes
    taxonomy = tmp_path / "failure_modes.yaml"
    taxonomy.write_text(taxonomy.read_text().replace("label: collision", "label: crash"))
    after = load_judge(copy)
    assert after.taxonomy.label("collision") == "crash" and after.effective_version != before.effective_version


def test_a_bad_taxonomy_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "modes.yaml"
    bad.write_text("version: '1'\nmodes:\n  x: {label: x, patterns: ['(unclosed']}\n")
    with pytest.raises(FailureModeError, match="not a valid regular expression"):
        load_taxonomy(bad)
    with pytest.raises(FailureModeError, match="cannot read"):
        load_taxonomy(tmp_path / "absent.yaml")
