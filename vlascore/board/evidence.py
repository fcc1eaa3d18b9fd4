"""A bundled run's recorded evidence, read as untrusted input before anything scores it.

The traces database: plain SQLite with exactly the store's two tables as the store declares them (no view,
trigger, virtual table or generated column: reading it runs no SQL of the file's), intact pages, and every row
a valid record; queries on it stop at a time budget. The instructions: each episode's is its task's in the
suite, or plain words a simulator stated (SimplerEnv names the drawer or the objects per episode); the judge
prompt keeps either inside its data block. The frames: each episode's own file, holding exactly the two arrays
the store writes, with the shape its task and its step count allow, read within bounds (a few KB of header or
deflate cannot ask for gigabytes). And the run's identity, which no re-encoding of a file changes.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
import zipfile
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from vlascore.board.errors import BUNDLE_FIX, Rejected
from vlascore.records import EpisodeRecord, RunRecord, StepRecord
from vlascore.store import (
    DB_FILE,
    FRAMES_DIR,
    LATER_COLUMNS,
    LoadedRun,
    StoreError,
    foreign_schema,
    read_npz,
    table_sql,
)
from vlascore.suites import Suite
from vlascore.versioned import first_error

RUN = "run"
QUERY_BUDGET_S = 600.0
"""Most seconds the board's queries on one bundled database may take in all (a big run takes seconds)."""
MAX_FRAME_PIXELS = 1 << 20
"""Largest frame (width x height) of a task that keeps the simulator's own camera size."""
MAX_FRAMES_FILE_BYTES = 1 << 30
"""Largest frames array of one episode, whatever its task allows."""
PLAIN_INSTRUCTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ,.;:'()/&+-]{0,199}")
"""An instruction that differs from its task's must be plain words (as simulators state them), one line."""
_JSON_STEP_COLUMNS = ("action", "ee_pose", "privileged")


def check_database(path: Path) -> None:
    """Plain SQLite in rollback-journal mode, exactly the store's schema, and no damaged page."""
    where = f"{RUN}/{DB_FILE}"
    with open(path, "rb") as fh:
        header = fh.read(100)
    if len(header) < 100 or header[:16] != b"SQLite format 3\x00":
        raise Rejected(f"{where} is not an SQLite database", BUNDLE_FIX)
    if header[18] != 1 or header[19] != 1:
        raise Rejected(
            f"{where} is in WAL mode; the board reads rollback-journal databases only",
            "run `sqlite3 traces.sqlite 'PRAGMA journal_mode=DELETE'` on the run, then submit again",
        )
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            bound_queries(conn)
            conn.execute("PRAGMA trusted_schema = OFF")
            foreign = foreign_schema(conn)
            if foreign:
                raise Rejected(f"{where} holds objects a run never has: {', '.join(foreign[:5])}", BUNDLE_FIX)
            for table in ("episodes", "steps"):
                _check_table(conn, table, where)
            damage = [" ".join(str(r[0]).split()) for r in conn.execute("PRAGMA quick_check(3)")]
            if damage != ["ok"]:
                raise Rejected(f"{where} is damaged ({'; '.join(damage)[:300]})", BUNDLE_FIX)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise Rejected(f"cannot read {where} ({exc})", BUNDLE_FIX) from None


def _check_table(conn: sqlite3.Connection, table: str, where: str) -> None:
    rows = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchall()
    if not rows:
        raise Rejected(f"{where} has no {table} table", BUNDLE_FIX)
    wanted = set((EpisodeRecord if table == "episodes" else StepRecord).model_fields)
    columns = {row[1] for row in conn.execute(f"PRAGMA table_xinfo({table})")}
    legacy = wanted - set(LATER_COLUMNS.get(table, ()))  # a run made before those columns were added
    if columns not in (wanted, legacy):
        extra, lacking = sorted(columns - wanted), sorted(wanted - columns)
        raise Rejected(
            f"the {table} table of {where} does not have this vlascore's columns "
            f"(extra: {extra or 'none'}, missing: {lacking or 'none'})",
            "submit with the vlascore version the board runs, or upgrade vlascore on the board",
        )
    if rows[0][0] not in (table_sql(table), table_sql(table, legacy=True)):
        raise Rejected(
            f"the {table} table of {where} is not declared as vlascore declares it (column types, keys, defaults "
            "or constraints differ)",
            BUNDLE_FIX,
        )


def bound_queries(conn: sqlite3.Connection, budget_s: float = QUERY_BUDGET_S) -> None:
    """Interrupt any query on `conn` once `budget_s` seconds have passed since this call."""
    deadline = time.monotonic() + budget_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 100_000)


def check_rows(run: LoadedRun) -> list[EpisodeRecord]:
    """Every episode and step row as its record (a non-integer seed, a non-JSON action, JSON nested 100k deep,
    a frames path outside the run are all refused here, by name); the episodes, in commit order."""
    try:
        episodes = run.store.episode_records()
        known = {e.episode_id for e in episodes}
        columns = list(StepRecord.model_fields)
        for row in run.store.conn.execute(f"SELECT {', '.join(columns)} FROM steps"):
            raw = dict(zip(columns, row, strict=True))
            for col in _JSON_STEP_COLUMNS:
                raw[col] = json.loads(raw[col]) if isinstance(raw[col], str) else raw[col]
            step = StepRecord.model_validate(raw)
            if step.episode_id not in known:
                raise Rejected(f"step rows of an episode the episodes table lacks ({step.episode_id!r})", BUNDLE_FIX)
    except Rejected:
        raise
    except (StoreError, sqlite3.Error) as exc:
        raise Rejected(f"cannot read the bundled traces ({exc})".replace(str(run.path), RUN), BUNDLE_FIX) from None
    except ValidationError as exc:
        raise Rejected(f"a step row of {RUN}/{DB_FILE} does not validate ({first_error(exc)})", BUNDLE_FIX) from None
    except (ValueError, RecursionError) as exc:
        raise Rejected(f"a step row of {RUN}/{DB_FILE} holds invalid JSON ({str(exc)[:120]})", BUNDLE_FIX) from None
    return episodes


def check_instructions(episodes: list[EpisodeRecord], suite: Suite) -> None:
    """Each episode's instruction is its task's in the suite, or plain words on one line (a simulator's own)."""
    for e in episodes:
        wanted = suite.task(e.task).instruction
        if e.instruction != wanted and not PLAIN_INSTRUCTION.fullmatch(e.instruction):
            raise Rejected(
                f"episode {e.episode_id}: its instruction {e.instruction[:80]!r} is neither its task's "
                f"({wanted!r}) nor plain words a simulator states (letters, digits, spaces and ,.;:'()/&+-, one "
                "line, at most 200 characters)",
                "submit the run as recorded",
            )


def check_frames(run: LoadedRun, episodes: list[EpisodeRecord], suite: Suite, bundled: set[str]) -> None:
    """Every frames file of the bundle (`bundled`: their names under run/frames/) is one episode's own, and holds
    exactly a uint8 frames array N x H x W x 3 (H x W the task's camera size, N at most the episode's steps + 1)
    and the step of each frame, read within those bounds before anything is allocated."""
    named = {e.frames_file.split("/", 1)[1]: e for e in episodes if e.frames_file}
    stray = sorted(bundled - set(named))
    if stray:
        raise Rejected(f"frames file(s) of no episode: {', '.join(stray[:5])}", BUNDLE_FIX)
    for name, e in named.items():
        where = f"{RUN}/{FRAMES_DIR}/{name}"
        if name not in bundled:
            raise Rejected(f"episode {e.episode_id} names {where}, which the bundle does not hold", BUNDLE_FIX)
        task = suite.task(e.task)
        size = task.resolution  # (width, height); None: the simulator's own, bounded
        most = e.num_steps + 1
        pixels = size[0] * size[1] if size else MAX_FRAME_PIXELS
        path = run.path / FRAMES_DIR / name
        try:
            with zipfile.ZipFile(path) as zf:
                members = sorted(zf.namelist())
            if members != ["frames.npy", "steps.npy"]:
                raise Rejected(f"{where} holds {members[:5]}, not exactly frames.npy and steps.npy", BUNDLE_FIX)
            (steps,) = read_npz(path, "steps", max_bytes=most * 8)
            (frames,) = read_npz(path, "frames", max_bytes=min(most * pixels * 3, MAX_FRAMES_FILE_BYTES))
        except Rejected:
            raise
        except (StoreError, zipfile.BadZipFile, OSError) as exc:
            message = f"{where} is not a frames file this board reads ({exc})".replace(str(path), where)
            raise Rejected(message, BUNDLE_FIX) from None
        problem = _frames_problem(frames, steps, size, e.num_steps)
        if problem:
            raise Rejected(f"{where}: {problem}", BUNDLE_FIX)


def _frames_problem(frames: np.ndarray, steps: np.ndarray, size: tuple[int, int] | None, num_steps: int) -> str:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or not 1 <= len(frames) <= num_steps + 1:
        return f"frames of dtype {frames.dtype} and shape {frames.shape}, not N x H x W x 3 uint8 with N <= steps + 1"
    if size is not None and frames.shape[1:3] != (size[1], size[0]):
        return f"frames of {frames.shape[2]} x {frames.shape[1]} pixels, not the task's {size[0]} x {size[1]}"
    if size is None and frames.shape[1] * frames.shape[2] > MAX_FRAME_PIXELS:
        return f"frames of {frames.shape[2]} x {frames.shape[1]} pixels, more than {MAX_FRAME_PIXELS}"
    if steps.dtype.kind not in "iu" or steps.shape != (len(frames),):
        return f"steps of dtype {steps.dtype} and shape {steps.shape}, not one integer per frame"
    if len(steps) and (steps.min() < 0 or steps.max() > num_steps or (np.diff(steps) < 0).any()):
        return f"frame steps outside 0..{num_steps} or out of order"
    return ""


def run_digest(record: RunRecord, episodes: list[EpisodeRecord]) -> str:
    """The run's identity: its run record and its episodes' records as parsed (with their start times and
    durations), so the same run re-packed, with a frames file or the database re-encoded, has the same one."""
    h = hashlib.sha256(record.model_dump_json().encode())
    for e in sorted(episodes, key=lambda e: e.episode_id):
        h.update(b"\0" + e.model_dump_json().encode())
    return h.hexdigest()
