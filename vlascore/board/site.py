"""The static leaderboard site: `vlascore leaderboard build DIR -o SITE`.

HELM's idiom: the data first, then the pages from the data only. The build writes SITE/data/board.json
(SiteData: every table's rows with their intervals and counts), then renders SITE/index.html from that JSON
with the jinja2 templates in leaderboard/templates/board/ (autoescaped, StrictUndefined). Per model it writes
SITE/models/<id>/report.html (vlascore's run report) and copies the raw submission.json and results.json (plus
the board's own board-results.json, which includes the board's re-judgements).

One section per suite (fingerprint) and, inside it, one per judge configuration (judge, effective version,
model): a table never mixes suites or judge versions, since their numbers are not comparable. Each judge
section has the reasoning-policy table (the DualVLA paper's Table 5: Sim., R, A, I, RA, VLA Score) and the
specialist one (Table 4: Sim., A, I, VLA Score); each suite has a success-only table over all submissions.
Submissions with QA results (run/qa/) are also listed in the Multimodal QA section: one table per set of MM
columns (and subset sizes), so MM is ranked only among submissions that averaged the same benchmarks on the same
questions.

Reports are the slow part, so each model's report is rebuilt only when its inputs change: the key hashes the
submission id, its judgement files and the vlascore version (`--force` rebuilds all).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from vlascore._version import __version__
from vlascore.board.board import SCORES_FILE, Board, Entry
from vlascore.board.bundle import RESULTS_FILE, SUBMISSION_FILE, is_http_url
from vlascore.board.errors import BoardError
from vlascore.board.qa import QAFigure
from vlascore.judging.judgement import JUDGEMENTS_DIR, Mode
from vlascore.qa.benchmarks import load_benchmarks
from vlascore.qa.summary import Summary
from vlascore.records import utcnow
from vlascore.scoring import Estimate, VlaScoreResult
from vlascore.store import atomic_write, atomic_write_text

SITE_SCHEMA_VERSION = 2
"""2 added `qa`."""
DATA_FILE = "data/board.json"
INDEX_PAGE = "index.html"
MODELS_DIR = "models"
REPORT_PAGE = "report.html"
BOARD_RESULTS_FILE = "board-results.json"
REPORT_KEY_FILE = ".report-key"
TEMPLATE = "board/index.html.j2"
PLOTLY_FILE = "assets/plotly.min.js"
"""One copy of plotly.js for every model's report (inlined, it would add 3.5 MB to each)."""


class ModelRef(BaseModel):
    """A submission as every table row shows it."""

    model_config = ConfigDict(extra="forbid")
    id: str
    """Submission id (also its folder under models/)."""
    name: str
    """Display name (escaped when rendered)."""
    url: str | None
    """Homepage, only when it is an http(s) URL (anything else is dropped, never linked)."""
    notes: str | None
    """Submitter's notes (escaped when rendered)."""
    adapter: str
    """Adapter that produced the run."""
    report: str | None
    """Relative link to the model's report; None when it could not be built."""
    results: str
    """Relative link to the submitted results.json."""
    submission: str
    """Relative link to the submitted submission.json."""
    board_results: str
    """Relative link to the board's recomputed results (with its re-judgements)."""


class TaskCell(BaseModel):
    """One task's success rate in the success-only table."""

    model_config = ConfigDict(extra="forbid")
    task: str
    """Task id."""
    rate: Estimate
    """Success rate x 100 with its Wilson 95% interval."""
    successes: int
    """Successful episodes."""
    episodes: int
    """Episodes recorded."""
    errored: int
    """Errored episodes (excluded from the rate)."""


class SuccessRow(BaseModel):
    """One submission in a suite's success-only table."""

    model_config = ConfigDict(extra="forbid")
    model: ModelRef
    """The submission."""
    tasks: list[TaskCell]
    """Per-task success rates, in suite order."""
    mean: Estimate
    """Suite mean (unweighted mean of the task rates) x 100 with its Wilson 95% interval."""
    episodes: int
    """Episodes recorded over all tasks."""
    errored: int
    """Errored episodes over all tasks."""
    columns: list[float | None] = []
    """The suite's declared column rates x 100, in SuiteSection.columns order (empty when it declares none)."""
    averages: list[float | None] = []
    """Its headline averages x 100, in SuiteSection.averages order."""


class ColumnHead(BaseModel):
    """A declared result column of a suite (SimplerEnv's Pick Coke Can = the mean of three orientation tasks)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    key: str
    tasks: list[str]
    in_mean: bool


class AverageHead(BaseModel):
    """A headline average and the columns it averages (the same for every row: rows share the suite fingerprint)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    title: str
    columns: list[str]


class VlaRow(BaseModel):
    """One submission in a judge section's table."""

    model_config = ConfigDict(extra="forbid")
    model: ModelRef
    """The submission."""
    label: str
    """Judgement file the row comes from."""
    source: Literal["submitted", "board"]
    """`board`: the board judged the traces itself (`leaderboard rejudge`); `submitted`: the submitter did."""
    sim: Estimate
    """Sim.: success rate x 100 over the judged episodes."""
    reasoning: Estimate | None
    """R (None for specialists)."""
    action: Estimate
    """A."""
    intention: Estimate
    """I."""
    alignment: Estimate | None
    """RA (None for specialists)."""
    vla_score: Estimate
    """VLA Score (Eq. 8) x 100."""
    episodes: int
    """Episodes of the run."""
    judged: int
    """Episodes with a valid verdict (the n behind every column)."""
    failed: int
    """Failed judgements (excluded from the means)."""


class JudgeSection(BaseModel):
    """All submissions of one suite judged by one judge configuration."""

    model_config = ConfigDict(extra="forbid")
    anchor: str
    """HTML id of the section."""
    judge: str
    """Judge name."""
    judge_version: str
    """Effective judge version."""
    judge_model: str | None
    """Model behind a VLM judge."""
    reasoning: list[VlaRow]
    """Reasoning policies (Table 5 layout), best VLA Score first."""
    specialist: list[VlaRow]
    """Specialist policies (Table 4 layout), best VLA Score first."""


class SuiteSection(BaseModel):
    """One suite (fingerprint): its success-only table and its judge sections."""

    model_config = ConfigDict(extra="forbid")
    anchor: str
    """HTML id of the section."""
    suite: str
    """Suite name."""
    fingerprint: str
    """Suite fingerprint."""
    protocol_version: str
    """Suite protocol version."""
    tasks: list[str]
    """Task ids, in suite order."""
    columns: list[ColumnHead] = []
    """Declared columns (empty: one per task, the task table says it all)."""
    averages: list[AverageHead] = []
    """Headline averages, each over the same columns in every row."""
    mean_columns: list[str] = []
    """Column ids the Mean averages."""
    success: list[SuccessRow]
    """Every submission on this suite, best suite mean first."""
    judges: list[JudgeSection]
    """One section per judge configuration, sorted by judge name, version and model."""


class QAColumn(BaseModel):
    """A benchmark column of the QA tables."""

    model_config = ConfigDict(extra="forbid")
    name: str
    """Benchmark name."""
    title: str
    """Display title."""
    unit: str
    """`%` or `/1000`."""


class QARow(BaseModel):
    """One submission in a QA table."""

    model_config = ConfigDict(extra="forbid")
    model: ModelRef
    """The submission."""
    suite: str
    """Suite of its simulated run."""
    scores: dict[str, QAFigure]
    """Benchmark -> its result (failed and incomplete ones have no score)."""
    mm: Summary
    """MM, with the columns it averaged and those missing."""


class QAGroup(BaseModel):
    """The submissions whose MM averaged the same benchmarks on the same questions: the only ones it ranks."""

    model_config = ConfigDict(extra="forbid")
    anchor: str
    """HTML id of the table."""
    columns: list[str]
    """The benchmarks every MM of this table averaged (empty: no benchmark has a score)."""
    limits: dict[str, int]
    """Those asked on a subset: benchmark -> the first N questions."""
    missing: list[str]
    """MM's columns these submissions lack (MM is partial when not empty)."""
    rows: list[QARow]
    """Best MM first."""


class QASection(BaseModel):
    """Every submission with QA results."""

    model_config = ConfigDict(extra="forbid")
    benchmarks: list[QAColumn]
    """Columns: every benchmark a submission has, in benchmarks.yaml order."""
    groups: list[QAGroup]
    """One table per MM column set, most columns first."""


class SiteData(BaseModel):
    """SITE/data/board.json: everything index.html shows."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = SITE_SCHEMA_VERSION
    """Version of this file's format."""
    title: str
    """Board title (board.yaml)."""
    description: str
    """Board description (board.yaml)."""
    generated_at: str
    """UTC time of the build."""
    vlascore_version: str
    """vlascore version that built the site."""
    submissions: int
    """Submissions on the board."""
    suites: list[SuiteSection]
    """One section per suite fingerprint."""
    qa: QASection | None = None
    """The Multimodal QA tables (None: no submission has QA results)."""


def _anchor(prefix: str, *parts: object) -> str:
    return f"{prefix}-" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:10]


def _pct(rate: float | None, lo: float | None, hi: float | None) -> Estimate:
    scale = lambda x: None if x is None else 100 * x  # noqa: E731 - a one-line unit change
    return Estimate(value=scale(rate), ci_low=scale(lo), ci_high=scale(hi))


def _best_first(value: float | None) -> tuple[int, float]:
    return (0, -value) if value is not None else (1, 0.0)


def model_ref(entry: Entry, report_ok: bool = True) -> ModelRef:
    s, base = entry.submission, f"{MODELS_DIR}/{entry.record.id}"
    return ModelRef(
        id=entry.record.id,
        name=s.name,
        url=s.url if is_http_url(s.url) else None,
        notes=s.notes,
        adapter=s.adapter,
        report=f"{base}/{REPORT_PAGE}" if report_ok else None,
        results=f"{base}/{RESULTS_FILE}",
        submission=f"{base}/{SUBMISSION_FILE}",
        board_results=f"{base}/{BOARD_RESULTS_FILE}",
    )


def _vla_row(ref: ModelRef, v: VlaScoreResult, source: Literal["submitted", "board"]) -> VlaRow:
    return VlaRow(
        model=ref,
        label=v.label,
        source=source,
        sim=v.sim,
        reasoning=v.reasoning,
        action=v.action,
        intention=v.intention,
        alignment=v.alignment,
        vla_score=v.vla_score,
        episodes=v.episodes,
        judged=v.judged,
        failed=v.failed,
    )


def _success_rows(
    group: list[Entry], tasks: list[str], refs: dict[str, ModelRef], declared: bool = False
) -> list[SuccessRow]:
    rows = []
    for e in group:
        r, by_task = e.results, {t.task: t for t in e.results.tasks}
        cells = [
            TaskCell(
                task=t,
                rate=_pct(by_task[t].success_rate, by_task[t].ci_low, by_task[t].ci_high),
                successes=by_task[t].successes,
                episodes=by_task[t].episodes,
                errored=by_task[t].errored,
            )
            for t in tasks
            if t in by_task
        ]
        cols = [None if c.success_rate is None else 100 * c.success_rate for c in r.columns] if declared else []
        avgs = [None if a.value is None else 100 * a.value for a in r.averages]
        rows.append(
            SuccessRow(
                model=refs[e.record.id],
                tasks=cells,
                mean=_pct(r.suite_mean, r.suite_ci_low, r.suite_ci_high),
                episodes=r.episodes,
                errored=r.errored,
                columns=cols,
                averages=avgs,
            )
        )
    return sorted(rows, key=lambda row: (_best_first(row.mean.value), row.model.name))


def _judge_sections(fingerprint: str, group: list[Entry], refs: dict[str, ModelRef]) -> list[JudgeSection]:
    """One section per (judge, version, model); one row per submission in it, the board's own verdicts first."""
    sections: dict[tuple[str, str, str], dict[Mode, list[VlaRow]]] = {}
    for e in group:
        made_here = {j.label for j in e.record.board_judgements}
        chosen: dict[tuple[str, str, str], VlaScoreResult] = {}
        for v in e.results.vla:
            key = (v.judge, v.judge_version, v.judge_model or "")
            if key not in chosen or (v.label in made_here and chosen[key].label not in made_here):
                chosen[key] = v
        for key, v in chosen.items():
            row = _vla_row(refs[e.record.id], v, "board" if v.label in made_here else "submitted")
            sections.setdefault(key, {"reasoning": [], "specialist": []})[v.mode].append(row)
    out = []
    for (judge, version, model), rows in sorted(sections.items()):
        for mode_rows in rows.values():
            mode_rows.sort(key=lambda row: (_best_first(row.vla_score.value), row.model.name))
        out.append(
            JudgeSection(
                anchor=_anchor("judge", fingerprint, judge, version, model),
                judge=judge,
                judge_version=version,
                judge_model=model or None,
                reasoning=rows["reasoning"],
                specialist=rows["specialist"],
            )
        )
    return out


def qa_section(entries: list[Entry], refs: dict[str, ModelRef]) -> QASection | None:
    """The QA tables from the board records' checked figures; MM is ranked only within a column set."""
    groups: dict[tuple[tuple[str, ...], tuple[tuple[str, int], ...]], list[QARow]] = {}
    present: dict[str, QAFigure] = {}
    for e in entries:
        if not e.record.qa or e.record.mm is None:
            continue
        scores = {f.benchmark: f for f in e.record.qa}
        present |= scores
        limits = tuple((c, n) for c in e.record.mm.columns if (n := scores[c].limit) is not None)
        row = QARow(model=refs[e.record.id], suite=e.record.suite, scores=scores, mm=e.record.mm)
        groups.setdefault((tuple(e.record.mm.columns), limits), []).append(row)
    if not groups:
        return None
    tables = []
    for (columns, limits), rows in sorted(groups.items(), key=lambda kv: (-len(kv[0][0]), kv[0])):
        rows.sort(key=lambda r: (_best_first(r.mm.value), r.model.name))
        tables.append(
            QAGroup(
                anchor=_anchor("qa", columns, limits),
                columns=list(columns),
                limits=dict(limits),
                missing=rows[0].mm.missing,
                rows=rows,
            )
        )
    benchmarks = [
        QAColumn(name=n, title=present[n].title, unit=present[n].unit)
        for n in load_benchmarks().benchmarks
        if n in present
    ]
    return QASection(benchmarks=benchmarks, groups=tables)


def site_data(title: str, description: str, entries: list[Entry], refs: dict[str, ModelRef]) -> SiteData:
    """The tables, from the stored submissions' board-recomputed results (scores.json)."""
    by_suite: dict[str, list[Entry]] = {}
    for e in entries:
        by_suite.setdefault(e.results.suite_fingerprint, []).append(e)
    suites = []
    for fingerprint, group in sorted(by_suite.items(), key=lambda kv: (kv[1][0].results.suite, kv[0])):
        first = group[0].results
        tasks = [t.task for t in first.tasks]
        # a fingerprint fixes the columns and what each average averages, so rows of a group always compare
        declared = first.declares_columns
        columns = (
            [
                ColumnHead(id=c.id, title=c.title or c.id, key=c.key, tasks=c.tasks, in_mean=c.in_mean)
                for c in first.columns
            ]
            if declared
            else []
        )
        averages = [AverageHead(id=a.id, title=a.title or a.id, columns=a.columns) for a in first.averages]
        suites.append(
            SuiteSection(
                anchor=_anchor("suite", fingerprint),
                suite=first.suite,
                fingerprint=fingerprint,
                protocol_version=first.protocol_version,
                tasks=tasks,
                columns=columns,
                averages=averages,
                mean_columns=first.suite_mean_columns,
                success=_success_rows(group, tasks, refs, declared),
                judges=_judge_sections(fingerprint, group, refs),
            )
        )
    return SiteData(
        title=title,
        description=description,
        generated_at=utcnow(),
        vlascore_version=__version__,
        submissions=len(entries),
        suites=suites,
        qa=qa_section(entries, refs),
    )


# -- rendering -----------------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    return "\u2013" if value is None else f"{float(value):.1f}"


def _sort_value(value: Any) -> str:
    """A data-value attribute for the sort script: the number, or '' (sorted last) for a missing one."""
    return "" if value is None else repr(float(value))


def environment() -> Any:
    import jinja2

    from vlascore.paths import data_dir

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(data_dir("leaderboard") / "templates"),
        autoescape=True,  # model names, notes and URLs are user-supplied
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["sortval"] = _sort_value
    return env


def render_index(data: dict[str, Any]) -> str:
    """index.html from the JSON data (a dict read back from board.json, not the pydantic objects: the page can
    show only what the data file holds)."""
    return str(environment().get_template(TEMPLATE).render(data=data))


# -- the build -------------------------------------------------------------------------------------------------
@dataclass
class BuildSummary:
    """What a build did."""

    site: Path
    submissions: int = 0
    reports_built: int = 0
    reports_reused: int = 0
    report_errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def report_key(entry: Entry) -> str:
    """What a model's report depends on: the submission, its judgement files (the board's included), vlascore and
    the report's template."""
    from vlascore.paths import data_dir
    from vlascore.report.build import TEMPLATE as REPORT_TEMPLATE

    template = (data_dir("leaderboard") / "templates" / REPORT_TEMPLATE).read_bytes()
    digest = hashlib.sha256(f"{entry.record.id}\n{__version__}\n{PLOTLY_FILE}\n".encode())
    digest.update(hashlib.sha256(template).digest())
    folder = entry.run_dir / JUDGEMENTS_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        digest.update(f"{path.name}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _copy(src: Path, dst: Path) -> None:
    with open(src, "rb") as fh:
        atomic_write(dst, lambda out: shutil.copyfileobj(fh, out))


def _check_site_folder(site: Path) -> None:
    """Write only into a new or empty folder, or a site this command built (it replaces what it made)."""
    if not site.exists():
        return
    if not site.is_dir():
        raise BoardError(f"{site} is a file: pass a folder to -o")
    if any(site.iterdir()) and not (site / DATA_FILE).is_file():
        raise BoardError(
            f"{site} is not empty and not a leaderboard site (no {DATA_FILE}): pass a new or empty folder to -o"
        )


def build_site(
    board_dir: str | Path, site: str | Path, *, force: bool = False, progress: Callable[[str], None] | None = None
) -> BuildSummary:
    """Build the static site of a board; see the module docstring. Returns what was built and reused."""
    from vlascore.report import write_plotly_js, write_report

    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    board = Board(board_dir)
    board.check_folder(must_exist=True)
    site = Path(site)
    if site.resolve().is_relative_to(board.path.resolve()):
        raise BoardError(f"the site {site} would be inside the board folder {board.path}: pass -o a folder outside it")
    _check_site_folder(site)
    config = board.config()
    entries = board.entries()
    summary = BuildSummary(site=site, submissions=len(entries))
    say(f"{len(entries)} submission(s) on {board.path}")
    report_ok = {}
    if entries:
        write_plotly_js(site / PLOTLY_FILE)
    for i, entry in enumerate(entries, 1):
        rid, folder = entry.record.id, site / MODELS_DIR / entry.record.id
        folder.mkdir(parents=True, exist_ok=True)
        _copy(entry.folder / SUBMISSION_FILE, folder / SUBMISSION_FILE)
        _copy(entry.folder / RESULTS_FILE, folder / RESULTS_FILE)
        _copy(entry.folder / SCORES_FILE, folder / BOARD_RESULTS_FILE)
        key, key_file, page = report_key(entry), folder / REPORT_KEY_FILE, folder / REPORT_PAGE
        if not force and page.is_file() and key_file.is_file() and key_file.read_text() == key:
            summary.reports_reused += 1
            report_ok[rid] = True
            say(f"[{i}/{len(entries)}] {rid}: report up to date")
            continue
        t0 = time.perf_counter()
        try:
            write_report([entry.run_dir], page, labels=[entry.submission.name], plotly_src=f"../../{PLOTLY_FILE}")
        except Exception as exc:  # noqa: BLE001 - one model's report must not sink the board
            summary.report_errors[rid] = f"{type(exc).__name__}: {exc}"
            report_ok[rid] = False
            key_file.unlink(missing_ok=True)
            say(f"[{i}/{len(entries)}] {rid}: report FAILED ({type(exc).__name__}: {exc})")
            continue
        atomic_write_text(key_file, key)
        summary.reports_built += 1
        report_ok[rid] = True
        say(f"[{i}/{len(entries)}] {rid}: report built in {time.perf_counter() - t0:.1f} s")
    models = site / MODELS_DIR
    current = {e.record.id for e in entries}
    for stale in sorted(models.iterdir()) if models.is_dir() else []:
        if stale.name not in current and (stale / BOARD_RESULTS_FILE).is_file():  # only folders a build made
            shutil.rmtree(stale)
    refs = {e.record.id: model_ref(e, report_ok[e.record.id]) for e in entries}
    data = site_data(config.title, config.description, entries, refs)
    text = data.model_dump_json(indent=1)
    atomic_write_text(site / DATA_FILE, text)
    atomic_write_text(site / INDEX_PAGE, render_index(json.loads(text)))
    summary.seconds = time.perf_counter() - started
    return summary
