"""Episodes, steps and judgements as Parquet or JSON Lines (columns: docs/export.md), plus run.json.

Every table carries `run_id`, so tables of several runs concatenate; in Parquet the per-step `privileged` poses
(role -> pose, roles differ between tasks) are a JSON text column, in JSON Lines a nested object."""

from __future__ import annotations

import json
import math
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from vlascore.export.base import Exporter, ExportError, Progress

if TYPE_CHECKING:
    from vlascore.rundata import RunData


def tables(run: RunData, episodes: list[str] | None) -> dict[str, pd.DataFrame]:
    """The run's episodes, steps and judgements tables (only `episodes` when given), each with run_id first."""
    out = {"episodes": run.episodes, "steps": run.store.steps_frame(episodes), "judgements": run.judgements}
    for name, frame in out.items():
        frame = frame.copy()
        if episodes is not None and name != "steps":
            frame = frame[frame["episode_id"].isin(episodes)]
        frame.insert(0, "run_id", run.run.run_id)
        if name == "episodes":
            for column in ("adapter", "suite", "suite_fingerprint"):
                frame.insert(1, column, getattr(run.run, column))
        out[name] = frame.reset_index(drop=True)
    return out


def _plain(value: Any) -> Any:
    """numpy and pandas scalars (and missing values) as JSON values."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


class _TableExporter(Exporter):
    suffix: ClassVar[str] = ""

    def export(self, run: RunData, out: Path, episodes: list[str] | None, progress: Progress | None) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "run.json"]
        written[0].write_text(run.run.model_dump_json(indent=2))
        frames = tables(run, episodes)
        for k, (name, frame) in enumerate(frames.items(), 1):
            path = out / f"{name}{self.suffix}"
            self.write(frame, path)
            written.append(path)
            if progress:
                progress(k, len(frames), f"{name}: {len(frame)} rows")
        return written

    @abstractmethod
    def write(self, frame: pd.DataFrame, path: Path) -> None:
        """Write one table to `path`."""


class ParquetExporter(_TableExporter):
    name = "parquet"
    extras = ("export",)
    suffix = ".parquet"

    def write(self, frame: pd.DataFrame, path: Path) -> None:
        from vlascore.extras import MissingExtraError, require

        try:
            require("pyarrow", "export", "Parquet export")
        except MissingExtraError as exc:
            raise ExportError(str(exc)) from None
        if "privileged" in frame:
            frame = frame.assign(privileged=[json.dumps(p, sort_keys=True) for p in frame["privileged"]])
        frame.to_parquet(path, index=False)


class JsonlExporter(_TableExporter):
    name = "jsonl"
    suffix = ".jsonl"

    def write(self, frame: pd.DataFrame, path: Path) -> None:
        # json, not pandas' to_json: that rounds floats to 10 significant digits; missing values become null
        with path.open("w", encoding="utf-8") as fh:
            for row in frame.to_dict(orient="records"):
                fh.write(json.dumps(row, ensure_ascii=False, default=_plain, allow_nan=False) + "\n")
