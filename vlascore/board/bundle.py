"""Submission bundles: what `vlascore submit RUN -o bundle.zip` packs and `vlascore leaderboard add` checks.

A bundle is a zip holding

    submission.json   Submission: who and what (display name, adapter + config, suite fingerprint, judges...)
    results.json      RunResults as `vlascore score` computes it (the board recomputes it and compares)
    run/run.json      the run's RunRecord
    run/traces.sqlite the run's episodes and steps
    run/frames/*.npz  the frames of every episode
    run/judgements/*.json  the run's judgement files (not judgements/superseded/ or audit/)
    run/qa/*.json, run/qa/*.samples.jsonl  the run's QA results and their samples, when it has any (board/qa.py;
                      not qa/work/ or qa/superseded/)
    MANIFEST.json     Manifest: sha256 and size of every other file

The traces travel with the numbers so a board can recompute every figure, re-judge with another judge and
build each model's report; the manifest makes tampering in transit (or a hand-edited file) visible.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vlascore._version import __version__
from vlascore.board.errors import BoardError, shown
from vlascore.board.qa import QA_DIR, QAFigure, check_qa, is_qa_file, qa_files
from vlascore.judging.judgement import JUDGEMENTS_DIR, Mode
from vlascore.provenance import git_revision
from vlascore.qa.summary import Summary
from vlascore.records import RunRecord, utcnow
from vlascore.scoring import RunResults, score_run
from vlascore.store import DB_FILE, FRAMES_DIR, RUN_FILE, LoadedRun, atomic_write, load_run
from vlascore.suites import Suite

SUBMISSION_SCHEMA_VERSION = 2
"""2 added `qa` and `mm`. A submission without QA results is still written as 1, which older boards read."""
MANIFEST_SCHEMA_VERSION = 1
SUBMISSION_FILE = "submission.json"
RESULTS_FILE = "results.json"
MANIFEST_FILE = "MANIFEST.json"
RUN_DIR = "run"
MAX_NAME_CHARS = 200
MAX_NOTES_CHARS = 5000
_LEAF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
"""Frames and judgement file names a bundle may hold: no '@', which the board keeps for its own judgements."""
_HTTP_URL = re.compile(r"https?://[^\s<>\"']+", re.I)
_CHUNK = 1 << 20


class JudgeSummary(BaseModel):
    """One judgement file of the run, as the submitter's scoring saw it."""

    model_config = ConfigDict(extra="forbid")
    label: str
    """Judgement file label: run/judgements/<label>.json."""
    judge: str
    """Judge definition name (grounded, vla-score-reasoning, vla-score-specialist, or the submitter's own)."""
    judge_version: str
    """Effective judge version (declared version + hash of its settings and templates)."""
    judge_model: str | None
    """Model behind a VLM judge; None for the grounded judge."""
    mode: Mode
    """`reasoning` (R, A, I, RA judged) or `specialist` (A and I)."""
    judged: int
    """Episodes with a valid verdict."""
    failed: int
    """Judgements that failed (no valid verdict): excluded from the means and counted."""


class Submission(BaseModel):
    """What a bundle claims to be; every figure in it is checked against the bundled run by the board."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = SUBMISSION_SCHEMA_VERSION
    """Version of this record's format."""
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    """Display name of the model on the leaderboard (default: the run's adapter name)."""
    url: str | None = Field(default=None, max_length=2000)
    """Homepage, paper or code of the model; only http(s) URLs are shown as links."""
    notes: str | None = Field(default=None, max_length=MAX_NOTES_CHARS)
    """Free text shown next to the model (checkpoint, settings, caveats)."""
    run_id: str
    """Name of the bundled run."""
    adapter: str
    """Registered adapter name that produced the run."""
    adapter_config: dict[str, Any] = {}
    """Options the adapter was built with."""
    reasons: bool
    """Whether the adapter declared that it reasons (judged as a reasoning or a specialist policy)."""
    suite: str
    """Suite name."""
    suite_fingerprint: str
    """Fingerprint of the normalised suite spec the run used."""
    protocol_version: str
    """Protocol version of the suite."""
    backend: str
    """Simulator backend of the run."""
    judges: list[JudgeSummary] = []
    """The run's judgement files with their effective judge versions and models; empty: success only."""
    episodes_per_task: dict[str, int]
    """Task id -> episodes recorded (completed and errored)."""
    package_versions: dict[str, str] = {}
    """Versions of the packages the run was made with (from run.json)."""
    run_vlascore_version: str
    """vlascore version that recorded the run."""
    vlascore_version: str
    """vlascore version that scored results.json and packed the bundle."""
    git_revision: str | None = None
    """Git commit of the vlascore source tree that packed the bundle, when packed from a checkout."""
    created_at: str = Field(default_factory=utcnow)
    """UTC time the bundle was packed (ISO 8601)."""
    qa: list[QAFigure] = []
    """The run's QA benchmarks (run/qa/), in benchmarks.yaml order; empty: none (schema 2)."""
    mm: Summary | None = None
    """MM over the benchmarks with a score, with the columns it averaged and those missing; None: no QA results."""

    def to_json(self) -> str:
        """submission.json's text: without QA results the schema-1 layout (no qa, mm), which older boards read."""
        return self.model_dump_json(indent=2, exclude=None if self.qa else {"qa", "mm"})


class ManifestEntry(BaseModel):
    """One file of a bundle."""

    model_config = ConfigDict(extra="forbid")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """Hex sha256 of the file's bytes."""
    size: int = Field(ge=0)
    """Size in bytes."""


class Manifest(BaseModel):
    """MANIFEST.json: every other file of the bundle with its hash and size (and nothing else may be there)."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = MANIFEST_SCHEMA_VERSION
    """Version of this record's format."""
    files: dict[str, ManifestEntry]
    """Path inside the zip ('/'-separated) -> hash and size."""

    def digest(self, prefix: str = "", exclude: str | tuple[str, ...] | None = None) -> str:
        """sha256 of the canonical listing of the files under `prefix` (all: the bundle's content hash)."""
        listing = {
            k: v.model_dump()
            for k, v in sorted(self.files.items())
            if k.startswith(prefix) and not (exclude and k.startswith(exclude))
        }
        return hashlib.sha256(json.dumps(listing, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def traces_digest(self) -> str:
        """Hash of the run's recorded evidence (run.json, traces, frames), judgements and QA results excluded: the
        same run packed twice, or re-judged (or QA-scored) and packed again, has the same traces digest."""
        return self.digest(f"{RUN_DIR}/", exclude=(f"{RUN_DIR}/{JUDGEMENTS_DIR}/", f"{RUN_DIR}/{QA_DIR}/"))


def layout_problem(name: str) -> str | None:
    """Why `name` has no place in a bundle, or None."""
    fixed = {MANIFEST_FILE, SUBMISSION_FILE, RESULTS_FILE, f"{RUN_DIR}/{RUN_FILE}", f"{RUN_DIR}/{DB_FILE}"}
    if name in fixed:
        return None
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == RUN_DIR and _LEAF.fullmatch(parts[2]):
        if parts[1] == FRAMES_DIR and parts[2].endswith(".npz"):
            return None
        if parts[1] == JUDGEMENTS_DIR and parts[2].endswith(".json"):
            return None
        if parts[1] == QA_DIR and is_qa_file(parts[2]):
            return None
    return (
        f"{name!r} is not part of a bundle, which holds only {MANIFEST_FILE}, {SUBMISSION_FILE}, {RESULTS_FILE} "
        f"and run/{RUN_FILE}, run/{DB_FILE}, run/{FRAMES_DIR}/*.npz, run/{JUDGEMENTS_DIR}/*.json, "
        f"run/{QA_DIR}/*.json and *.samples.jsonl (file names of letters, digits and ._+-)"
    )


def completeness_problems(results: RunResults) -> list[tuple[str, str]]:
    """(problem, fix) for what makes a run's figures partial: planned episodes missing, episodes a judgement
    file has no verdict for. The submitter's `submit` and the board's `add` refuse the same things."""
    problems = []
    if results.missing:
        problems.append(
            (
                f"run {results.run_id!r} is missing {results.missing} planned episode(s)",
                "finish it with `vlascore run ... --resume` before submitting",
            )
        )
    for v in results.vla:
        if v.unjudged:
            problems.append(
                (
                    f"judgement file {v.label!r} has no verdict for {v.unjudged} episode(s)",
                    f"judge them (`vlascore judge RUN -j {v.judge}`), or delete "
                    f"judgements/{v.label}.json to submit without it",
                )
            )
    return problems


def coverage_problems(record: RunRecord, suite: Suite) -> list[tuple[str, str]]:
    """(problem, fix) where the run does not cover `suite` the way a board needs: every task, the first N seeds of
    each. `submit` refuses them up front; the board's `add` refuses the same (and its minimum N on top)."""
    wanted = [t.id for t in suite.tasks]
    absent = [t for t in wanted if t not in record.tasks]
    if absent:
        problem = f"the run covers {len(record.tasks)} of the suite's {len(wanted)} tasks (missing: {shown(absent)})"
        return [(problem, f"run every task of suite {suite.name!r} (no --tasks) and submit again")]
    problems = []
    for task in suite.tasks:
        seeds = record.seeds.get(task.id, [])
        if seeds != task.seeds[: len(seeds)]:
            first = shown([str(s) for s in task.seeds[: len(seeds)]])
            problem = (
                f"task {task.id}: seeds {shown([str(s) for s in seeds])} are not the first {len(seeds)} seeds "
                f"of the suite ({first}): cherry-picked or reordered seeds are not comparable"
            )
            problems.append((problem, "run with `vlascore run --episodes N`, which takes the first N seeds"))
    return problems


def is_http_url(url: str | None) -> bool:
    """Only these become links on the site (no javascript:, data: or relative URLs)."""
    return bool(url) and _HTTP_URL.fullmatch(url or "") is not None


def run_files(run: LoadedRun) -> list[tuple[str, Path]]:
    """(name in the bundle, file) of everything a bundle carries from the run, in a stable order."""
    files = [(f"{RUN_DIR}/{RUN_FILE}", run.path / RUN_FILE), (f"{RUN_DIR}/{DB_FILE}", run.path / DB_FILE)]
    for episode in run.store.episode_records():  # validated: a frames file is frames/<episode id>.npz, nothing else
        if episode.frames_file is None:
            continue
        path = run.store.frames_path(episode.episode_id)
        if not path.is_file() or path.is_symlink():
            raise BoardError(
                f"episode {episode.episode_id!r} of {run.path} names its frames file {episode.frames_file}, which is "
                "missing (or a link): the run is damaged; re-run it (or the episode) before submitting"
            )
        files.append((f"{RUN_DIR}/{FRAMES_DIR}/{path.name}", path))
    folder = run.path / JUDGEMENTS_DIR
    if folder.is_dir():  # the same files the scoring reads: *.json, not writers' dot temp files
        files += [
            (f"{RUN_DIR}/{JUDGEMENTS_DIR}/{p.name}", p)
            for p in sorted(folder.glob("*.json"))
            if not p.name.startswith(".")
        ]
    return files + [(f"{RUN_DIR}/{QA_DIR}/{name}", path) for name, path in qa_files(run.path)]


def make_submission(
    rec: RunRecord,
    results: RunResults,
    name: str | None = None,
    url: str | None = None,
    notes: str | None = None,
    qa: list[QAFigure] | None = None,
    mm: Summary | None = None,
) -> Submission:
    """The submission record of a run, its results and its checked QA results (board/qa.py: check_qa); the board
    rebuilds it to check a bundle's claims."""
    return Submission(
        schema_version=SUBMISSION_SCHEMA_VERSION if qa else 1,
        qa=qa or [],
        mm=mm,
        name=name or rec.adapter,
        url=url or None,
        notes=notes or None,
        run_id=rec.run_id,
        adapter=rec.adapter,
        adapter_config=rec.adapter_config,
        reasons=bool(rec.adapter_info.get("reasons", False)),
        suite=rec.suite,
        suite_fingerprint=rec.suite_fingerprint,
        protocol_version=rec.protocol_version,
        backend=rec.backend,
        judges=[
            JudgeSummary(
                label=v.label,
                judge=v.judge,
                judge_version=v.judge_version,
                judge_model=v.judge_model,
                mode=v.mode,
                judged=v.judged,
                failed=v.failed,
            )
            for v in results.vla
        ],
        episodes_per_task={t.task: t.episodes for t in results.tasks},
        package_versions=rec.package_versions,
        run_vlascore_version=rec.vlascore_version,
        vlascore_version=__version__,
        git_revision=git_revision(),
    )


def _put(zf: zipfile.ZipFile, name: str, source: IO[bytes], manifest: dict[str, ManifestEntry]) -> None:
    """Stream `source` into the zip, hashing exactly the bytes written (a file changing meanwhile cannot make the
    manifest disagree with the archive)."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
    # Frames are compressed npz already; deflating them again costs time and saves nothing.
    info.compress_type = zipfile.ZIP_STORED if name.endswith(".npz") else zipfile.ZIP_DEFLATED
    digest, size = hashlib.sha256(), 0
    with zf.open(info, "w", force_zip64=True) as out:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    manifest[name] = ManifestEntry(sha256=digest.hexdigest(), size=size)


@dataclass
class Packed:
    """What `pack` wrote."""

    path: Path
    submission: Submission
    results: RunResults
    manifest: Manifest


def write_bundle(run: LoadedRun, results: RunResults, submission: Submission, out: str | Path) -> Packed:
    """Write the bundle atomically (temp file + rename), without the checks `pack` makes."""
    import io

    out = Path(out)
    files: dict[str, ManifestEntry] = {}
    documents = {SUBMISSION_FILE: submission.to_json(), RESULTS_FILE: results.model_dump_json(indent=2)}

    def write(fh: IO[bytes]) -> None:
        with zipfile.ZipFile(fh, "w") as zf:
            for name, text in documents.items():
                _put(zf, name, io.BytesIO(text.encode()), files)
            for name, path in run_files(run):
                with open(path, "rb") as src:
                    _put(zf, name, src, files)
            manifest = Manifest(files=files)
            info = zipfile.ZipInfo(MANIFEST_FILE, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            zf.writestr(info, manifest.model_dump_json(indent=2), compress_type=zipfile.ZIP_DEFLATED)

    atomic_write(out, write)
    return Packed(out, submission, results, Manifest(files=files))


def pack(
    run_dir: str | Path, out: str | Path, name: str | None = None, url: str | None = None, notes: str | None = None
) -> Packed:
    """Re-score the run and pack it into a bundle; refuses (BoardError / StoreError, with the fix) a folder that
    is not a run (QA results alone included), a run still being written, a run with missing planned episodes or
    unjudged episodes, QA results whose figures do not add up."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file() and qa_files(run_dir):
        raise BoardError(
            f"{run_dir} holds QA results only (no {RUN_FILE}): a leaderboard submission is a simulated "
            "run; give `vlascore qa` the simulated run's directory as --out to submit QA results "
            "with it"
        )
    run = load_run(run_dir)  # StoreError: not a run directory
    try:
        for suffix in ("-journal", "-wal"):
            if (run.path / f"{DB_FILE}{suffix}").exists():
                raise BoardError(
                    f"{run.path / DB_FILE} has a {suffix[1:]} file next to it: the run is being written "
                    "or was interrupted mid-episode; let it finish (or `vlascore run ... --resume`) "
                    "and submit again"
                )
        if url and not is_http_url(url):
            raise BoardError(f"--url {url!r} is not an http(s) URL: give e.g. https://github.com/you/model")
        results = score_run(run)
        problems = coverage_problems(run.run, Suite.model_validate(run.run.suite_spec))
        problems += completeness_problems(results)
        if problems:
            raise BoardError("; ".join(f"{p}: {fix}" for p, fix in problems))
        for bundle_name, _ in run_files(run):
            problem = layout_problem(bundle_name)
            if problem:
                raise BoardError(f"cannot pack {run.path}: {problem}; rename the file or the suite's task ids")
        qa, mm = check_qa(run.path, run.run.adapter)  # the board's checks: refuse here what it would refuse
        try:
            submission = make_submission(run.run, results, name, url, notes, qa, mm)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise BoardError(f"invalid {field} for the submission: {first['msg']}: shorten or fix it") from None
        return write_bundle(run, results, submission, out)
    finally:
        run.store.close()
