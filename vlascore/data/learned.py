"""The learned scene trigger: a small temporal convolution over shrunk frames, trained on your boundary labels.

The paper retrains DDM-Net on a few hand-labelled trajectories. This is the same hook at toy scale: label the steps
where reasoning should fire in a few episodes (a CSV of episode_id,step rows, or the labels.parquet of an earlier
prune, whose `scene` column is used), train with `vlascore data train-trigger`, and prune with
`--trigger learned -T model=trigger.pt`. Any torch model can replace the network: subclass `SceneTrigger`.

The model file holds a `TriggerModelRecord` (versioned, read through vlascore.versioned) and the weights, and is
loaded with `torch.load(weights_only=True)`: it cannot run code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vlascore._version import __version__
from vlascore.data.frames import motion, small_grey
from vlascore.data.sources import EpisodeFailure, Source
from vlascore.data.trajectory import Trajectory, TrajectoryError
from vlascore.data.triggers import SceneTrigger, TriggerError, band, option_number
from vlascore.extras import require
from vlascore.records import utcnow
from vlascore.versioned import RecordError, parse_record


class TriggerModelRecord(BaseModel):
    """What a trained trigger model is and how it was trained."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = 1
    """Version of this record's format."""
    vlascore_version: str = __version__
    """vlascore that trained it."""
    created_at: str = Field(default_factory=utcnow)
    """UTC time of training."""
    side: int = 16
    """Frames are shrunk to at most this many pixels a side (grey) before the network sees them."""
    feature_dim: int
    """Inputs per frame: the shrunk frame and its difference from the previous one, flattened."""
    hidden: int = 32
    """Channels of the hidden temporal convolution."""
    kernel: int = 5
    """Temporal kernel size (frames) of both convolutions."""
    epochs: int
    """Full passes over the labelled episodes."""
    episodes: list[str]
    """Labelled episodes it was trained on."""
    positives: int
    """Frames labelled as boundaries."""
    frames: int
    """Frames trained on."""
    final_loss: float
    """Weighted binary cross-entropy after the last epoch."""
    train_f1: float
    """F1 of its own thresholded (0.5) output on the training frames."""


def features(frames: np.ndarray, side: int) -> np.ndarray:
    """(M, 2 * h * w) float32 per frame: the shrunk grey frame and its motion image."""
    grey = small_grey(frames, side)
    return np.concatenate([grey.reshape(len(grey), -1), motion(grey).reshape(len(grey), -1)], axis=1)


def build_network(feature_dim: int, hidden: int, kernel: int) -> Any:
    torch = require("torch", purpose="the learned scene trigger")
    nn = torch.nn
    return nn.Sequential(
        nn.Conv1d(feature_dim, hidden, kernel, padding=kernel // 2),
        nn.ReLU(),
        nn.Conv1d(hidden, 1, kernel, padding=kernel // 2),
    )


def _logits(net: Any, feats: np.ndarray) -> Any:
    torch = require("torch")
    x = torch.from_numpy(feats.T.copy()).unsqueeze(0)  # (1, features, frames)
    return net(x)[0, 0]


def read_boundary_labels(path: Path) -> dict[str, set[int]]:
    """episode_id -> its boundary steps, from a CSV (episode_id, step[, scene]) or a prune's labels.parquet."""
    import pandas as pd

    try:
        if path.suffix == ".parquet":
            from vlascore.data.labels import read_labels

            frame = read_labels(path)
        else:
            frame = pd.read_csv(path, dtype={"episode_id": str}, nrows=5_000_000)
    except (OSError, ValueError, RecordError) as exc:
        raise TriggerError(f"cannot read labels {path}: {exc}") from None
    if not {"episode_id", "step"} <= set(frame.columns):
        raise TriggerError(f"labels {path} need the columns episode_id and step (and optionally scene, 0 or 1)")
    out: dict[str, set[int]] = {str(e): set() for e in frame["episode_id"].unique()}
    on = frame["scene"].astype(bool) if "scene" in frame.columns else pd.Series(True, index=frame.index)
    for eid, step in zip(frame["episode_id"][on], frame["step"][on], strict=True):
        if pd.notna(step):
            out[str(eid)].add(int(step))
    return out


def _frame_targets(traj: Trajectory, frame_steps: np.ndarray, positive: set[int]) -> np.ndarray:
    rows = np.zeros(len(traj), dtype=bool)
    rows[[i for i, s in enumerate(traj.steps.tolist()) if s in positive]] = True
    idx = np.clip(np.searchsorted(traj.steps, frame_steps), 0, len(traj) - 1)
    return rows[idx].astype(np.float32)


def train_trigger(
    source: Source,
    labels: dict[str, set[int]],
    out: Path,
    *,
    epochs: int = 200,
    side: int = 16,
    hidden: int = 32,
    kernel: int = 5,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> TriggerModelRecord:
    """Train on the labelled episodes of `source` and save the model to `out`."""
    torch = require("torch", purpose="training the learned scene trigger")
    if "frames" not in source.holds():
        raise TriggerError(f"{source.path} holds no frames: the learned trigger looks at frames")
    data: list[tuple[np.ndarray, np.ndarray]] = []
    trained: list[str] = []
    for traj in source.trajectories():
        if isinstance(traj, EpisodeFailure) or traj.episode_id not in labels or traj.frames is None:
            continue
        frames, frame_steps = traj.frames()
        data.append((features(frames, side), _frame_targets(traj, np.asarray(frame_steps), labels[traj.episode_id])))
        trained.append(traj.episode_id)
    if not data:
        raise TriggerError(f"none of the {len(labels)} labelled episodes is in {source.path} with frames")
    positives = int(sum(t.sum() for _, t in data))
    total = int(sum(len(t) for _, t in data))
    if positives == 0 or positives == total:
        raise TriggerError("the labels mark no boundary (or every frame): label a few boundary steps per episode")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a network this small trains fastest on one thread; restored below
    try:
        return _fit(torch, data, trained, out, epochs, side, hidden, kernel, seed, positives, total, progress)
    finally:
        torch.set_num_threads(threads)


def _fit(
    torch: Any,
    data: list[tuple[np.ndarray, np.ndarray]],
    trained: list[str],
    out: Path,
    epochs: int,
    side: int,
    hidden: int,
    kernel: int,
    seed: int,
    positives: int,
    total: int,
    progress: Callable[[int, int, float], None] | None,
) -> TriggerModelRecord:
    torch.manual_seed(seed)
    net = build_network(data[0][0].shape[1], hidden, kernel)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor((total - positives) / positives))
    order = np.random.default_rng(seed)
    loss_value = float("nan")
    for epoch in range(epochs):
        running = 0.0
        for i in order.permutation(len(data)).tolist():
            feats, target = data[i]
            loss = loss_fn(_logits(net, feats), torch.from_numpy(target))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            running += float(loss.detach()) * len(target)
        loss_value = running / total
        if progress:
            progress(epoch + 1, epochs, loss_value)
    with torch.no_grad():
        predicted = np.concatenate([(_logits(net, f) > 0).numpy() for f, _ in data])
    truth = np.concatenate([t > 0.5 for _, t in data])
    tp = int((predicted & truth).sum())
    f1 = 2 * tp / max(int(predicted.sum()) + int(truth.sum()), 1)
    record = TriggerModelRecord(
        side=side,
        feature_dim=int(data[0][0].shape[1]),
        hidden=hidden,
        kernel=kernel,
        epochs=epochs,
        episodes=sorted(trained),
        positives=positives,
        frames=total,
        final_loss=loss_value,
        train_f1=f1,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    # Protocol 2: what torch.load's weights-only reader expects (it warns on newer ones).
    torch.save({"record": record.model_dump(), "state_dict": net.state_dict()}, out, pickle_protocol=2)
    return record


def load_trigger_model(path: Path) -> tuple[TriggerModelRecord, Any]:
    """The record and the network of a model file (weights only: the file cannot run code)."""
    torch = require("torch", purpose="the learned scene trigger")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a hostile or foreign file fails in many ways (unpickling, zip, torch errors)
        raise TriggerError(f"cannot load trigger model {path}: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(raw, dict) or "record" not in raw or "state_dict" not in raw:
        raise TriggerError(f"{path} is not a trigger model written by `vlascore data train-trigger`")
    record = parse_record(raw["record"], TriggerModelRecord, f"trigger model {path}", error=TriggerError)
    net = build_network(record.feature_dim, record.hidden, record.kernel)
    try:
        net.load_state_dict(raw["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise TriggerError(f"trigger model {path} has weights of another shape: {str(exc)[:200]}") from None
    net.eval()
    return record, net


class LearnedTrigger(SceneTrigger):
    name = "learned"
    summary = "a small torch model trained on your labels (vlascore data train-trigger)"

    def __init__(self, model: str = "", threshold: float = 0.5, radius: int = 0) -> None:
        super().__init__(model=model, threshold=threshold, radius=radius)
        if not model:
            raise TriggerError(
                "the learned trigger needs its model file: -T model=trigger.pt (train one with "
                "`vlascore data train-trigger`)"
            )
        self.threshold = option_number("threshold", threshold, float, 0.0, 1.0)
        self.radius = option_number("radius", radius, int, 0, 50)
        self.record, self.net = load_trigger_model(Path(model))

    def needs(self) -> frozenset[str]:
        return frozenset({"frames"})

    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        torch = require("torch")
        with torch.no_grad():
            return torch.sigmoid(_logits(self.net, features(frames, self.record.side))).numpy()

    def scene_labels(self, traj: Trajectory) -> np.ndarray:
        if traj.frames is None:
            raise TrajectoryError(f"episode {traj.episode_id!r} has no frames: the learned trigger needs them")
        frames, frame_steps = traj.frames()
        hits = np.flatnonzero(self.probabilities(frames) > self.threshold)
        rows = np.clip(np.searchsorted(traj.steps, np.asarray(frame_steps)[hits]), 0, len(traj) - 1)
        return band(rows, len(traj), self.radius)
