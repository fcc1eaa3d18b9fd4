"""The failure-mode taxonomy (judges/failure_modes/taxonomy.yaml): ids a judge may flag on an episode, and the
tagging of a VLM judge's free-text rationale by the taxonomy's keyword patterns (a documented heuristic)."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vlascore.paths import data_dir, load_yaml

FAILURE_MODES_FILE = "failure_modes/taxonomy.yaml"
NEGATION_WINDOW = 3
"""Words before a match that are searched for a negation (modes marked `negatable`)."""
_WORDS = re.compile(r"[a-z']+")


class FailureModeError(ValueError):
    """A taxonomy file that cannot be read or does not validate."""


class FailureMode(BaseModel):
    """One failure mode of the taxonomy."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str
    """Short name shown in reports."""
    description: str = ""
    """What it means, for the report's legend."""
    patterns: list[str] = []
    """Case-insensitive regular expressions that flag it in a VLM judge's rationale."""
    negatable: bool = False
    """Ignore a match preceded (within NEGATION_WINDOW words) by a negation."""

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"pattern {p!r} is not a valid regular expression: {exc}") from exc
        return patterns


class Taxonomy(BaseModel):
    """All failure modes, in display order."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    """Declared version of the taxonomy."""
    negations: list[str] = Field(default_factory=list)
    """Words that negate a following match (lower case)."""
    modes: dict[str, FailureMode]
    """Mode id -> definition."""
    digest: str = Field(default="", exclude=True)
    """sha256 (16 hex) of the file's text: part of every judge's effective version."""

    def label(self, mode_id: str) -> str:
        return self.modes[mode_id].label if mode_id in self.modes else mode_id

    def tag(self, text: str) -> list[str]:
        """Mode ids whose patterns match `text` (not negated), in taxonomy order."""
        found = []
        negations = set(self.negations)
        for mode_id, mode in self.modes.items():
            for pattern in _compiled(tuple(mode.patterns)):
                if any(not (mode.negatable and _negated(text, m.start(), negations)) for m in pattern.finditer(text)):
                    found.append(mode_id)
                    break
        return found


@lru_cache(maxsize=256)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


def _negated(text: str, start: int, negations: set[str]) -> bool:
    before = _WORDS.findall(text[max(0, start - 80) : start].lower())[-NEGATION_WINDOW:]
    return any(w in negations or w.endswith("n't") for w in before)


@lru_cache(maxsize=16)
def _load(path: str, text: str) -> Taxonomy:
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        raise FailureModeError(f"cannot read failure-mode taxonomy {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise FailureModeError(f"failure-mode taxonomy {path} must be a YAML mapping with `version` and `modes`")
    try:
        return Taxonomy.model_validate({**raw, "digest": hashlib.sha256(text.encode()).hexdigest()[:16]})
    except ValidationError as exc:
        raise FailureModeError(f"invalid failure-mode taxonomy {path}:\n{exc}") from exc


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """The taxonomy at `path` (default: the shipped judges/failure_modes/taxonomy.yaml), parsed once per content."""
    file = Path(path) if path else data_dir("judges") / FAILURE_MODES_FILE
    try:
        text = file.read_text()
    except OSError as exc:
        raise FailureModeError(f"cannot read failure-mode taxonomy {file}: {exc}") from exc
    return _load(str(file), text)
