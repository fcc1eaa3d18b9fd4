from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlascore.cli import app
from vlascore.suites import SuiteError, load_suite, load_suite_file

TABLETOP_TASKS = {"PickCube", "PushCube", "StackCube", "PullCube", "PlaceSphere"}


def test_tabletop_suite_is_complete() -> None:
    suite = load_suite("tabletop")
    assert {t.id for t in suite.tasks} == TABLETOP_TASKS
    for task in suite.tasks:
        assert task.instruction and task.control_mode == "pd_ee_delta_pose"
        assert task.action_space.mode == "ee_delta" and task.resolution == (128, 128)
        assert task.seeds == list(range(50)) and task.max_steps == 100
    assert suite.protocol_version and len(suite.fingerprint) == 16


def test_fingerprint_tracks_the_normalised_spec(tmp_path: Path) -> None:
    base = (
        "name: s\nprotocol_version: '1'\ndescription: {desc}\n"
        "tasks:\n  - {{id: A, env_id: E-v1, instruction: go, seeds: {seeds}}}\n"
    )
    a = tmp_path / "a.yaml"
    a.write_text(base.format(desc="one", seeds="{start: 0, count: 3}"))
    b = tmp_path / "b.yaml"
    b.write_text(base.format(desc="two", seeds="[0, 1, 2]"))  # same protocol, other wording
    c = tmp_path / "c.yaml"
    c.write_text(base.format(desc="one", seeds="[0, 1, 3]"))  # a different seed
    fa, fb, fc = (load_suite_file(p).fingerprint for p in (a, b, c))
    assert fa == fb
    assert fa != fc


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("name: s\nprotocol_version: '1'\ntasks: []\n", "at least one task"),
        (
            "name: s\nprotocol_version: '1'\ntasks:\n  - {id: A, env_id: E, instruction: x, seeds: [0]}\n"
            "  - {id: A, env_id: E, instruction: y, seeds: [0]}\n",
            "duplicate task ids: A",
        ),
        ("name: s\ntasks:\n  - {id: A, env_id: E, instruction: x, seeds: [0]}\n", "protocol_version"),
        (
            "name: s\nprotocol_version: '1'\ntasks:\n  - {id: A, env_id: E, instruction: x, seeds: [0], max_step: 5}\n",
            "max_step",
        ),
        ("- just a list\n", "must be a YAML mapping"),
    ],
)
def test_invalid_suites_are_rejected_with_the_reason(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(SuiteError, match=message):
        load_suite_file(path)


def test_tasks_cli_list_and_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["tasks", "list"])
    assert listed.exit_code == 0 and "tabletop" in listed.stdout
    shown = runner.invoke(app, ["tasks", "list", "tabletop"])
    assert shown.exit_code == 0 and "PlaceSphere-v1" in shown.stdout
    good = Path(__file__).resolve().parents[1] / "tasks" / "tabletop.yaml"
    ok = runner.invoke(app, ["tasks", "validate", str(good)])
    assert ok.exit_code == 0 and load_suite("tabletop").fingerprint in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: s\nprotocol_version: '1'\ntasks: []\n")
    result = runner.invoke(app, ["tasks", "validate", str(good), str(bad)])
    assert result.exit_code == 1
    assert "at least one task" in result.stderr


def test_unknown_suite_suggests_a_name() -> None:
    with pytest.raises(SuiteError, match="Did you mean 'tabletop'"):
        load_suite("tabletp")


BUILTIN_FINGERPRINTS = {
    "libero": "fa2ec26448e8191a",
    "libero-10": "6b8571afdb202ac7",
    "libero-goal": "a9dde8437fc190df",
    "libero-object": "7914058615792f1f",
    "libero-spatial": "7b39341b2e56db0b",
    "simpler-bridge": "49d0bb98672f9672",
    "simpler-dualvla": "ba26c9c6dc004678",
    "simpler-google-va": "7acf9f66e6880c66",
    "simpler-google-vm": "99ecdf112e689f8b",
    "simpler-widowx": "cac05b50219e850b",
    "tabletop": "256a8e50a36d9adf",
    "toy": "11c8c78bb527d05e",
}
"""Every shipped suite's fingerprint: a change of protocol (any number in a suite file, a new default) must be
deliberate, with a `protocol_version` bump, because runs and boards of the old protocol stop comparing."""


def test_the_builtin_suites_keep_their_fingerprints() -> None:
    from vlascore.suites import builtin_suite_paths

    assert {name: load_suite(path).fingerprint for name, path in builtin_suite_paths().items()} == BUILTIN_FINGERPRINTS
