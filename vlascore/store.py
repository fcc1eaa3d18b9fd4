"""The run store: one directory per run.

    run.json           RunRecord (written atomically when the run starts or resumes)
    traces.sqlite      tables `episodes` and `steps`; each episode is committed in one transaction
    frames/<id>.npz    the episode's camera frames (uint8, compressed), written before its transaction
    results.json       written by `vlascore score`

A kill -9 can only lose the episode in flight: its frames file may exist without rows (it is rewritten
on resume), and SQLite's journal rolls back a half-written transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import pandas as pd

from vlascore.paths import SAFE_NAME
from vlascore.records import FRAMES_DIR, EpisodeRecord, RunRecord, StepRecord
from vlascore.versioned import RecordError, check_version, parse_record, read_record

_NPZ_LOCK = threading.Lock()


MAX_ARRAY_BYTES = 2 << 30
"""Largest array read from an .npz file (an episode's frames at 640 x 512 for 1000 steps are about 1 GiB)."""


def npy_header(fh: IO[bytes]) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """(shape, dtype) from an .npy header, leaving `fh` at the data; numpy bounds the header's own size."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    if dtype.hasobject:
        raise ValueError("the array holds Python objects (pickles), which are never loaded")
    return shape, dtype


def read_npz(path: str | Path, *keys: str, max_bytes: int = MAX_ARRAY_BYTES) -> tuple[np.ndarray, ...]:
    """The arrays `keys` of an .npz file, safe to call from worker threads and on untrusted files: each array's
    header must declare exactly the bytes its member holds, and at most `max_bytes`, before anything is allocated
    (a few bytes of header could otherwise ask for gigabytes); never unpickles. StoreError says what is wrong.

    np.load parses each array header with ast.literal_eval, and concurrent compile() calls can raise
    "SystemError: AST constructor recursion depth mismatch" on some CPython versions (gh-106905; seen with 3.11.7
    when judge workers load frames in parallel). Reading one frames file takes milliseconds, so one lock is cheap.
    """
    out = []
    try:
        with _NPZ_LOCK, zipfile.ZipFile(path) as zf:
            for key in keys:
                info = zf.getinfo(f"{key}.npy")
                with zf.open(info) as fh:
                    shape, dtype = npy_header(fh)
                    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize  # Python ints: no overflow
                    if nbytes > max_bytes:
                        raise StoreError(f"{path}: array {key!r} of shape {shape} is larger than {max_bytes} bytes")
                    if fh.tell() + nbytes != info.file_size:
                        raise StoreError(f"{path}: array {key!r} declares shape {shape}, not what the file holds")
                with zf.open(info) as fh:
                    out.append(np.lib.format.read_array(fh, allow_pickle=False))
    except (zipfile.BadZipFile, zlib.error, KeyError, ValueError, OSError, EOFError) as exc:
        raise StoreError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc})") from None
    return tuple(out)


RUN_FILE = "run.json"
DB_FILE = "traces.sqlite"

_EPISODE_COLUMNS = list(EpisodeRecord.model_fields)
_STEP_COLUMNS = list(StepRecord.model_fields)
_JSON_STEP_COLUMNS = ("action", "ee_pose", "privileged")
_TEXT_COLUMNS = ("intention", "reasoning")
_SQL_TYPES = {int: "INTEGER", float: "REAL", bool: "INTEGER"}


def _insert_sql(table: str, columns: list[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


@dataclass
class StepScan:
    """All steps of a run in commit order (see RunStore.step_scan)."""

    blocks: dict[str, slice]
    """episode_id -> its rows, in commit order."""
    step: np.ndarray
    """Step index of each row."""
    actions_json: str
    """Every row's stored action, as one JSON list of lists."""
    changes: dict[str, tuple[list[int], list[str]]]
    """reasoning / intention -> (rows, texts) where the text differs from the previous step of the episode or starts
    the episode (a missing text is "")."""

    @classmethod
    def empty(cls, blocks: dict[str, slice]) -> StepScan:
        return cls(blocks, np.zeros(0, dtype=np.int64), "[]", {c: ([], []) for c in _TEXT_COLUMNS})


class StoreError(RecordError):
    """A run directory that is missing, incompatible or unreadable."""


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """`write(fh)` into a temp file, fsync, then rename over `path`: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write text atomically (see `atomic_write`)."""
    atomic_write(path, lambda fh: fh.write(text.encode()))


def _column_sql(model: type[Any], name: str) -> str:
    # Unknown/optional types get no affinity, so SQLite stores values as given (ints stay ints).
    return f"{name} {_SQL_TYPES.get(model.model_fields[name].annotation, '')}".strip()


def _columns_sql(model: type[Any], key: str, leave_out: tuple[str, ...] = ()) -> str:
    names = [n for n in model.model_fields if n not in leave_out]
    return ", ".join(_column_sql(model, n) for n in names) + f", PRIMARY KEY ({key})"


_TABLES: dict[str, tuple[type[Any], str]] = {
    "episodes": (EpisodeRecord, "episode_id"),
    "steps": (StepRecord, "episode_id, step"),
}


LATER_COLUMNS: dict[str, tuple[str, ...]] = {"episodes": ("worker", "node")}
"""Columns added to a table after runs were first recorded (fields with defaults): a run made before has the table
without them, and the first episode a newer vlascore writes into it adds them (ALTER TABLE ADD COLUMN, which SQLite
records in the schema exactly as if the table had been created with them)."""


def table_sql(table: str, legacy: bool = False) -> str:
    """The CREATE TABLE statement the store writes for `table`, as SQLite keeps it in sqlite_master (`legacy`: as a
    run made before LATER_COLUMNS existed has it)."""
    model, key = _TABLES[table]
    return f"CREATE TABLE {table} ({_columns_sql(model, key, LATER_COLUMNS.get(table, ()) if legacy else ())})"


def foreign_schema(conn: sqlite3.Connection) -> list[str]:
    """What a run's database never has and a reader must refuse before any query: views, triggers, virtual tables,
    tables other than the store's, generated or hidden columns (each would run SQL that the file defines, such as
    a generated column that builds gigabytes from a 20 KB file, when its rows are read)."""
    found = []
    for kind, name, table, sql in conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"):
        if kind == "index" and str(name).startswith("sqlite_autoindex_") and table in _TABLES:
            continue
        if kind != "table" or name not in _TABLES:
            found.append(f"{kind} {name}")
        elif not str(sql or "").upper().startswith("CREATE TABLE"):  # CREATE VIRTUAL TABLE
            found.append(f"virtual table {name}")
        else:
            found += [f"generated column {name}.{c[1]}" for c in conn.execute(f"PRAGMA table_xinfo({name})") if c[6]]
    return found


class RunStore:
    """Reads and writes one run directory. `read_only`: never write, open the database read-only (unless SQLite must
    roll back an interrupted write first) and refuse a schema a run never has (`foreign_schema`) before reading."""

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._conn: sqlite3.Connection | None = None
        self._episode_columns = _EPISODE_COLUMNS
        """The episodes table's columns this store can read: a run made by an older vlascore lacks LATER_COLUMNS
        (all have defaults); the first episode written adds them."""

    # -- layout -------------------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return (self.path / RUN_FILE).is_file()

    def frames_path(self, episode_id: str) -> Path:
        if not SAFE_NAME.fullmatch(episode_id.rpartition("-")[0] or "-"):  # never a path outside frames/
            raise StoreError(f"episode id {episode_id[:120]!r} of {self.path} is not <task id>-<seed>: not read")
        return self.path / FRAMES_DIR / f"{episode_id}.npz"

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            db = self.path / DB_FILE
            try:
                conn = self._open_read_only(db) if self.read_only else self._open_for_writing(db)
            except sqlite3.DatabaseError as exc:
                raise StoreError(
                    f"{db} is not a readable traces database ({exc}): the run is damaged; restore it from a copy, or "
                    "re-run it into a new directory"
                ) from None
            except OSError as exc:
                raise StoreError(f"cannot open the run directory {self.path}: {exc.strerror or exc}") from None
            present = {row[1] for row in conn.execute("PRAGMA table_info(episodes)")}
            self._episode_columns = [c for c in _EPISODE_COLUMNS if c in present]
            self._conn = conn
        return self._conn

    def _add_missing_columns(self, conn: sqlite3.Connection) -> None:
        """Give a run made by an older vlascore the episode columns added since (NULL in its old rows)."""
        for name in _EPISODE_COLUMNS:
            if name not in self._episode_columns:
                conn.execute(f"ALTER TABLE episodes ADD COLUMN {_column_sql(EpisodeRecord, name)}")
        self._episode_columns = _EPISODE_COLUMNS

    def _open_for_writing(self, db: Path) -> sqlite3.Connection:
        self.path.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(db)
        try:
            for table in _TABLES:
                conn.execute(table_sql(table).replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
            conn.commit()
            self._check_rows(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_read_only(self, db: Path) -> sqlite3.Connection:
        interrupted = any(db.with_name(db.name + s).exists() for s in ("-journal", "-wal"))
        # A hot journal can only be rolled back by a writer; otherwise the file is never opened for writing.
        conn = sqlite3.connect(db) if interrupted else sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA trusted_schema = OFF")
            conn.execute("PRAGMA cell_size_check = ON")
            foreign = foreign_schema(conn)
            if foreign:
                raise StoreError(f"{db} holds what a run's database never has ({', '.join(foreign[:5])}); not read")
            missing = [t for t in _TABLES if not conn.execute(f"PRAGMA table_info({t})").fetchall()]
            if missing:
                raise StoreError(f"{db} has no {' or '.join(missing)} table: it is not a vlascore traces database")
            self._check_rows(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_rows(self, conn: sqlite3.Connection) -> None:
        for table, (model, _) in _TABLES.items():  # rows newer than this reader
            (newest,) = conn.execute(f"SELECT MAX(schema_version) FROM {table}").fetchone()
            if newest is not None:
                check_version(newest, model, f"the {table} table of {self.path / DB_FILE}", error=StoreError)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- run record ---------------------------------------------------------------------------------
    def write_run(self, run: RunRecord) -> None:
        atomic_write_text(self.path / RUN_FILE, run.model_dump_json(indent=2))

    def read_run(self) -> RunRecord:
        if not self.exists:
            raise StoreError(
                f"{self.path} is not a vlascore run directory (no {RUN_FILE}); create one with `vlascore run`"
            )
        return read_record(self.path / RUN_FILE, RunRecord, error=StoreError)

    # -- episodes -----------------------------------------------------------------------------------
    def write_frames(self, episode_id: str, frames: list[np.ndarray], steps: list[int]) -> str | None:
        """Store frames atomically; returns the path relative to the run directory (None if no frames)."""
        if not frames:
            return None
        path = self.frames_path(episode_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        # An .npz written by hand at deflate level 1: ~40% faster than np.savez_compressed (level 6) and
        # as small on rendered frames; this is the main per-episode cost of recording.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name, array in (("frames", np.stack(frames)), ("steps", np.asarray(steps, dtype=np.int32))):
                with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, array, allow_pickle=False)
        os.replace(tmp, path)
        return str(path.relative_to(self.path))

    def write_episode(self, episode: EpisodeRecord, steps: Iterable[StepRecord]) -> None:
        """Replace any earlier copy of the episode, all in one transaction."""
        ep = episode.model_dump()
        rows = []
        for s in steps:
            d = s.model_dump()
            for col in _JSON_STEP_COLUMNS:
                d[col] = json.dumps(d[col])
            rows.append(tuple(d[c] for c in _STEP_COLUMNS))
        conn = self.conn
        if self._episode_columns != _EPISODE_COLUMNS:
            with conn:
                self._add_missing_columns(conn)
        with conn:  # one transaction: all of the episode or none of it
            conn.execute("DELETE FROM steps WHERE episode_id = ?", (episode.episode_id,))
            conn.execute("DELETE FROM episodes WHERE episode_id = ?", (episode.episode_id,))
            conn.execute(_insert_sql("episodes", _EPISODE_COLUMNS), tuple(ep[c] for c in _EPISODE_COLUMNS))
            conn.executemany(_insert_sql("steps", _STEP_COLUMNS), rows)

    def finished_episodes(self) -> dict[str, str]:
        """episode_id -> status of every committed episode."""
        if not (self.path / DB_FILE).exists():
            return {}
        return dict(self.conn.execute("SELECT episode_id, status FROM episodes").fetchall())

    def episode_records(self, episode_ids: list[str] | None = None) -> list[EpisodeRecord]:
        """The committed episodes as records, in commit order (`episode_ids`: only those). Read row by row through
        the record reader, not through pandas, which turns a missing text into NaN."""
        if not (self.path / DB_FILE).exists():
            return []
        conn = self.conn  # opening it reads which columns the table has: absent (older) ones take the field defaults
        columns = self._episode_columns
        cursor = conn.execute(f"SELECT {', '.join(columns)} FROM episodes ORDER BY rowid")
        wanted = None if episode_ids is None else set(episode_ids)
        where = self.path / DB_FILE
        return [
            parse_record(
                dict(zip(columns, row, strict=True)),
                EpisodeRecord,
                f"episode {row[0]!r} of {where}",
                error=StoreError,
            )
            for row in cursor
            if wanted is None or row[0] in wanted
        ]

    def episodes_frame(self) -> pd.DataFrame:
        if not (self.path / DB_FILE).exists():
            return pd.DataFrame(columns=_EPISODE_COLUMNS)
        df = pd.read_sql_query("SELECT * FROM episodes ORDER BY rowid", self.conn)
        df["success"] = df["success"].astype(bool)
        for name in _EPISODE_COLUMNS:  # a run made by an older vlascore: the fields added since, at their defaults
            if name not in df:
                df[name] = EpisodeRecord.model_fields[name].default
        return df

    def steps_frame(self, episode_ids: list[str] | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """Steps in commit order; `columns` reads only those (cheap for text-only consumers like reports)."""
        cols = columns or _STEP_COLUMNS
        unknown = sorted(set(cols) - set(_STEP_COLUMNS))
        if unknown:
            raise ValueError(f"unknown step columns: {', '.join(unknown)}")
        if not (self.path / DB_FILE).exists():
            return pd.DataFrame(columns=cols)
        query, params = f"SELECT {', '.join(cols)} FROM steps", ()
        if episode_ids is not None:
            query += f" WHERE episode_id IN ({', '.join('?' * len(episode_ids))})"
            params = tuple(episode_ids)  # type: ignore[assignment]
        df = pd.read_sql_query(query + " ORDER BY rowid", self.conn, params=params)
        for col in _JSON_STEP_COLUMNS:
            if col in df:
                df[col] = [json.loads(v) for v in df[col]]
        if "success" in df:
            df["success"] = df["success"].astype(bool)
        return df

    def step_rows(self, columns: list[str], empty_text: bool = False) -> list[tuple[Any, ...]]:
        """Raw step rows (JSON columns as stored text) in commit order: for readers of every step of a big run,
        which a DataFrame would only slow down. `empty_text`: NULL reasoning / intention read as ""."""
        unknown = sorted(set(columns) - set(_STEP_COLUMNS))
        if unknown:
            raise ValueError(f"unknown step columns: {', '.join(unknown)}")
        if not (self.path / DB_FILE).exists():
            return []
        texts = ("reasoning", "intention") if empty_text else ()
        select = ", ".join(f"COALESCE({c}, '')" if c in texts else c for c in columns)
        return self.conn.execute(f"SELECT {select} FROM steps ORDER BY rowid").fetchall()

    def step_scan(self) -> StepScan | None:
        """Every step in commit order, for readers of whole runs (reports), in three queries that hand Python a few
        big strings instead of a million small objects: the episodes' row ranges, the step indices and actions as
        two comma-joined lists, and the texts only where they change. None when some episode's rows are not one
        block in step order (the store always writes them so; use steps_frame then)."""
        if not (self.path / DB_FILE).exists():
            return StepScan.empty({})
        bounds = self.conn.execute(
            "SELECT episode_id, COUNT(*), MIN(rowid), MAX(rowid) FROM steps GROUP BY episode_id ORDER BY MIN(rowid)"
        ).fetchall()
        blocks, offset, previous_end = {}, 0, -1
        for eid, count, first, last in bounds:
            if last - first + 1 != count or first <= previous_end:  # interleaved with another episode's rows
                return None
            blocks[eid] = slice(offset, offset + count)
            offset, previous_end = offset + count, last
        # SQLite 3.40 has no ORDER BY inside group_concat: the rows are concatenated in the subquery's order, and
        # the rowids concatenated with them prove it (they must come out increasing).
        rowids, steps, actions = self.conn.execute(
            "SELECT group_concat(r), group_concat(step), group_concat(action) FROM "
            "(SELECT rowid AS r, step, action FROM steps ORDER BY rowid)"
        ).fetchone()
        if rowids is None:
            return StepScan.empty(blocks)
        order = np.array(rowids.split(","), dtype=np.int64)
        step = np.array(steps.split(","), dtype=np.int64)
        if (np.diff(order) <= 0).any() or len(order) != offset:
            return None
        starts = np.zeros(len(step), dtype=bool)
        starts[[b.start for b in blocks.values()]] = True
        if (np.diff(step)[~starts[1:]] <= 0).any():  # not in step order within an episode
            return None
        # Rows whose text differs from the previous step of the same episode (rowids are contiguous per episode).
        changed = [
            f"CASE WHEN p.episode_id IS s.episode_id AND p.{c} IS s.{c} THEN NULL ELSE COALESCE(s.{c}, '') END"
            for c in _TEXT_COLUMNS
        ]
        same = " AND ".join(f"p.{c} IS s.{c}" for c in _TEXT_COLUMNS)
        rows = self.conn.execute(
            f"SELECT s.rowid, {', '.join(changed)} FROM steps s LEFT JOIN steps p ON p.rowid = s.rowid - 1 "
            f"WHERE NOT (p.episode_id IS s.episode_id AND {same}) ORDER BY s.rowid"
        ).fetchall()
        position = np.searchsorted(order, np.array([r[0] for r in rows], dtype=np.int64))
        changes = {}
        for k, column in enumerate(_TEXT_COLUMNS, start=1):
            keep = [i for i, r in enumerate(rows) if r[k] is not None]
            changes[column] = (position[keep].tolist(), [rows[i][k] for i in keep])
        return StepScan(blocks, step, "[" + actions + "]", changes)

    def frames(self, episode_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(frames N x H x W x 3, step index of each frame); the last frame may follow the last step."""
        path = self.frames_path(episode_id)
        if not path.exists():
            raise StoreError(f"no frames stored for episode {episode_id!r} in {self.path}")
        frames, steps = read_npz(path, "frames", "steps")
        return frames, steps


class LoadedRun:
    """A run opened for reading: `.run`, `.episodes`, `.steps` (pandas), `.frames(episode_id)`."""

    def __init__(self, path: str | Path) -> None:
        self.store = RunStore(path, read_only=True)
        self.path = self.store.path
        self.run = self.store.read_run()
        self._episodes: pd.DataFrame | None = None
        self._steps: pd.DataFrame | None = None

    @property
    def episodes(self) -> pd.DataFrame:
        if self._episodes is None:
            self._episodes = self.store.episodes_frame()
        return self._episodes

    @property
    def steps(self) -> pd.DataFrame:
        if self._steps is None:
            self._steps = self.store.steps_frame()
        return self._steps

    def frames(self, episode_id: str) -> tuple[np.ndarray, np.ndarray]:
        return self.store.frames(episode_id)

    def __repr__(self) -> str:
        return f"LoadedRun({str(self.path)!r}, adapter={self.run.adapter!r}, episodes={len(self.episodes)})"


def load_run(path: str | Path) -> LoadedRun:
    return LoadedRun(path)
