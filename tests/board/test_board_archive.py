"""archive.py on its own: names, entry kinds, limits, the end-of-central-directory count and bounded copies."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest
from boardkit import forge_declared_size, write_zip

from vlascore.board.archive import (
    Limits,
    checked_members,
    copy_bounded,
    declared_entry_count,
    extract,
    format_bytes,
    name_problem,
    open_archive,
    parse_size,
)
from vlascore.board.errors import Rejected


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../x", "'..' component"),
        ("a/../../x", "'..' component"),
        ("/etc/passwd", "absolute path"),
        ("C:/Windows/x", "drive letter"),
        ("c:x", "drive letter"),
        ("\\server\\share", "backslash"),
        ("a\\..\\x", "backslash"),
        ("a//b", "empty or '.'"),
        ("./a", "empty or '.'"),
        ("a/\x01b", "control characters"),
        ("", "empty name"),
        ("x" * 2000, "longer than"),
    ],
)
def test_unsafe_names_are_named(name: str, problem: str) -> None:
    found = name_problem(name)
    assert found is not None and problem in found


@pytest.mark.parametrize("name", ["MANIFEST.json", "run/frames/ToyPick-0.npz", "run/", "a/b/c.txt", "x..y"])
def test_ordinary_names_pass(name: str) -> None:
    assert name_problem(name) is None


def test_sizes_parse_and_print() -> None:
    assert parse_size("8GiB") == 8 * 1024**3
    assert parse_size("500 MB") == 500 * 1024**2
    assert parse_size("1.5k") == 1536
    assert parse_size("1024") == 1024
    with pytest.raises(ValueError, match="cannot read"):
        parse_size("lots")
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(12) == "12 B"


def _info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


@pytest.mark.parametrize(
    ("mode", "what"),
    [
        (stat.S_IFLNK | 0o777, "symbolic link"),
        (stat.S_IFIFO | 0o644, "FIFO"),
        (stat.S_IFCHR | 0o644, "character device"),
        (stat.S_IFBLK | 0o644, "block device"),
        (stat.S_IFSOCK | 0o644, "socket"),
        (stat.S_IFDIR | 0o755, "directory entry without"),
    ],
)
def test_non_regular_entries_are_refused(tmp_path: Path, mode: int, what: str) -> None:
    bundle = write_zip(tmp_path / "b.zip", [("ok.txt", b"fine"), (_info("odd", mode), b"target")])
    with open_archive(bundle, Limits()) as zf, pytest.raises(Rejected, match=what):
        checked_members(zf, Limits())


def test_directory_entries_are_skipped_and_regular_files_kept(tmp_path: Path) -> None:
    bundle = write_zip(
        tmp_path / "b.zip",
        [
            (_info("d/", stat.S_IFDIR | 0o755), b""),
            ("d/f.txt", b"x"),
            (_info("g.txt", 0), b"no unix mode: a Windows zip"),
        ],
    )
    with open_archive(bundle, Limits()) as zf:
        members = checked_members(zf, Limits())
        assert [m.filename for m in members] == ["d/f.txt", "g.txt"]
        dest = tmp_path / "out"
        dest.mkdir()
        assert extract(zf, members, dest, Limits()) == ["d/f.txt", "g.txt"]
    assert (dest / "d" / "f.txt").read_bytes() == b"x"


@pytest.mark.parametrize(
    ("items", "problem"),
    [
        ([("a.txt", b"1"), ("a.txt", b"2")], "appears twice"),
        ([("A.txt", b"1"), ("a.txt", b"2")], "as 'A.txt'"),
        ([("a", b"1"), ("a/b", b"2")], "both a file and a folder"),
    ],
)
def test_clashing_names_are_refused(tmp_path: Path, items: list[tuple[str, bytes]], problem: str) -> None:
    bundle = write_zip(tmp_path / "b.zip", items)  # type: ignore[arg-type]
    with open_archive(bundle, Limits()) as zf, pytest.raises(Rejected, match=problem):
        checked_members(zf, Limits())


def test_entry_count_comes_from_the_end_record_before_parsing(tmp_path: Path) -> None:
    bundle = write_zip(tmp_path / "b.zip", [(f"f{i}.txt", b"x") for i in range(7)])
    with open(bundle, "rb") as fh:
        count, cd_size = declared_entry_count(fh)  # type: ignore[misc]
    assert count == 7 and cd_size > 0
    with pytest.raises(Rejected, match="7 entries, more than this board's limit of 6"):
        open_archive(bundle, Limits(max_files=6))


def test_zip64_end_record_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)  # more entries than this: zipfile writes zip64 records
    bundle = write_zip(tmp_path / "z.zip", [(f"f{i}", b"x") for i in range(3)])
    monkeypatch.undo()
    assert b"PK\x06\x06" in bundle.read_bytes()
    with open(bundle, "rb") as fh:
        assert declared_entry_count(fh)[0] == 3  # type: ignore[index]
    with pytest.raises(Rejected, match="3 entries, more than this board's limit of 2"):
        open_archive(bundle, Limits(max_files=2))
    (tmp_path / "not.zip").write_bytes(b"plain text")
    with open(tmp_path / "not.zip", "rb") as fh:
        assert declared_entry_count(fh) is None
    with pytest.raises(Rejected, match="not a readable zip"):
        open_archive(tmp_path / "not.zip", Limits())


def test_declared_total_over_the_limit_is_refused_before_extraction(tmp_path: Path) -> None:
    bundle = write_zip(tmp_path / "b.zip", [("a.bin", bytes(600)), ("b.bin", bytes(600))])
    with open_archive(bundle, Limits(max_bytes=1000)) as zf, pytest.raises(Rejected, match=r"unpacks to 1\.2 KiB"):
        checked_members(zf, Limits(max_bytes=1000))


def test_a_stream_longer_than_declared_is_cut_and_refused() -> None:
    out = io.BytesIO()
    with pytest.raises(Rejected, match="more than the 10 bytes its header declares"):
        copy_bounded(io.BytesIO(bytes(5000)), out, "x", declared=10, budget=10**6)
    assert len(out.getvalue()) <= 10
    with pytest.raises(Rejected, match="more than this board's size limit"):
        copy_bounded(io.BytesIO(bytes(5000)), io.BytesIO(), "x", declared=5000, budget=100)
    with pytest.raises(Rejected, match="unpacks to 3 bytes, not the 10"):
        copy_bounded(io.BytesIO(b"abc"), io.BytesIO(), "x", declared=10, budget=100)


def test_a_lying_size_header_is_refused_while_extracting(tmp_path: Path) -> None:
    bundle = write_zip(tmp_path / "b.zip", [("small.txt", b"hi"), ("big.bin", bytes(1 << 20))])
    forge_declared_size(bundle, "big.bin", 100)
    limits = Limits(max_bytes=10_000)
    dest = tmp_path / "out"
    dest.mkdir()
    with open_archive(bundle, limits) as zf:
        members = checked_members(zf, limits)  # the forged header passes the declared-size check ...
        assert sum(m.file_size for m in members) == 102
        with pytest.raises(Rejected, match="'big.bin' is corrupt or does not match its header"):
            extract(zf, members, dest, limits)  # ... the stream does not
    assert (dest / "big.bin").stat().st_size <= 100


def test_extraction_never_follows_or_overwrites_an_existing_path(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "f.txt").symlink_to(outside)
    bundle = write_zip(tmp_path / "b.zip", [("f.txt", b"overwrite?")])
    with open_archive(bundle, Limits()) as zf, pytest.raises(Rejected, match="cannot extract archive entry 'f.txt'"):
        extract(zf, checked_members(zf, Limits()), dest, Limits())
    (dest / "d").symlink_to(tmp_path)
    bundle = write_zip(tmp_path / "c.zip", [("d/g.txt", b"escape?")])
    with open_archive(bundle, Limits()) as zf, pytest.raises(Rejected, match="exists and is not a folder"):
        extract(zf, checked_members(zf, Limits()), dest, Limits())
    assert outside.read_text() == "keep" and not (tmp_path / "g.txt").exists()
