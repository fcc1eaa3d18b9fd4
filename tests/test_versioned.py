"""The record reader's rules on small models: newer refused, older migrated step by step, invalid named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from vlascore.versioned import NewerRecordError, RecordError, migration, parse_record, read_record


class Thing(BaseModel):
    schema_version: int = 3
    size_mm: float
    label: str = ""


@migration(Thing, 1)
def _cm_to_mm(raw: dict) -> dict:  # type: ignore[type-arg]
    return {**raw, "size_mm": raw.pop("size_cm") * 10}


@migration(Thing, 2)
def _name_to_label(raw: dict) -> dict:  # type: ignore[type-arg]
    return {**raw, "label": raw.pop("name", "")}


def test_older_versions_are_migrated_one_step_at_a_time() -> None:
    old = parse_record({"schema_version": 1, "size_cm": 2.5, "name": "cube"}, Thing, "thing.json")
    assert old == Thing(schema_version=3, size_mm=25.0, label="cube")
    assert parse_record({"schema_version": 2, "size_mm": 4, "name": "x"}, Thing, "t").label == "x"
    assert parse_record({"size_mm": 1, "label": "y"} | {"schema_version": 3}, Thing, "t").size_mm == 1


def test_newer_versions_are_refused_before_validation_naming_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "thing.json"
    path.write_text(json.dumps({"schema_version": 4, "vlascore_version": "2.0", "whatever": []}))
    with pytest.raises(
        NewerRecordError,
        match=r"thing.json has schema version 4, newer than this vlascore reads "
        r"\(3; vlascore .*\): upgrade vlascore to 2.0 \(which wrote it\)",
    ):
        read_record(path, Thing)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must hold a mapping"),
        ('{"schema_version": "3", "size_mm": 1}', "not an integer"),
        ('{"schema_version": true, "size_mm": 1}', "not an integer"),
        ('{"schema_version": 3, "size_mm": "big"}', r"does not validate \(size_mm: "),
        ("[" * 100_000 + "]" * 100_000, "is not valid JSON"),  # deeper than the parser goes
    ],
)
def test_unreadable_records_are_one_error_with_the_fix(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "thing.json"
    path.write_text(content)
    with pytest.raises(RecordError, match=problem) as info:
        read_record(path, Thing, fix="re-create it")
    assert not isinstance(info.value, NewerRecordError)
    assert str(info.value).endswith(": re-create it") and "\n" not in str(info.value)


def test_a_missing_or_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="cannot read .*nothing.json"):
        read_record(tmp_path / "nothing.json", Thing)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"schema_version": 3, "size_mm": 1, "label": "x" * 1000}))
    with pytest.raises(RecordError, match="more than the 100 a Thing may have"):
        read_record(big, Thing, max_bytes=100)
