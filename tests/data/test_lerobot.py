"""LeRobot-format datasets against the real LeRobot package: its writer makes the dataset vlascore reads and prunes,
and its reader opens the pruned copy.

LeRobot cannot share vlascore's environment (lerobot 0.4.4 pins torch < 2.11), so the test builds its own under a
cache folder (once; later runs reuse it): lerobot-dataset 0.4.4 (LeRobot's dataset class, packaged with relaxed
dependencies) from PyPI, with this environment's CPU torch linked in rather than downloaded again, and a stand-in
for torchvision (tests/data/lerobot_side/torchvision_standin: PyPI's torchvision is a CUDA build that cannot be
imported next to a CPU torch; LeRobot's dataset code imports it but does not use it on these paths, and the stand-in
raises if it ever did). Skipped, with the reason, only when the package cannot be installed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner
from venvkit import cached_venv, run

from vlascore.cli import app
from vlascore.data.kinematic import action_labels
from vlascore.data.labels import read_labels
from vlascore.data.opening import open_source

pytestmark = pytest.mark.slow

SIDE = Path(__file__).parent / "lerobot_side"
PACKAGES = ["lerobot-dataset==0.4.4", "sympy", "networkx", "jinja2"]  # the last three: torch's own imports
FIELDS = ["-F", "pose=observation.state[0:6]", "-F", "gripper=observation.state[6]>0.5", "-F", "intention=subtask"]
ENV = {"PYTHONPATH": str(SIDE / "torchvision_standin"), "HF_HUB_OFFLINE": "1"}


def _run(python: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return run(python, *args, timeout=timeout, env=ENV)


def _link_torch(home: Path, python: Path) -> None:
    """This environment's torch, linked in: one CPU build, no second download."""
    import torch

    site = Path(torch.__file__).resolve().parent.parent
    links = home / "torch-link"
    links.mkdir(exist_ok=True)
    for entry in [site / "torch", site / "torchgen", site / "functorch", *site.glob("torch-*.dist-info")]:
        target = links / entry.name
        if entry.exists() and not target.exists():
            target.symlink_to(entry)
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(purelib, "vlascore-torch-link.pth").write_text(str(links) + "\n")


@pytest.fixture(scope="module")
def lerobot_python() -> Path:
    check = "import torch, ledataset.datasets.lerobot_dataset"
    return cached_venv("lerobot-dataset-0.4.4", PACKAGES, check, prepare=_link_torch, env=ENV)


@pytest.fixture(scope="module")
def lerobot_dataset(lerobot_python: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("lerobot")
    root, truth = folder / "dataset", folder / "truth.npz"
    done = _run(lerobot_python, str(SIDE / "write_dataset.py"), str(root), str(truth))
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(truth) as t:
        return root, {k: t[k] for k in t.files}


def test_reader_matches_what_lerobot_wrote(lerobot_dataset: tuple[Path, dict]) -> None:
    root, truth = lerobot_dataset
    fields = dict(f.split("=", 1) for f in FIELDS[1::2])
    source = open_source(root, fields)
    trajectories = list(source.trajectories())
    assert [t.episode_id for t in trajectories] == ["episode_000000", "episode_000001", "episode_000002"]
    for i, traj in enumerate(trajectories):
        state = truth[f"state_{i}"]
        assert np.allclose(traj.position, state[:, :3]) and (traj.gripper_closed == (state[:, 6] > 0.5)).all()
        assert traj.task == f"pick task {i % 2}" and traj.reasoning[3] == f"episode {i} step 3: reach <b>"
        assert traj.intention[9] == "descend"
        frames, steps = traj.frames()
        assert frames.shape == truth[f"frames_{i}"].shape and steps.tolist() == list(range(len(traj)))
        assert np.abs(frames.astype(int) - truth[f"frames_{i}"]).mean() < 4  # AV1 is lossy
        # The written path turns at step 8 (x then y, at a constant yaw rate) and flips the gripper at 12 and 20.
        assert np.flatnonzero(action_labels(traj)).tolist() == [8, 12, 20]


def test_pruned_copy_opens_in_lerobot(lerobot_python: Path, lerobot_dataset: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = lerobot_dataset
    out = tmp_path / "pruned"
    result = CliRunner().invoke(app, ["data", "prune", str(root), "-o", str(out), *FIELDS, "--no-progress"])
    assert result.exit_code == 0, result.output
    labels = read_labels(out / "pruning" / "labels.parquet")
    done = _run(lerobot_python, str(SIDE / "read_dataset.py"), str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["episodes"] == 3 and seen["frames"] == len(labels) == 84
    kept = {(int(e[-6:]), int(s)) for e, s in labels[labels["kept"]][["episode_id", "step"]].itertuples(index=False)}
    assert kept and all(
        (text != "") == ((e, k) in kept) and (text == "" or text.startswith(f"episode {e} step {k}:"))
        for e, k, text in seen["rows"]
    )
    assert "episode_000001" in (out / "pruning" / "view.html").read_text()


def test_fields_are_required_and_checked(lerobot_dataset: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = lerobot_dataset
    cli = CliRunner()
    result = cli.invoke(app, ["data", "prune", str(root), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "needs --field pose=" in result.output and "observation.state" in result.output
    result = cli.invoke(
        app,
        [
            "data",
            "prune",
            str(root),
            "-o",
            str(tmp_path / "o"),
            "-F",
            "pose=observation.state[0:5]",
            "-F",
            "gripper=observation.state[6]>0.5",
        ],
    )
    assert result.exit_code == 2 and "--field rotation=" in result.output
    result = cli.invoke(
        app, ["data", "prune", str(root), "-o", str(tmp_path / "o"), *FIELDS, "-F", "reasoning=thoughts"]
    )
    assert result.exit_code == 2 and "no text column 'thoughts'" in result.output and "subtask" in result.output


def test_an_exported_run_opens_in_lerobot_and_reads_back(lerobot_python: Path, tmp_path: Path) -> None:
    """`vlascore export --to lerobot`: LeRobot's own reader opens the dataset with every step, and vlascore's reader
    gets the recorded poses, gripper, words and frames back."""
    from vlascore.store import load_run

    cli = CliRunner()
    run = tmp_path / "run"
    for args in (
        ["run", "-m", "toy-expert", "-s", "toy", "-n", "3", "-o", str(run), "--no-progress"],
        ["export", str(run), "--to", "lerobot", "-o", str(tmp_path / "out"), "--no-progress"],
    ):
        result = cli.invoke(app, args)
        assert result.exit_code == 0, result.output
    root = tmp_path / "out" / "lerobot"
    recorded = load_run(run)
    done = _run(lerobot_python, str(SIDE / "read_dataset.py"), str(root), "intention")
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["episodes"] == 3 and seen["frames"] == len(recorded.steps)
    assert [text for _, _, text in seen["rows"]] == list(recorded.steps["intention"])
    fields = {"pose": "observation.state[0:7]", "gripper": "observation.state[7]<0.5", "intention": "intention"}
    for traj, (eid, steps) in zip(
        open_source(root, fields).trajectories(), recorded.steps.groupby("episode_id", sort=False), strict=True
    ):
        assert traj.task == recorded.episodes.set_index("episode_id").loc[eid, "instruction"]
        assert np.allclose(traj.position, np.array(steps["ee_pose"].tolist())[:, :3], atol=1e-6)
        assert (traj.gripper_closed == (steps["gripper"].to_numpy() < 0.5)).all()
        assert list(traj.intention) == list(steps["intention"])
        frames, _ = traj.frames()
        stored, _ = recorded.frames(eid)
        assert frames.shape == stored[: len(steps)].shape
        assert np.abs(frames.astype(int) - stored[: len(steps)]).mean() < 8  # H.264 is lossy
