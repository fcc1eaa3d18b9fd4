"""`vlascore export` and `load_run(...).judgements`: what is written reads back with the tools people use (pandas
for Parquet and JSON Lines, PyAV for the videos, MLflow's client for the tracked run) and equals the records."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import vlascore
from vlascore.cli import app
from vlascore.rundata import JUDGEMENT_COLUMNS

cli = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    for args in (
        ["run", "-m", "toy-expert", "-s", "toy", "-n", "3", "-o", str(out), "--no-progress"],
        ["judge", str(out), "--no-progress"],
    ):
        result = cli.invoke(app, args)
        assert result.exit_code == 0, result.output
    return out


def export(run: Path, out: Path, *args: str) -> None:
    result = cli.invoke(app, ["export", str(run), "-o", str(out), "--no-progress", *args])
    assert result.exit_code == 0, result.output


def test_load_run_has_the_judgements_as_a_table(run: Path) -> None:
    data = vlascore.load_run(run)
    table = data.judgements
    assert list(table.columns) == JUDGEMENT_COLUMNS and len(table) == len(data.episodes) == 3
    stored = json.loads((run / "judgements" / "grounded.json").read_text())["judgements"]
    for row, verdict in zip(table.itertuples(), stored, strict=True):
        assert row.episode_id == verdict["episode_id"] and row.status == "ok"
        assert [row.reasoning, row.action, row.intention, row.alignment] == [
            verdict["scores"][k] for k in ("Reasoning", "Action", "Intention", "Alignment")
        ]
        # Eq. 8 per trajectory: ((R + A*I)/2) * RA * B, every dimension / 10, x 100
        r, a, i, ra = (verdict["scores"][k] / 10 for k in ("Reasoning", "Action", "Intention", "Alignment"))
        assert row.vla_score == pytest.approx(100 * (r + a * i) / 2 * ra * float(row.success))
    assert data.results.vla[0].vla_score.value == pytest.approx(table["vla_score"].mean())


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_tables_read_back_with_pandas(run: Path, tmp_path: Path, fmt: str) -> None:
    export(run, tmp_path, "--to", fmt)
    read = pd.read_parquet if fmt == "parquet" else (lambda p: pd.read_json(p, lines=True, precise_float=True))
    data = vlascore.load_run(run)
    episodes, steps, judgements = (read(tmp_path / fmt / f"{n}.{fmt}") for n in ("episodes", "steps", "judgements"))
    assert list(episodes["episode_id"]) == list(data.episodes["episode_id"])
    assert set(episodes["run_id"]) == {data.run.run_id} and set(episodes["suite_fingerprint"]) == {"11c8c78bb527d05e"}
    assert len(steps) == len(data.steps) and list(steps["step"]) == list(data.steps["step"])
    assert np.allclose(np.stack(steps["action"].to_numpy()), np.stack(data.steps["action"].to_numpy()))
    assert list(steps["reasoning"]) == list(data.steps["reasoning"])
    privileged = [json.loads(p) if isinstance(p, str) else p for p in steps["privileged"]]
    assert privileged == list(data.steps["privileged"])
    assert list(judgements["vla_score"]) == pytest.approx(list(data.judgements["vla_score"]))
    assert json.loads((tmp_path / fmt / "run.json").read_text())["run_id"] == data.run.run_id


def test_videos_have_every_recorded_frame_and_their_words(run: Path, tmp_path: Path) -> None:
    export(run, tmp_path, "--to", "mp4", "--fps", "5")
    data = vlascore.load_run(run)
    for eid in data.episodes["episode_id"]:
        frames, steps = data.frames(eid)
        with av.open(str(tmp_path / "mp4" / f"{eid}.mp4")) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(decoded) == len(frames)
        assert decoded[0].shape == frames[0].shape
        assert np.abs(decoded[-1].astype(int) - frames[-1]).mean() < 12  # lossy, but the same picture
        sidecar = json.loads((tmp_path / "mp4" / f"{eid}.json").read_text())
        assert [f["step"] for f in sidecar["frames"]] == steps.tolist() and sidecar["fps"] == 5
        words = data.steps[data.steps["episode_id"] == eid].set_index("step")["intention"]
        assert [f["intention"] for f in sidecar["frames"][:-1]] == [words[s] for s in steps[:-1]]
        vtt = (tmp_path / "mp4" / f"{eid}.vtt").read_text()
        assert vtt.startswith("WEBVTT") and data.episodes.set_index("episode_id").loc[eid, "instruction"] in vtt
        assert words.iloc[0] in vtt


def test_one_episode_only_and_bad_requests(run: Path, tmp_path: Path) -> None:
    export(run, tmp_path, "--to", "mp4", "-e", "ToyPick-1")
    assert sorted(p.name for p in (tmp_path / "mp4").glob("*.mp4")) == ["ToyPick-1.mp4"]
    for args, problem in (
        (["--to", "xls"], "unknown export format 'xls'"),
        (["--to", "mp4", "-e", "Nope-1"], "no episode(s) Nope-1"),
    ):
        result = cli.invoke(app, ["export", str(run), "-o", str(tmp_path / "x"), *args])
        assert result.exit_code == 2 and problem in result.output


def test_mlflow_tracking_offline(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # a local store's artifacts go to ./mlruns

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    export(run, tmp_path, "--to", "mlflow", "--tracking-uri", uri, "--experiment", "tests")
    receipt = json.loads((tmp_path / "mlflow" / "mlflow.json").read_text())
    logged = MlflowClient(tracking_uri=uri).get_run(receipt["run_id"])
    assert (Path(receipt["artifact_uri"].removeprefix("file://")) / "run.json").is_file()
    data = vlascore.load_run(run)
    assert (
        logged.data.params["adapter"] == "toy-expert" and logged.data.params["suite_fingerprint"] == "11c8c78bb527d05e"
    )
    assert logged.data.metrics["success/suite_mean"] == pytest.approx(100 * data.results.suite_mean)
    assert logged.data.metrics["vla/grounded/vla_score"] == pytest.approx(data.results.vla[0].vla_score.value)
    bad = cli.invoke(
        app, ["export", str(run), "--to", "mlflow", "--tracking-uri", f"file:{tmp_path}/mlruns", "-o", str(tmp_path)]
    )
    assert bad.exit_code == 1 and "sqlite:///mlflow.db" in bad.output and "Traceback" not in bad.output
