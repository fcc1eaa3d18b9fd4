"""Open what `vlascore data` reads: a vlascore run directory or a LeRobot dataset, by what the folder holds."""

from __future__ import annotations

from pathlib import Path

from vlascore.data.lerobot import LeRobotSource
from vlascore.data.sources import RunSource, Source
from vlascore.data.trajectory import TrajectoryError
from vlascore.store import RUN_FILE, StoreError


def open_source(path: Path, fields: dict[str, str] | None = None) -> Source:
    """The source at `path`: a vlascore run (run.json) or a LeRobot dataset (meta/info.json)."""
    if (path / RUN_FILE).is_file():
        if fields:
            raise TrajectoryError(f"{path} is a vlascore run: --field applies to LeRobot datasets only")
        try:
            return RunSource(path)
        except StoreError as exc:
            raise TrajectoryError(str(exc)) from None
    if (path / "meta" / "info.json").is_file():
        return LeRobotSource(path, fields or {})
    raise TrajectoryError(f"{path} is neither a vlascore run (no {RUN_FILE}) nor a LeRobot dataset (no meta/info.json)")
