"""Safe extraction of an untrusted zip (a submission bundle) into a fresh folder.

Everything that can be refused from the central directory is refused before one byte is extracted: unsafe
names (`..`, empty or `.` components, absolute paths, `C:` drives, backslashes, control characters), symbolic
links and every other non-regular entry, encrypted entries, duplicate names (also up to case, and a file that
is also a folder), more entries than `Limits.max_files` and a declared uncompressed total over
`Limits.max_bytes`. The entry count is read from the end-of-central-directory record before `zipfile` parses
the directory, so a zip with millions of entries is refused without holding them all in memory.

Extraction then writes only below the destination folder, creating every file with O_CREAT | O_EXCL |
O_NOFOLLOW (an existing file or link is never opened or followed) and every folder with mkdir (checked with
lstat), and counts the bytes actually decompressed: an entry that yields more than its header declares, or a
total over the limit, is refused mid-stream (a lying header), as is one whose CRC does not match.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from vlascore.board.errors import Rejected

GiB = 1024**3
DEFAULT_MAX_FILES = 200_000
DEFAULT_MAX_BYTES = 8 * GiB
MAX_NAME_LENGTH = 1024
"""Longest entry name accepted (characters); real bundle names are far shorter."""
_CENTRAL_BYTES_PER_ENTRY = 46 + MAX_NAME_LENGTH + 2048
"""Upper bound of one central-directory record the board accepts (fixed part, name, extra and comment)."""
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
_FIX = "re-create the bundle with `vlascore submit RUN -o bundle.zip`"


@dataclass(frozen=True)
class Limits:
    """How much an archive may hold; the board's `board.yaml` sets them, `leaderboard add` can override."""

    max_files: int = DEFAULT_MAX_FILES
    max_bytes: int = DEFAULT_MAX_BYTES


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB': limits and sizes in messages people read."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def parse_size(text: str) -> int:
    """'8GiB', '500 MB', '1024' -> bytes (K/M/G are binary multiples, as in the defaults)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.I)
    if not m:
        raise ValueError(f"cannot read {text!r} as a size: write e.g. 8GiB, 500MiB or a number of bytes")
    return int(float(m.group(1)) * 1024 ** "_KMGT".index((m.group(2) or "_").upper()))


def name_problem(name: str) -> str | None:
    """Why an entry name is unsafe to extract, or None. Directory entries end with '/'."""
    if not name:
        return "an empty name"
    if len(name) > MAX_NAME_LENGTH:
        return f"a name longer than {MAX_NAME_LENGTH} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "control characters in its name"
    if "\\" in name:
        return "a backslash in its name (a Windows path separator; zip names use '/')"
    if name.startswith("/"):
        return "an absolute path"
    if _DRIVE.match(name):
        return "a drive letter (an absolute Windows path)"
    parts = name[:-1].split("/") if name.endswith("/") else name.split("/")
    if ".." in parts:
        return "a '..' component (it would escape the extraction folder)"
    if any(p in ("", ".") for p in parts):
        return "an empty or '.' path component"
    return None


def _entry_kind(info: zipfile.ZipInfo) -> str:
    """'file', 'dir', or what else the entry is (from its Unix mode, when the zip recorded one)."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "a symbolic link"
    if info.filename.endswith("/"):
        return "dir" if kind in (0, stat.S_IFDIR) else "a directory entry of an unexpected type"
    if kind == stat.S_IFDIR or info.external_attr & 0x10:  # 0x10: the MS-DOS directory attribute
        return "a directory entry without a trailing '/'"
    if kind not in (0, stat.S_IFREG):
        names = {
            stat.S_IFCHR: "a character device",
            stat.S_IFBLK: "a block device",
            stat.S_IFIFO: "a FIFO",
            stat.S_IFSOCK: "a socket",
        }
        return names.get(kind, f"a special file (mode {oct(kind)})")
    return "file"


def declared_entry_count(fh: BinaryIO) -> tuple[int, int] | None:
    """(entries, central directory bytes) from the end-of-central-directory record (zip64 aware), or None when
    there is none (then `zipfile` reports the file as not a zip)."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    tail_len = min(size, 22 + 0xFFFF)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or len(tail) - pos < 22:
        return None
    _, _, _, _, entries, cd_size, cd_offset, _ = struct.unpack("<4s4H2LH", tail[pos : pos + 22])
    if entries != 0xFFFF and cd_size != 0xFFFFFFFF and cd_offset != 0xFFFFFFFF:
        return entries, cd_size
    locator_at = size - tail_len + pos - 20
    if locator_at < 0:
        return entries, cd_size
    fh.seek(locator_at)
    locator = fh.read(20)
    signature, _, record_at, _ = struct.unpack("<4sLQL", locator)
    if signature != b"PK\x06\x07":
        return entries, cd_size
    fh.seek(record_at)
    record = fh.read(56)
    if len(record) < 56 or record[:4] != b"PK\x06\x06":
        return None
    fields = struct.unpack("<4sQ2H2L4Q", record)
    return fields[7], fields[8]


def open_archive(path: Path, limits: Limits) -> zipfile.ZipFile:
    """Open an untrusted zip; refuses a non-zip and one declaring too many entries before parsing them."""
    try:
        with open(path, "rb") as fh:
            declared = declared_entry_count(fh)
    except OSError as exc:
        raise Rejected(f"cannot read {path}: {exc.strerror or exc}", "check the path and its permissions") from None
    if declared is not None:
        entries, cd_size = declared
        if entries > limits.max_files:
            raise Rejected(
                f"the bundle has {entries} entries, more than this board's limit of {limits.max_files}",
                "ask the board owner to raise max_files in board.yaml (or pass --max-files)",
            )
        if cd_size > max(entries, 1) * _CENTRAL_BYTES_PER_ENTRY:
            raise Rejected(
                f"the bundle's central directory ({format_bytes(cd_size)}) is too large for {entries} entries", _FIX
            )
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise Rejected(f"{path.name} is not a readable zip file ({exc})", _FIX) from None


def checked_members(zf: zipfile.ZipFile, limits: Limits) -> list[zipfile.ZipInfo]:
    """The archive's file entries, after every check that needs no extraction; directory entries are dropped
    (folders are created from the file names)."""
    infos = zf.infolist()
    if len(infos) > limits.max_files:
        raise Rejected(
            f"the bundle has {len(infos)} entries, more than this board's limit of {limits.max_files}",
            "ask the board owner to raise max_files in board.yaml (or pass --max-files)",
        )
    files: list[zipfile.ZipInfo] = []
    seen: dict[str, str] = {}
    for info in infos:
        shown = info.orig_filename
        if "\x00" in info.orig_filename:
            raise Rejected(f"archive entry {shown!r} has a NUL byte in its name", _FIX)
        problem = name_problem(info.filename)
        if problem:
            raise Rejected(f"archive entry {shown!r} is unsafe: {problem}", _FIX)
        kind = _entry_kind(info)
        if kind == "dir":
            continue
        if kind != "file":
            raise Rejected(f"archive entry {shown!r} is {kind}; a bundle holds regular files only", _FIX)
        if info.flag_bits & 0x1:
            raise Rejected(f"archive entry {shown!r} is encrypted; the board cannot check it", _FIX)
        folded = info.filename.casefold()
        if folded in seen:
            same = seen[folded] == info.filename
            raise Rejected(f"archive entry {shown!r} appears twice" + ("" if same else f" (as {seen[folded]!r})"), _FIX)
        seen[folded] = info.filename
        files.append(info)
    folders = {
        "/".join(parts[:i]) for parts in (f.filename.casefold().split("/") for f in files) for i in range(1, len(parts))
    }
    clash = sorted(seen[f] for f in seen if f in folders)
    if clash:
        raise Rejected(f"archive entry {clash[0]!r} is both a file and a folder", _FIX)
    total = sum(info.file_size for info in files)
    if total > limits.max_bytes:
        raise Rejected(
            f"the bundle unpacks to {format_bytes(total)}, more than this board's limit of "
            f"{format_bytes(limits.max_bytes)}",
            "ask the board owner to raise max_bytes in board.yaml (or pass --max-bytes)",
        )
    return files


def copy_bounded(src: IO[bytes], dst: IO[bytes], name: str, declared: int, budget: int) -> int:
    """Copy at most `declared` bytes (and at most `budget`); refuse a stream that yields more, or fewer."""
    written = 0
    while True:
        chunk = src.read(_CHUNK)
        if not chunk:
            break
        written += len(chunk)
        if written > declared:
            raise Rejected(
                f"archive entry {name!r} unpacks to more than the {declared} bytes its header declares "
                "(a forged header)",
                _FIX,
            )
        if written > budget:
            raise Rejected(
                f"the bundle unpacks to more than this board's size limit (while extracting {name!r})",
                "ask the board owner to raise max_bytes in board.yaml",
            )
        dst.write(chunk)
    if written != declared:
        raise Rejected(
            f"archive entry {name!r} unpacks to {written} bytes, not the {declared} its header declares", _FIX
        )
    return written


def _make_folder(path: Path) -> None:
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise Rejected(f"cannot extract into {path.name!r}: it exists and is not a folder", _FIX)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def extract(zf: zipfile.ZipFile, members: Iterable[zipfile.ZipInfo], dest: Path, limits: Limits) -> list[str]:
    """Extract `members` (from `checked_members`) below the existing, empty folder `dest`; returns their names."""
    total, names, folders = 0, [], {""}
    for info in members:
        parts = info.filename.split("/")
        for i in range(1, len(parts)):
            rel = "/".join(parts[:i])
            if rel not in folders:
                _make_folder(dest.joinpath(*parts[:i]))
                folders.add(rel)
        target = dest.joinpath(*parts)
        try:
            fd = os.open(target, _CREATE, 0o644)
        except OSError as exc:
            raise Rejected(f"cannot extract archive entry {info.filename!r}: {exc.strerror or exc}", _FIX) from None
        with os.fdopen(fd, "wb") as out:
            try:
                with zf.open(info) as src:
                    total += copy_bounded(src, out, info.filename, info.file_size, limits.max_bytes - total)
            except Rejected:
                raise
            except OSError as exc:
                if exc.errno not in (None, errno.EINVAL):  # the destination failed (disk full...): not the bundle
                    raise
                raise Rejected(f"archive entry {info.filename!r} points outside the archive ({exc})", _FIX) from None
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
                raise Rejected(
                    f"archive entry {info.filename!r} is corrupt or does not match its header ({exc})", _FIX
                ) from None
        names.append(info.filename)
    return names
