"""What `vlascore data prune` writes next to the pruned copy: per-step labels and the pruning record.

pruning/labels.parquet   one StepLabel row per step (episode_id, task, step, scene, action, kept, has_reasoning)
pruning/pruning.json     PruneRecord: source, trigger and options, ablation, statistics per task, failed episodes
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vlascore._version import __version__
from vlascore.extras import require
from vlascore.records import utcnow
from vlascore.versioned import RecordError, check_version, read_record

PRUNING_DIR = "pruning"
LABELS_FILE = "labels.parquet"
RECORD_FILE = "pruning.json"

Ablation = Literal["dual", "no-action", "no-scene", "random"]
ABLATIONS: dict[str, str] = {
    "dual": "keep reasoning where the scene and the action layers both fire (the method)",
    "no-action": "without the action layer: keep reasoning where the scene layer fires",
    "no-scene": "without the scene layer: keep reasoning where the action layer fires",
    "random": "random proportional dropout (ECoT-Lite style): keep as many steps per episode as the dual rule "
    "would overall, chosen at random",
}


LABEL_SCHEMA_VERSION = 1


class StepLabel(BaseModel):
    """One step's labels (a row of labels.parquet; written as columns, described here)."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = LABEL_SCHEMA_VERSION
    """Version of this record's format."""
    episode_id: str
    """Episode of the step."""
    task: str
    """Task of the episode."""
    step: int
    """Step index in the episode."""
    scene: bool
    """Scene layer: the trigger marked this step."""
    action: bool
    """Action layer: pose acceleration above the trajectory's mean, or a gripper flip."""
    kept: bool
    """The step keeps its reasoning text in the pruned copy (always False where it had none)."""
    has_reasoning: bool
    """The step had reasoning text in the source."""


class TaskStats(BaseModel):
    """Counts of one task (or of all, task "all")."""

    model_config = ConfigDict(extra="forbid")
    task: str
    """Task id, or "all"."""
    episodes: int
    """Episodes labelled."""
    steps: int
    """Steps labelled."""
    reasoning_steps: int
    """Steps that had reasoning text."""
    scene_steps: int
    """Steps the scene layer marked."""
    action_steps: int
    """Steps the action layer marked."""
    kept_steps: int
    """Steps whose reasoning was kept."""

    @property
    def kept_fraction(self) -> float | None:
        """Kept reasoning over reasoning present (None with no reasoning)."""
        return self.kept_steps / self.reasoning_steps if self.reasoning_steps else None


class FailedEpisode(BaseModel):
    """An episode left out of the pruned copy, and why."""

    model_config = ConfigDict(extra="forbid")
    episode_id: str
    """Episode id."""
    task: str
    """Its task."""
    reason: str
    """What went wrong reading or labelling it."""


class PruneRecord(BaseModel):
    """How a pruned copy was made and what it holds."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = 1
    """Version of this record's format."""
    vlascore_version: str = __version__
    """vlascore that wrote it."""
    created_at: str = Field(default_factory=utcnow)
    """UTC time of writing (ISO 8601)."""
    source: dict[str, Any]
    """The source: kind (vlascore-run or lerobot), path, and what identifies it."""
    trigger: dict[str, Any]
    """Scene trigger name and options."""
    ablation: Ablation
    """Which rule chose the kept steps (see docs/dualvla_data.md)."""
    keep_fraction: float | None = None
    """`random` ablation: the fraction of reasoning steps kept per episode."""
    seed: int = 0
    """`random` ablation: the seed of the draw."""
    stats: list[TaskStats]
    """Counts per task, then "all"."""
    failed: list[FailedEpisode] = []
    """Episodes left out of the pruned copy, with the reason."""


def write_labels(path: Path, labels: list[dict[str, Any]]) -> None:
    """StepLabel rows to parquet (column arrays, not one model per row: a 1,000-episode run has ~10^5 rows)."""
    pd = require("pandas")
    require("pyarrow", "data", purpose="writing the labels as parquet")
    columns: dict[str, list[Any]] = {name: [] for name in StepLabel.model_fields}
    for block in labels:
        n = len(block["step"])
        columns["schema_version"].extend([LABEL_SCHEMA_VERSION] * n)
        columns["episode_id"].extend([block["episode_id"]] * n)
        columns["task"].extend([block["task"]] * n)
        for name in ("step", "scene", "action", "kept", "has_reasoning"):
            columns[name].extend(np.asarray(block[name]).tolist())
    out = pd.DataFrame(columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(path, index=False)


def read_labels(path: Path) -> Any:
    """labels.parquet as a DataFrame, its schema version checked."""
    pd = require("pandas")
    require("pyarrow", "data", purpose="reading parquet labels")
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise RecordError(f"cannot read labels {path}: {exc}") from None
    missing = sorted(set(StepLabel.model_fields) - set(frame.columns))
    if missing:
        raise RecordError(f"labels {path} lack the columns {', '.join(missing)}: not written by vlascore data prune")
    if len(frame):
        check_version(int(frame["schema_version"].max()), StepLabel, f"labels {path}")
    return frame


def read_prune_record(folder: Path) -> PruneRecord:
    return read_record(folder / PRUNING_DIR / RECORD_FILE, PruneRecord)
