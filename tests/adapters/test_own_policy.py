"""Your own policy without packaging: `-m path/to/file.py:Class` and `-m module:Class` wherever a model name is
accepted, checked against the Adapter contract, from a file in an empty folder, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vlascore.adapters import ADAPTERS, make_adapter
from vlascore.registry import PluginTypeError, UnknownPluginError

POLICY = '''import numpy as np
from vlascore.adapters import Adapter, PolicyStep


class Zero(Adapter):
    """Keeps the arm still and the gripper open."""

    def act(self, obs, instruction):
        return PolicyStep(np.array([0, 0, 0, 0, 0, 0, 1.0]))
'''


def vlascore(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("vlascore")  # the console script a user runs
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "mypolicy.py").write_text(POLICY)
    assert len(POLICY.splitlines()) <= 10  # the "10-line policy"
    return tmp_path


def test_a_file_policy_runs_checks_and_scores_from_an_empty_folder(folder: Path) -> None:
    ran = vlascore(folder, "run", "-m", "./mypolicy.py:Zero", "-s", "toy", "-n", "2", "--no-progress")
    assert ran.returncode == 0, ran.stderr
    run = folder / "runs" / "mypolicy-Zero-toy"
    record = json.loads((run / "run.json").read_text())
    assert record["adapter"] == "./mypolicy.py:Zero" and record["seeds"] == {"ToyPick": [0, 1]}
    assert "results written to" in ran.stdout
    as_module = vlascore(folder, "run", "-m", "mypolicy:Zero", "-s", "toy", "-n", "1", "-o", "runs/m", "--no-progress")
    assert as_module.returncode == 0, as_module.stderr
    checked = vlascore(folder, "adapter", "check", "./mypolicy.py:Zero", "-s", "toy")
    assert checked.returncode == 0 and "passes the adapter checks" in checked.stdout, checked.stdout + checked.stderr


def test_references_that_are_not_adapters_are_refused_in_one_line(folder: Path) -> None:
    (folder / "other.py").write_text(
        "from vlascore.adapters import Adapter\nclass NoAct(Adapter):\n    pass\nclass Plain:\n    pass\n"
    )
    cases = {
        "./other.py:NoAct": "does not implement act",
        "./other.py:Plain": "is not a subclass of vlascore.adapters.base.Adapter",
        "./other.py:Nope": "has no 'Nope'",
        "./missing.py:Zero": "no file",
        "mypolicy:Zer": "Did you mean 'Zero'",
        "nosuchmodule:Zero": "cannot import 'nosuchmodule'",
    }
    for model, problem in cases.items():
        out = vlascore(folder, "run", "-m", model, "-s", "toy", "-n", "1", "-o", "runs/x", "--no-progress")
        assert out.returncode == 2, (model, out.stderr)
        assert problem in out.stderr and "Traceback" not in out.stderr, (model, out.stderr)
        assert not (folder / "runs" / "x").exists()


def test_make_adapter_resolves_references_in_process(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder)
    adapter = make_adapter(f"{folder}/mypolicy.py:Zero")
    assert type(adapter).__name__ == "Zero" and type(adapter) is ADAPTERS.get(f"{folder}/mypolicy.py:Zero")
    with pytest.raises(UnknownPluginError, match="unknown adapter 'zeroo'.*file.py:ClassName"):
        make_adapter("zeroo")
    with pytest.raises(PluginTypeError):
        make_adapter("builtins:dict")


def test_the_same_file_policy_through_the_python_api(folder: Path) -> None:
    script = (
        "import vlascore\n"
        "from mypolicy import Zero\n"
        "run = vlascore.evaluate(Zero(), suite='toy', episodes=2)\n"
        "print(run.path, len(run.episodes), run.results.suite_mean)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    path, count, mean = done.stdout.split()
    assert (path, count, mean) == ("runs/Zero-toy", "2", "0.0")
    assert json.loads((folder / "runs" / "Zero-toy" / "run.json").read_text())["adapter"] == "Zero"
