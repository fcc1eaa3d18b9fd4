"""Where the package data (tasks/, judges/, leaderboard/) lives: the source tree or the installed wheel."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Directory of a data folder; a source checkout wins over the copy inside an installed wheel."""
    for candidate in (_PKG.parent / name, _PKG / "_data" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"data folder {name!r} not found next to the vlascore package (reinstall vlascore)")
