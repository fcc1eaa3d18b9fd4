"""Where the package data (tasks/, judges/, leaderboard/) lives: the installed wheel or the source tree; and
how its YAML is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML was built with it: several times faster


def load_yaml(text: str) -> Any:
    """Parse YAML safely (no arbitrary objects); raises yaml.YAMLError."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader


def read_yaml_mapping(path: Path, what: str, keys: str, error: type[Exception]) -> dict[str, Any]:
    """A YAML file that must hold a mapping (a suite, a judge...); `error` names the problem and the file."""
    try:
        raw = load_yaml(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"cannot read {what} {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise error(f"{what} {path} must be a YAML mapping with {keys}")
    return raw


_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The wheel's copy (vlascore/_data/NAME) or, in a source checkout, the top-level NAME folder."""
    candidates = [_PKG / "_data" / name]
    if (_PKG.parent / "pyproject.toml").is_file():  # a checkout, not an unrelated folder in site-packages
        candidates.append(_PKG.parent / name)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"data folder {name!r} not found next to the vlascore package (reinstall vlascore)")
