"""The one reader of versioned files: parse, check `schema_version`, migrate, validate.

Every record vlascore persists carries a `schema_version` (run.json, the trace tables' rows, results.json,
judgement files, submissions, manifests, board settings and records, knowledge-base entries and index, QA
results). Readers go through `read_record` / `parse_record` (or `check_version` for a table of rows), so the
rule is decided once: a version newer than this vlascore knows is refused before validation (its fields may
have changed meaning), naming the file, the version found and the vlascore that wrote it; an older version is
migrated step by step where a migration is registered, and otherwise validated as it is (fields were only
ever added with defaults).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from vlascore._version import __version__

M = TypeVar("M", bound=BaseModel)
Migration = Callable[[dict[str, Any]], dict[str, Any]]

MAX_RECORD_BYTES = 1 << 30
"""Largest file `read_record` reads: a record is never near this; anything larger is refused unread."""

_MIGRATIONS: dict[tuple[type[BaseModel], int], Migration] = {}


class RecordError(RuntimeError):
    """A versioned file that cannot be read: missing, not JSON, newer than this vlascore, or invalid."""


class NewerRecordError(RecordError):
    """A record newer than this vlascore reads (raised when no other `error` class is asked for)."""


def migration(model: type[BaseModel], from_version: int) -> Callable[[Migration], Migration]:
    """Register `fn(raw) -> raw` that turns `model`'s raw data at `from_version` into `from_version + 1`."""

    def register(fn: Migration) -> Migration:
        _MIGRATIONS[(model, from_version)] = fn
        return fn

    return register


def known_version(model: type[BaseModel]) -> int:
    """The schema version this vlascore writes for `model` (its `schema_version` field's default)."""
    default = model.model_fields["schema_version"].default
    assert isinstance(default, int), f"{model.__name__}.schema_version needs an integer default"
    return default


def first_error(exc: ValidationError) -> str:
    """`field.path: message` of a validation error's first problem."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "file"
    return f"{where}: {first['msg']}"


def check_version(
    version: Any,
    model: type[BaseModel],
    what: str,
    *,
    written_by: Any = None,
    error: type[Exception] = RecordError,
    fix: str = "",
) -> int:
    """`version` as an int, or `error` when it is not an integer or newer than this vlascore reads."""
    if not isinstance(version, int) or isinstance(version, bool):
        fix = fix or "it was not written by vlascore"
        raise error(f"{what} has schema_version {repr(version)[:40]}, not an integer: {fix}")
    known = known_version(model)
    if version > known:
        writer = written_by if isinstance(written_by, str) and written_by and written_by != __version__ else None
        needed = f" to {writer[:40]} (which wrote it) or newer" if writer else ""
        raise (NewerRecordError if error is RecordError else error)(
            f"{what} has schema version {version}, newer than this vlascore reads ({known}; vlascore "
            f"{__version__}): upgrade vlascore{needed} (pip install -U vlascore)"
        )
    return version


def parse_record(raw: Any, model: type[M], what: str, *, error: type[Exception] = RecordError, fix: str = "") -> M:
    """Parsed JSON/YAML data as `model`: version checked, migrated where a migration exists, then validated.
    `fix` ends the message of an invalid record (a newer version's message says to upgrade instead)."""
    if not isinstance(raw, dict):
        raise error(
            f"{what} must hold a mapping (a JSON object), not {type(raw).__name__}" + (f": {fix}" if fix else "")
        )
    version = check_version(
        raw.get("schema_version", 1), model, what, written_by=raw.get("vlascore_version"), error=error, fix=fix
    )
    while (step := _MIGRATIONS.get((model, version))) is not None:
        raw = {**step(dict(raw)), "schema_version": version + 1}
        version += 1
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise error(f"{what} does not validate ({first_error(exc)})" + (f": {fix}" if fix else "")) from None


def load_json(data: bytes | str, what: str, *, error: type[Exception] = RecordError, fix: str = "") -> Any:
    """JSON text parsed, or `error` naming `what` (nesting too deep for the parser counts as invalid)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise error(f"{what} is not valid JSON ({str(exc)[:200]})" + (f": {fix}" if fix else "")) from None


def read_record(
    path: str | Path,
    model: type[M],
    what: str | None = None,
    *,
    error: type[Exception] = RecordError,
    fix: str = "",
    max_bytes: int = MAX_RECORD_BYTES,
) -> M:
    """The JSON file at `path` as `model` (see `parse_record`); `what` names it in errors [default: the path]."""
    path = Path(path)
    what = what or str(path)
    try:
        size = path.stat().st_size
        data = path.read_bytes() if size <= max_bytes else b""
    except OSError as exc:
        raise error(f"cannot read {what} ({exc.strerror or exc})" + (f": {fix}" if fix else "")) from None
    if size > max_bytes:
        raise error(f"{what} is {size} bytes, more than the {max_bytes} a {model.__name__} may have")
    return parse_record(load_json(data, what, error=error, fix=fix), model, what, error=error, fix=fix)
