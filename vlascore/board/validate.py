"""The checks a submission bundle passes on its way onto a board, after archive.py extracted it safely.

In order, the first failure rejecting the bundle (Rejected: the problem and its fix): MANIFEST.json (present,
valid, every listed file there with its sha256 and size, nothing unlisted); the schemas of submission.json,
results.json and run/run.json (a newer schema_version: upgrade vlascore); the traces database's shape (plain
SQLite, exactly the store's two tables as it declares them, no damaged page: reading it runs no code); a known
suite fingerprint, and the frozen suite spec hashing to it; known judge versions, one per judgement file; the
recorded evidence (evidence.py: every row a valid record, each instruction the suite's or plain words, each
frames file an episode's own with the shape its task allows); coverage (every task of the suite, the first N
seeds of each, N >= the board's minimum, the traces matching that plan, no missing or unjudged episodes); and
honesty: the board scores the traces and judgement files itself and every figure of
results.json, and every checkable claim of submission.json, must equal its own; verdicts of the grounded judge
(offline and deterministic) are re-run and must match too. QA results (run/qa/) are checked by board/qa.py:
figures that do not add up are refused, and submission.json's QA figures and MM must equal the recomputed ones.
"""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from vlascore.board.bundle import (
    MANIFEST_FILE,
    RESULTS_FILE,
    RUN_DIR,
    SUBMISSION_FILE,
    Manifest,
    Submission,
    completeness_problems,
    coverage_problems,
    make_submission,
)
from vlascore.board.errors import BUNDLE_FIX, BoardError, Rejected, read_bundled, shown
from vlascore.board.evidence import (
    bound_queries,
    check_database,
    check_frames,
    check_instructions,
    check_rows,
    run_digest,
)
from vlascore.board.qa import QA_DIR, QAFigure, check_qa
from vlascore.judging.definitions import JudgeSpec
from vlascore.judging.judgement import JUDGEMENTS_DIR, JudgementFile
from vlascore.qa.summary import Summary
from vlascore.records import EpisodeRecord, RunRecord
from vlascore.scoring import RunResults, read_judgement_files, score_run
from vlascore.store import DB_FILE, FRAMES_DIR, RUN_FILE, LoadedRun, StoreError, load_run
from vlascore.suites import Suite, SuiteError, builtin_suite_paths, load_suite_file
from vlascore.versioned import first_error

SUITES_DIR = "suites"
JUDGES_DIR = "judges"
_REL_TOL = 1e-9
"""Relative tolerance when comparing submitted and recomputed figures (only float summation order may differ)."""

M = TypeVar("M", bound=BaseModel)


def differences(submitted: Any, recomputed: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, as `path: submitted X, recomputed Y` (floats within a relative 1e-9)."""
    if isinstance(submitted, dict) and isinstance(recomputed, dict):
        out = []
        for key in sorted(set(submitted) | set(recomputed), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in submitted or key not in recomputed:
                out.append(f"{sub}: {'missing' if key not in submitted else 'extra'} in the submitted file")
            else:
                out += differences(submitted[key], recomputed[key], sub)
        return out
    if isinstance(submitted, list) and isinstance(recomputed, list):
        if len(submitted) != len(recomputed):
            return [f"{path}: {len(submitted)} entries submitted, {len(recomputed)} recomputed"]
        return [
            d
            for i, (a, b) in enumerate(zip(submitted, recomputed, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    numbers = (int, float)
    if (
        isinstance(submitted, numbers)
        and isinstance(recomputed, numbers)
        and not isinstance(submitted, bool)
        and not isinstance(recomputed, bool)
    ):
        if math.isclose(submitted, recomputed, rel_tol=_REL_TOL, abs_tol=1e-12):
            return []
    elif submitted == recomputed:
        return []
    return [f"{path}: submitted {submitted!r}, recomputed {recomputed!r}"]


# -- the board's reference data ----------------------------------------------------------------------------
def known_suites(board_dir: Path) -> dict[str, Suite]:
    """Fingerprint -> suite, for the built-in suites and DIR/suites/*.yaml (a broken board suite is an error the
    owner must fix; a built-in that does not load is skipped)."""
    out: dict[str, Suite] = {}
    for path in builtin_suite_paths().values():
        try:
            suite = load_suite_file(path)
        except SuiteError:
            continue
        out.setdefault(suite.fingerprint, suite)
    folder = board_dir / SUITES_DIR
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []:
        try:
            suite = load_suite_file(path)
        except SuiteError as exc:
            raise BoardError(f"the board's suite file is broken: {exc}; fix or remove {path}") from None
        out.setdefault(suite.fingerprint, suite)
    return out


def known_judges(board_dir: Path) -> dict[tuple[str, str], JudgeSpec]:
    """(judge name, effective version) -> its definition, for the built-in judges and DIR/judges/*.yaml."""
    from vlascore.judging.catalog import builtin_judge_paths, load_judge_file
    from vlascore.judging.definitions import JudgeError

    out: dict[tuple[str, str], JudgeSpec] = {}
    for path in builtin_judge_paths().values():
        try:
            spec = load_judge_file(path)
        except JudgeError:
            continue  # not a judge definition (or a broken one): nothing to accept
        out.setdefault((spec.name, spec.effective_version), spec)
    folder = board_dir / JUDGES_DIR
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []:
        try:
            spec = load_judge_file(path)
        except JudgeError as exc:
            raise BoardError(f"the board's judge file is broken: {exc}; fix or remove {path}") from None
        out.setdefault((spec.name, spec.effective_version), spec)
    return out


# -- checks of an extracted bundle -------------------------------------------------------------------------


def check_manifest(root: Path, names: list[str]) -> Manifest:
    """MANIFEST.json present and valid, every listed file present with its hash and size, nothing unlisted."""
    if MANIFEST_FILE not in names:
        raise Rejected(f"the bundle has no {MANIFEST_FILE}", BUNDLE_FIX)
    manifest = read_bundled(root / MANIFEST_FILE, Manifest, MANIFEST_FILE)
    present = set(names) - {MANIFEST_FILE}
    listed = set(manifest.files)
    if MANIFEST_FILE in listed:
        raise Rejected(f"{MANIFEST_FILE} lists itself", BUNDLE_FIX)
    missing = sorted(listed - present)
    if missing:
        raise Rejected(f"{MANIFEST_FILE} lists file(s) the bundle does not hold: {shown(missing)}", BUNDLE_FIX)
    unlisted = sorted(present - listed)
    if unlisted:
        raise Rejected(f"the bundle holds file(s) {MANIFEST_FILE} does not list: {shown(unlisted)}", BUNDLE_FIX)
    for name, entry in sorted(manifest.files.items()):
        path = root.joinpath(*name.split("/"))
        size = path.stat().st_size
        if size != entry.size:
            raise Rejected(
                f"{name} is {size} bytes, but {MANIFEST_FILE} says {entry.size}: it was changed after packing",
                BUNDLE_FIX,
            )
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != entry.sha256:
            raise Rejected(
                f"{name} does not match its sha256 in {MANIFEST_FILE}: it was changed after packing", BUNDLE_FIX
            )
    for required in (SUBMISSION_FILE, RESULTS_FILE, f"{RUN_DIR}/{RUN_FILE}", f"{RUN_DIR}/{DB_FILE}"):
        if required not in listed:
            raise Rejected(f"the bundle has no {required}", BUNDLE_FIX)
    return manifest


def _check_suite(record: RunRecord, suites: dict[str, Suite], board_dir: Path) -> Suite:
    suite = suites.get(record.suite_fingerprint)
    if suite is None:
        raise Rejected(
            f"suite {record.suite!r} with fingerprint {record.suite_fingerprint} is not one this board "
            "accepts (neither a built-in suite nor one in its suites/ folder)",
            f"run a built-in suite unchanged, or ask the board owner to place that suite's YAML in "
            f"{board_dir / SUITES_DIR}/",
        )
    try:
        frozen = Suite.model_validate(record.suite_spec)
    except ValidationError as exc:
        raise Rejected(f"run.json's frozen suite spec does not validate ({first_error(exc)})", BUNDLE_FIX) from None
    if frozen.fingerprint != record.suite_fingerprint:
        raise Rejected(
            f"run.json's frozen suite spec hashes to {frozen.fingerprint}, not to the fingerprint it "
            f"claims ({record.suite_fingerprint}): run.json was edited",
            "submit the run as recorded",
        )
    return suite


def _check_judges(
    files: list[JudgementFile], judges: dict[tuple[str, str], JudgeSpec], board_dir: Path, run_dir: Path
) -> None:
    folder = run_dir / JUDGEMENTS_DIR
    stems = {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()
    for jf in files:
        where = f"{RUN_DIR}/{JUDGEMENTS_DIR}/{jf.label}.json"
        if jf.label not in stems:
            raise Rejected(
                f"a judgement file is labelled {jf.label!r} but is not named {jf.label}.json",
                "re-run `vlascore judge`; do not rename judgement files",
            )
        if (jf.judge, jf.judge_version) not in judges:
            versions = sorted(v for n, v in judges if n == jf.judge)
            known = f"this board knows {jf.judge} {', '.join(versions)}" if versions else f"no judge {jf.judge!r}"
            raise Rejected(
                f"{where} was judged by {jf.judge} version {jf.judge_version}, which this board does not "
                f"accept ({known})",
                "judge with an unmodified built-in judge (`vlascore judge RUN -j grounded` or "
                "-j vla-score), or ask the board owner to place your judge YAML in "
                f"{board_dir / JUDGES_DIR}/",
            )
        odd = sorted(
            {
                j.episode_id
                for j in jf.judgements
                if (j.judge, j.judge_version, j.judge_model) != (jf.judge, jf.judge_version, jf.judge_model)
            }
        )
        if odd:
            raise Rejected(
                f"{where} mixes judge versions or models (episodes {shown(odd)} differ from the file's "
                f"{jf.judge} {jf.judge_version})",
                "re-run the judge pass so one version judges every episode",
            )


def _check_coverage(run: LoadedRun, episodes: list[EpisodeRecord], suite: Suite, min_episodes: int) -> None:
    """Every task, the first N seeds of each (N >= min_episodes), and the episodes table matching that plan."""
    record: RunRecord = run.run
    wanted = [t.id for t in suite.tasks]
    for problem, fix in coverage_problems(record, suite):  # what `submit` refuses too
        raise Rejected(problem, fix)
    extra = [t for t in record.tasks if t not in wanted] + [t for t in record.seeds if t not in wanted]
    if extra:
        raise Rejected(f"the run has task(s) the suite does not: {shown(sorted(set(extra)))}", BUNDLE_FIX)
    for task in suite.tasks:
        seeds = record.seeds.get(task.id, [])
        if len(seeds) < min_episodes:
            raise Rejected(
                f"task {task.id} has {len(seeds)} episode(s); this board needs at least {min_episodes} per task",
                f"extend the run: `vlascore run ... --episodes {min_episodes} --resume`",
            )
    planned = {f"{t}-{s}": (t, s) for t, seeds in record.seeds.items() for s in seeds}
    recorded = {e.episode_id: (e.task, e.seed) for e in episodes}
    unplanned = sorted(e for e in recorded if e not in planned or recorded[e] != planned[e])
    if unplanned:
        raise Rejected(
            f"the traces hold episode(s) that are not in run.json's seed plan: {shown(unplanned)}",
            "submit the run as recorded",
        )


def _check_claims(
    submission: Submission,
    record: RunRecord,
    submitted: RunResults,
    recomputed: RunResults,
    qa: list[QAFigure],
    mm: Summary | None,
) -> None:
    """submission.json and results.json must say what the bundled run (and its QA results) say."""
    for what, claimed, actual in (
        ("run_id", submitted.run_id, record.run_id),
        ("suite_fingerprint", submitted.suite_fingerprint, record.suite_fingerprint),
    ):
        if claimed != actual:
            raise Rejected(f"{RESULTS_FILE} is for {what} {claimed!r}, but the bundled run is {actual!r}", BUNDLE_FIX)
    expected = make_submission(record, recomputed, submission.name, submission.url, submission.notes, qa, mm)
    diffs = differences(
        submission.model_dump(mode="json", exclude=_FREE_FIELDS), expected.model_dump(mode="json", exclude=_FREE_FIELDS)
    )
    if diffs:
        raise Rejected(f"{SUBMISSION_FILE} does not match the bundled run: {shown(diffs)}", BUNDLE_FIX)
    diffs = differences(
        submitted.model_dump(mode="json", exclude={"scored_at"}),
        recomputed.model_dump(mode="json", exclude={"scored_at"}),
    )
    if diffs:
        raise Rejected(
            f"{RESULTS_FILE} differs from the board's recomputation from the traces and judgement files: "
            f"{shown(diffs)}",
            "submit the figures `vlascore submit` computes (same vlascore version as the board); "
            "results are never edited by hand",
        )


_FREE_FIELDS = {"name", "url", "notes", "vlascore_version", "git_revision", "created_at", "schema_version"}
"""Fields of submission.json that are the submitter's to state; every other one is checked against the run."""


def _check_grounded_verdicts(
    run: LoadedRun, files: list[JudgementFile], judges: dict[tuple[str, str], JudgeSpec]
) -> None:
    """Re-run every judgement file of a grounded judge (offline and deterministic, so cheap and exact) and refuse
    verdicts that differ: the honesty check proper only re-does the arithmetic over the verdicts it is given."""
    from vlascore.judging.base import JUDGES
    from vlascore.judging.definitions import JudgeError
    from vlascore.judging.engine import judge_inputs, make_judge
    from vlascore.judging.inputs import episode_inputs

    for jf in files:
        spec = judges[(jf.judge, jf.judge_version)]
        if not JUDGES.get(spec.kind).reproducible:
            continue
        ok = [j for j in jf.judgements if j.status == "ok"]
        try:
            judge = make_judge(run, spec.source)
            fresh = judge_inputs(judge, episode_inputs(run, [j.episode_id for j in ok]))
        except (JudgeError, KeyError, ValueError, StoreError) as exc:
            raise Rejected(
                f"cannot re-run the grounded judge of {RUN_DIR}/{JUDGEMENTS_DIR}/{jf.label}.json ({exc})", BUNDLE_FIX
            ) from None
        by_id = {f.episode_id: f for f in fresh}
        differ = [j.episode_id for j in ok if by_id[j.episode_id].scores != j.scores]
        if differ:
            raise Rejected(
                f"{RUN_DIR}/{JUDGEMENTS_DIR}/{jf.label}.json: the board's own run of {jf.judge} "
                f"{jf.judge_version} gives other scores for episode(s) {shown(differ)}: the verdicts were "
                "edited, or made by another vlascore version's judge code",
                "judge with the vlascore version the board runs (`vlascore judge RUN -j grounded`), "
                "or ask the board owner to set verify_grounded: false in board.yaml",
            )


@dataclass
class Checked:
    """A bundle that passed every check but the duplicate one (the board makes that under its lock)."""

    submission: Submission
    run: RunRecord
    results: RunResults
    """The board's own recomputation (equal to the submitted results.json)."""
    qa: list[QAFigure]
    """The run's QA results, checked (equal to submission.json's)."""
    mm: Summary | None
    """MM over them (None: no QA results)."""
    run_sha256: str
    """The run's identity (evidence.py: run_digest)."""


def check_run(
    root: Path,
    suites: dict[str, Suite],
    judges: dict[tuple[str, str], JudgeSpec],
    board_dir: Path,
    min_episodes: int,
    verify_grounded: bool = True,
) -> Checked:
    """Every check after the manifest's, on the bundle extracted at `root`."""
    submission = read_bundled(root / SUBMISSION_FILE, Submission, SUBMISSION_FILE)
    submitted = read_bundled(root / RESULTS_FILE, RunResults, RESULTS_FILE)
    run_dir = root / RUN_DIR
    record = read_bundled(run_dir / RUN_FILE, RunRecord, f"{RUN_DIR}/{RUN_FILE}")
    check_database(run_dir / DB_FILE)
    suite = _check_suite(record, suites, board_dir)
    try:
        files = read_judgement_files(run_dir)
    except StoreError as exc:
        raise Rejected(str(exc).replace(str(root) + os.sep, ""), BUNDLE_FIX) from None
    _check_judges(files, judges, board_dir, run_dir)
    try:
        run = load_run(run_dir)
        bound_queries(run.store.conn)
    except StoreError as exc:
        raise Rejected(str(exc).replace(str(root) + os.sep, ""), BUNDLE_FIX) from None
    try:
        episodes = check_rows(run)
        _check_coverage(run, episodes, suite, min_episodes)
        check_instructions(episodes, suite)
        frames = run_dir / FRAMES_DIR
        check_frames(run, episodes, suite, {p.name for p in frames.iterdir()} if frames.is_dir() else set())
        try:
            recomputed = score_run(run, judgements=files)  # exactly the files checked above
        except (StoreError, KeyError, ValueError, TypeError, sqlite3.Error) as exc:
            raise Rejected(f"cannot score the bundled run ({type(exc).__name__}: {exc})", BUNDLE_FIX) from None
        if verify_grounded:
            _check_grounded_verdicts(run, files, judges)
    finally:
        run.store.close()
    for problem, fix in completeness_problems(recomputed):
        raise Rejected(problem, fix)
    qa, mm = check_qa(run_dir, record.adapter, f"{RUN_DIR}/{QA_DIR}")
    _check_claims(submission, record, submitted, recomputed, qa, mm)
    return Checked(submission, record, recomputed, qa, mm, run_digest(record, episodes))
