"""A board folder: its config, the submissions it accepted, and the checks a bundle passes to get in.

    DIR/board.yaml                 BoardConfig (title, min_episodes_per_task, archive limits); written on first add
    DIR/index.json                 BoardIndex: every submission's BoardRecord (rewritten atomically; derived)
    DIR/suites/*.yaml              suites the owner accepts besides the built-in ones
    DIR/judges/*.yaml              judges the owner accepts besides the built-in ones
    DIR/submissions/<id>/          the bundle as submitted (byte-identical to its MANIFEST.json), plus
        record.json                BoardRecord: when it was added, its hashes, the judgement files the board made,
                                   its checked QA figures and MM
        scores.json                RunResults recomputed by the board (all judgement files, the board's included)
    DIR/.staging/<random>/         where `add` extracts and checks a bundle (removed when it ends)

`Board.add` checks a bundle in this order, the first failure rejecting it (Rejected: its reason and fix) with
the board left as it was: archive safety (archive.py), the bundle layout, the manifest, duplicates (again
under the lock before storing), then the run itself (validate.py: schemas, traces database, suite, judges,
coverage, honesty). Only then is the staging folder renamed into submissions/<id>/.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from vlascore.board.archive import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILES,
    Limits,
    checked_members,
    extract,
    format_bytes,
    open_archive,
)
from vlascore.board.bundle import MANIFEST_FILE, RUN_DIR, SUBMISSION_FILE, Manifest, Submission, layout_problem
from vlascore.board.errors import BoardError, Rejected, shown
from vlascore.board.qa import QAFigure
from vlascore.board.validate import (
    BUNDLE_FIX,
    JUDGES_DIR,
    SUITES_DIR,
    check_manifest,
    check_run,
    known_judges,
    known_suites,
)
from vlascore.judging.judgement import JUDGEMENTS_DIR
from vlascore.paths import read_yaml_mapping
from vlascore.qa.summary import Summary
from vlascore.records import utcnow
from vlascore.scoring import RunResults, score_run
from vlascore.store import StoreError, atomic_write_text, load_run
from vlascore.versioned import parse_record, read_record

if TYPE_CHECKING:
    from vlascore.judging.base import JudgeContext

CONFIG_FILE = "board.yaml"
INDEX_FILE = "index.json"
SUBMISSIONS_DIR = "submissions"
STAGING_DIR = ".staging"
LOCK_FILE = ".lock"
RECORD_FILE = "record.json"
SCORES_FILE = "scores.json"
BOARD_SCHEMA_VERSION = 1
RECORD_SCHEMA_VERSION = 2
"""BoardRecord's: 2 added `qa` and `mm`; a record without QA results is still written as 1."""
_BOARD_ENTRIES = {CONFIG_FILE, INDEX_FILE, SUBMISSIONS_DIR, STAGING_DIR, LOCK_FILE, SUITES_DIR, JUDGES_DIR}


class BoardConfig(BaseModel):
    """DIR/board.yaml: the board owner's settings."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = BOARD_SCHEMA_VERSION
    """Version of this file's format."""
    title: str = "vlascore leaderboard"
    """Title of the site `vlascore leaderboard build` renders."""
    description: str = ""
    """A paragraph shown under the title."""
    min_episodes_per_task: int = Field(default=5, ge=1)
    """Fewest episodes per task a submission must have (the first N seeds of every task of its suite)."""
    max_files: int = Field(default=DEFAULT_MAX_FILES, ge=1)
    """Most entries a bundle may hold (checked before anything is extracted)."""
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1)
    """Most bytes a bundle may unpack to (declared sizes first, then counted while extracting)."""
    verify_grounded: bool = True
    """Re-run the verdicts of grounded judges (offline, deterministic) and refuse a bundle whose verdicts differ."""

    def limits(self) -> Limits:
        return Limits(max_files=self.max_files, max_bytes=self.max_bytes)


class BoardJudgement(BaseModel):
    """A judgement file the board made (`leaderboard rejudge`); the submitted files are never touched."""

    model_config = ConfigDict(extra="forbid")
    label: str
    """Label of the judgement file: `<judge label>@<effective version>`."""
    file: str
    """Path of the file relative to the submission folder."""
    judge: str
    """Judge definition name."""
    judge_version: str
    """Effective judge version."""
    judge_model: str | None = None
    """Model behind a VLM judge."""
    created_at: str = Field(default_factory=utcnow)
    """UTC time the board's judge pass finished."""


class BoardRecord(BaseModel):
    """DIR/submissions/<id>/record.json: what the board knows about one accepted submission."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = RECORD_SCHEMA_VERSION
    """Version of this record's format (1 when it holds no QA figures, so older vlascore versions read it)."""
    id: str
    """Submission id: a slug of the display name and the first 10 hex digits of the manifest hash."""
    name: str
    """Display name (from submission.json)."""
    adapter: str
    """Adapter that produced the run."""
    reasons: bool
    """Whether the policy declared that it reasons."""
    suite: str
    """Suite name."""
    suite_fingerprint: str
    """Suite fingerprint."""
    protocol_version: str
    """Suite protocol version."""
    added_at: str = Field(default_factory=utcnow)
    """UTC time the board accepted the bundle."""
    bundle: str
    """File name of the bundle as it was added."""
    manifest_sha256: str
    """Hash of the bundle's manifest listing: the bundle's content hash."""
    traces_sha256: str
    """Hash of the manifest entries of run.json, traces and frames: the same run under another name or with
    other judgement files has the same one."""
    run_sha256: str = ""
    """The run's identity: its run record and episode records as parsed (board/evidence.py: run_digest), which no
    re-encoding of a file changes; a second bundle of the same run is refused ("": added before it was kept)."""
    board_judgements: list[BoardJudgement] = []
    """Judgement files the board added to run/judgements/ (`leaderboard rejudge`)."""
    qa: list[QAFigure] = []
    """The run's QA benchmarks as the board checked them (schema 2); empty: none."""
    mm: Summary | None = None
    """MM over them, with the columns it averaged and those missing (None: no QA results)."""

    def to_json(self) -> str:
        """record.json's text: without QA results the schema-1 layout (no qa, mm), which older vlascore reads."""
        return self.model_dump_json(indent=2, exclude=None if self.qa else {"qa", "mm"})


class BoardIndex(BaseModel):
    """DIR/index.json: every submission's record, for listing; rebuilt from the submission folders on write."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = BOARD_SCHEMA_VERSION
    """Version of this file's format."""
    updated_at: str = Field(default_factory=utcnow)
    """UTC time of the last rewrite."""
    submissions: list[BoardRecord] = []
    """Records in the order they were added."""


@dataclass
class Entry:
    """One stored submission as the site and `rejudge` read it."""

    record: BoardRecord
    submission: Submission
    results: RunResults
    folder: Path

    @property
    def run_dir(self) -> Path:
        return self.folder / RUN_DIR


STALE_STAGING_S = 3600.0
"""A staging folder without a lock file (from an older vlascore) is taken as abandoned after this long."""


def _claim(path: Path, wait: bool = True) -> IO[bytes] | None:
    """An exclusive lock on `path` (created if missing), held while the returned file stays open; None when another
    process holds it and `wait` is False. Without fcntl (not POSIX), an open file that locks nothing."""
    fh = open(path, "a+b")  # noqa: SIM115 - the caller holds it open as the lock
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return fh
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        fh.close()
        return None
    return fh


def slug(text: str, limit: int = 32) -> str:
    """Lower-case letters, digits and '-' only: safe in folder names and URLs whatever the display name is."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")


# -- the board -------------------------------------------------------------------------------------------
@dataclass
class RejudgeOutcome:
    """One submission's re-judge: its VLA Score under each original judgement file and under the new judge."""

    id: str
    """Submission id."""
    name: str
    """Display name."""
    label: str | None = None
    """Label of the board's new judgement file (None when the judge could not even be loaded for it)."""
    old: dict[str, float | None] = field(default_factory=dict)
    """VLA Score under each judgement file it had before (label -> value; None: nothing validly judged)."""
    new: float | None = None
    """VLA Score under the new judgement file."""
    judged: int = 0
    """Episodes the new judge gave a valid verdict."""
    failed: int = 0
    """Episodes the new judge failed on (excluded from its means)."""
    error: str | None = None
    """Why this submission could not be re-judged (the others go on)."""


class Board:
    """A board folder (see the module docstring for its layout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- layout -------------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def submissions_dir(self) -> Path:
        return self.path / SUBMISSIONS_DIR

    def folder(self, submission_id: str) -> Path:
        return self.submissions_dir / submission_id

    def check_folder(self, must_exist: bool = False) -> None:
        """Refuse a path that is a file, or a folder that is not a board yet and holds things a board never has (a
        typo'd path); a board (with its board.yaml) may hold anything else too (a README, a .git folder)."""
        if not self.path.exists():
            if must_exist:
                raise BoardError(
                    f"{self.path} is not a board folder (it does not exist); create one with "
                    "`vlascore leaderboard add BUNDLE --board DIR`"
                )
            return
        if not self.path.is_dir():
            raise BoardError(f"{self.path} is a file, not a board folder: pass a folder to --board")
        if self.config_path.is_file():
            return
        foreign = sorted(p.name for p in self.path.iterdir() if p.name not in _BOARD_ENTRIES and p.name[0] != ".")
        if foreign:
            raise BoardError(
                f"{self.path} does not look like a board folder (it holds {shown(foreign)}): pass an "
                "empty or new folder, or an existing board"
            )

    def config(self) -> BoardConfig:
        """board.yaml, or the defaults when there is none yet."""
        if not self.config_path.is_file():
            return BoardConfig()
        raw = read_yaml_mapping(self.config_path, "board config", "`title` and limits", BoardError)
        return parse_record(
            raw,
            BoardConfig,
            str(self.config_path),
            error=BoardError,
            fix="fix it, or delete it to get the defaults back",
        )

    def _write_default_config(self) -> None:
        import yaml

        text = (
            "# vlascore leaderboard settings (docs/leaderboard.md). Limits apply to every `leaderboard add`.\n"
            + yaml.safe_dump(BoardConfig().model_dump(), sort_keys=False)
        )
        atomic_write_text(self.config_path, text)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (fcntl where it exists): two adds must not race on a duplicate or the index."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        with open(self.path / LOCK_FILE, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- reading -------------------------------------------------------------------------------------------
    def records(self) -> list[BoardRecord]:
        """Every accepted submission, in the order they were added (read from the folders, not the index)."""
        out = []
        if not self.submissions_dir.is_dir():
            return []
        for path in sorted(self.submissions_dir.glob(f"*/{RECORD_FILE}")):
            fix = f"restore it from a backup, or remove {path.parent} to drop that submission"
            out.append(read_record(path, BoardRecord, error=BoardError, fix=fix))
        return sorted(out, key=lambda r: (r.added_at, r.id))

    def entry(self, record: BoardRecord) -> Entry:
        folder = self.folder(record.id)
        fix = f"remove {folder} to drop submission {record.id}, or restore it"
        submission = read_record(folder / SUBMISSION_FILE, Submission, error=BoardError, fix=fix)
        results = read_record(folder / SCORES_FILE, RunResults, error=BoardError, fix=fix)
        return Entry(record, submission, results, folder)

    def entries(self) -> list[Entry]:
        return [self.entry(r) for r in self.records()]

    def write_index(self) -> BoardIndex:
        index = BoardIndex(submissions=self.records())
        atomic_write_text(self.path / INDEX_FILE, index.model_dump_json(indent=2))
        return index

    def verify(self, record: BoardRecord) -> list[str]:
        """Problems with a stored submission: a submitted file that no longer matches its manifest entry, or a file
        neither submitted nor made by the board. [] when intact."""
        import hashlib

        folder = self.folder(record.id)
        manifest = read_record(folder / MANIFEST_FILE, Manifest, error=BoardError, fix="restore it from a backup")
        problems = []
        for name, want in manifest.files.items():
            path = folder.joinpath(*name.split("/"))
            if not path.is_file():
                problems.append(f"{name}: missing")
                continue
            data = path.read_bytes()
            if len(data) != want.size or hashlib.sha256(data).hexdigest() != want.sha256:
                problems.append(f"{name}: changed since it was submitted")
        allowed = {MANIFEST_FILE, RECORD_FILE, SCORES_FILE, *manifest.files, *(j.file for j in record.board_judgements)}
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            if path.is_file() and rel not in allowed:
                problems.append(f"{rel}: neither submitted nor made by the board")
        return problems

    # -- adding ---------------------------------------------------------------------------------------------
    def add(
        self,
        bundle: str | Path,
        *,
        limits: Limits | None = None,
        min_episodes: int | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> BoardRecord:
        """Check a bundle and store it, or raise Rejected (and leave the board as it was)."""
        say = progress or (lambda _msg: None)
        bundle = Path(bundle)
        if not bundle.is_file():
            raise Rejected(f"{bundle} is not a file", "give the path of a bundle written by `vlascore submit`")
        self.check_folder()
        if not self.path.parent.is_dir():
            raise BoardError(f"cannot create the board {self.path}: its parent folder does not exist")
        config = self.config()
        limits = limits or config.limits()
        needed = min_episodes if min_episodes is not None else config.min_episodes_per_task
        suites, judges = known_suites(self.path), known_judges(self.path)
        created = [p for p in (self.path, self.path / STAGING_DIR) if not p.exists()]
        for p in created:
            p.mkdir()
        self.remove_stale_staging()
        staging = Path(tempfile.mkdtemp(dir=self.path / STAGING_DIR, prefix="add-"))
        claim = _claim(staging.with_name(staging.name + ".lock"))  # held until this add ends, however it ends
        try:
            say(f"checking {bundle.name}")
            with open_archive(bundle, limits) as zf:
                members = checked_members(zf, limits)
                for info in members:
                    problem = layout_problem(info.filename)
                    if problem:
                        raise Rejected(problem, BUNDLE_FIX)
                say(f"extracting {len(members)} file(s), {format_bytes(sum(m.file_size for m in members))}")
                names = extract(zf, members, staging, limits)
            manifest = check_manifest(staging, names)
            self._refuse_duplicate(manifest)
            say("checking the run and recomputing its results")
            checked = check_run(staging, suites, judges, self.path, needed, config.verify_grounded)
            submission, run_record, results = checked.submission, checked.run, checked.results
            with self._locked():
                self._refuse_duplicate(manifest, checked.run_sha256)
                digest = manifest.digest()
                record = BoardRecord(
                    id="-".join(p for p in (slug(submission.name), digest[:10]) if p),
                    name=submission.name,
                    adapter=run_record.adapter,
                    reasons=submission.reasons,
                    suite=run_record.suite,
                    suite_fingerprint=run_record.suite_fingerprint,
                    protocol_version=run_record.protocol_version,
                    bundle=bundle.name,
                    manifest_sha256=digest,
                    traces_sha256=manifest.traces_digest(),
                    run_sha256=checked.run_sha256,
                    qa=checked.qa,
                    mm=checked.mm,
                    schema_version=RECORD_SCHEMA_VERSION if checked.qa else 1,
                )
                atomic_write_text(staging / RECORD_FILE, record.to_json())
                atomic_write_text(staging / SCORES_FILE, results.model_dump_json(indent=2))
                os.chmod(staging, 0o755)
                self.submissions_dir.mkdir(exist_ok=True)
                os.replace(staging, self.folder(record.id))  # one rename: the submission appears whole or not at all
                if not self.config_path.exists():
                    self._write_default_config()
                self.write_index()
            return record
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            staging.with_name(staging.name + ".lock").unlink(missing_ok=True)
            if claim is not None:
                claim.close()
            for p in reversed(created):
                try:
                    p.rmdir()  # only if the add left it empty (a rejection; or the staging parent after a success)
                except OSError:
                    pass

    def remove_stale_staging(self) -> list[str]:
        """Remove what interrupted adds left in .staging/ (a kill -9 runs no cleanup): a folder whose add no longer
        holds its lock, or, without a lock file, one older than STALE_STAGING_S. Returns the names removed."""
        root = self.path / STAGING_DIR
        removed: list[str] = []
        if not root.is_dir():
            return removed
        for folder in sorted(root.glob("add-*")):
            if folder.suffix == ".lock":
                if not folder.with_suffix("").exists() and (claim := _claim(folder, wait=False)) is not None:
                    folder.unlink(missing_ok=True)  # a lock whose folder is gone
                    claim.close()
                continue
            lock = folder.with_name(folder.name + ".lock")
            if lock.exists():
                claim = _claim(lock, wait=False)
                if claim is None:
                    continue  # an add in progress
            elif time.time() - folder.lstat().st_mtime < STALE_STAGING_S:
                continue  # an add that has not taken its lock yet
            else:
                claim = None
            shutil.rmtree(folder, ignore_errors=True)
            lock.unlink(missing_ok=True)
            if claim is not None:
                claim.close()
            removed.append(folder.name)
        return removed

    def _refuse_duplicate(self, manifest: Manifest, run_sha256: str = "") -> None:
        digest, traces = manifest.digest(), manifest.traces_digest()
        for r in self.records():
            if run_sha256 and r.run_sha256 == run_sha256:
                raise Rejected(
                    f"the same run (its run record and episodes) is already on the board as {r.id} ({r.name!r})",
                    f"to replace it, remove {self.folder(r.id)} first",
                )
            if r.manifest_sha256 == digest:
                raise Rejected(
                    f"this bundle is already on the board as {r.id} ({r.name!r})",
                    "nothing to do; to replace it, remove that submission's folder first",
                )
            if r.traces_sha256 == traces:
                raise Rejected(
                    f"the same run (identical traces) is already on the board as {r.id} ({r.name!r})",
                    f"to replace it, remove {self.folder(r.id)} first",
                )

    # -- re-judging -------------------------------------------------------------------------------------------
    def rejudge(
        self,
        judge: str,
        context: JudgeContext | None = None,
        *,
        on_start: Callable[[Entry, str], None] | None = None,
        on_done: Callable[[RejudgeOutcome], None] | None = None,
    ) -> list[RejudgeOutcome]:
        """Judge every stored submission's traces with `judge` into a new, board-made judgement file labelled
        `<label>@<effective version>` (so no submitted file is overwritten or superseded) and rescore it. A failure
        on one submission is recorded in its outcome and the others go on; a JudgeAbort (a bad key or model, which
        would fail every submission alike) stops the pass."""
        from vlascore.judging.base import JUDGES, JudgeContext
        from vlascore.judging.catalog import load_judge
        from vlascore.judging.definitions import JudgeError

        context = context or JudgeContext()
        self.check_folder(must_exist=True)
        probe = load_judge(judge, reasons=True)  # a bad judge name or file fails once, up front
        if JUDGES.get(probe.kind).calls_model and not context.endpoint.model:
            raise JudgeError(
                f"judge {probe.name!r} calls a VLM: pass --judge-model (and --base-url for a local server)"
            )
        outcomes = []
        try:
            for record in self.records():
                outcome = self._rejudge_one(record, judge, context, on_start)
                outcomes.append(outcome)
                if on_done:
                    on_done(outcome)
        finally:
            with self._locked():
                self.write_index()
        return outcomes

    def _rejudge_one(
        self,
        record: BoardRecord,
        judge: str,
        context: JudgeContext,
        on_start: Callable[[Entry, str], None] | None,
    ) -> RejudgeOutcome:
        from vlascore.judging.base import JUDGES
        from vlascore.judging.catalog import load_judge
        from vlascore.judging.definitions import JudgeError
        from vlascore.judging.endpoint import JudgeAbort
        from vlascore.judging.engine import judge_run, label_for

        outcome = RejudgeOutcome(record.id, record.name)
        try:
            entry = self.entry(record)
            spec = load_judge(judge, reasons=record.reasons)
            used_model = context.endpoint.model if JUDGES.get(spec.kind).calls_model else None
            label = outcome.label = f"{label_for(spec, used_model)}@{spec.effective_version}"
            outcome.old = {v.label: v.vla_score.value for v in entry.results.vla if v.label != label}
            if on_start:
                on_start(entry, label)
            result = judge_run(entry.run_dir, judge, context, label=label)
            with self._locked():  # record the file as the board's before anything else can fail
                if all(j.label != label for j in record.board_judgements):
                    record.board_judgements.append(
                        BoardJudgement(
                            label=label,
                            file=f"{RUN_DIR}/{JUDGEMENTS_DIR}/{label}.json",
                            judge=result.judge,
                            judge_version=result.judge_version,
                            judge_model=result.judge_model,
                        )
                    )
                    atomic_write_text(entry.folder / RECORD_FILE, record.to_json())
            run = load_run(entry.run_dir)
            try:
                results = score_run(run)
            finally:
                run.store.close()
            mine = next(v for v in results.vla if v.label == label)
            outcome.new, outcome.judged, outcome.failed = mine.vla_score.value, mine.judged, mine.failed
            with self._locked():
                atomic_write_text(entry.folder / SCORES_FILE, results.model_dump_json(indent=2))
        except JudgeAbort:
            raise  # it would fail the same way on every submission (a bad key, an unknown model)
        except Exception as exc:  # noqa: BLE001 - one submission's failure must not stop the others
            known = isinstance(exc, StoreError | JudgeError)
            outcome.error = str(exc) if known else f"{type(exc).__name__}: {exc}"
        return outcome
