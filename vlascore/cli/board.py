"""`vlascore submit` and `vlascore leaderboard ...`: submission bundles and the HTML leaderboard
(docs/leaderboard.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vlascore.cli._common import (
    ENDPOINT,
    ApiKeyEnvOpt,
    BaseUrlOpt,
    CacheDirOpt,
    ConcurrencyOpt,
    JudgeModelOpt,
    JudgeOpt,
    RunArg,
    console,
    endpoint,
    err,
    escape,
    fail,
    judge_context,
    say,
)

if TYPE_CHECKING:
    from vlascore.board import Rejected, RejudgeOutcome
    from vlascore.board.board import Entry
    from vlascore.qa.summary import Summary

leaderboard_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode="markdown",
    help=(
        "A leaderboard of submitted runs: check and store bundles from `vlascore submit`, build a static HTML site "
        "from them, re-judge every stored run with another judge.\n\n"
        "  vlascore submit runs/scripted -o scripted.zip --name 'Scripted expert'\n\n"
        "  vlascore leaderboard add scripted.zip --board board/\n\n"
        "  vlascore leaderboard build --board board/ -o site/ && vlascore leaderboard serve site/\n\n"
        "  vlascore leaderboard rejudge --board board/ -j vla-score --judge-model gpt-4o"
    ),
)

BoardOpt = Annotated[Path, typer.Option("--board", "-b", help="Board folder (created on the first accepted add).")]
BoardArg = Annotated[
    Path | None,
    typer.Argument(metavar="[DIR]", help="The board folder, as before --board existed.", show_default=False),
]
AnyBoardOpt = Annotated[Path | None, typer.Option("--board", "-b", help="Board folder.", show_default=False)]


def _board(positional: Path | None, option: Path | None) -> Path:
    """Every leaderboard command names its board with --board DIR; build, verify and rejudge also take it as
    their first argument, as they did before."""
    if positional is not None and option is not None and positional != option:
        raise fail(f"two boards given ({positional} and --board {option}): give one")
    board = option or positional
    if board is None:
        raise fail("name the board folder: --board DIR")
    return board


def _rejection(source: str, exc: Rejected) -> None:

    err.print(f"[bold red]rejected[/] {escape(source)}: {escape(exc.reason)}", highlight=False, soft_wrap=True)
    if exc.fix:
        err.print(f"  [bold]fix:[/] {escape(exc.fix)}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("submit")(submit_cmd)
    app.add_typer(leaderboard_app, name="leaderboard")


def submit_cmd(
    run_dir: RunArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle to write (a .zip).")],
    name: Annotated[
        str | None, typer.Option("--name", help="Display name on the leaderboard [default: the adapter name].")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="Homepage, paper or code (http or https).")] = None,
    notes: Annotated[str | None, typer.Option("--notes", help="Free text shown with the model.")] = None,
) -> None:
    """Pack a run for a leaderboard: re-score it and zip submission.json, results.json, the run's traces, frames and
    judgement files, and a MANIFEST.json of their hashes.

    Refuses a run with missing planned episodes or a judgement file with unjudged episodes (finish or judge it
    first). The board recomputes every figure from the traces, so the bundle must be exactly what `vlascore run`
    and `vlascore judge` wrote.

    Examples:

      vlascore submit runs/scripted -o scripted.zip

      vlascore submit runs/myvla -o myvla.zip --name "MyVLA 7B (ckpt 30k)" --url https://github.com/me/myvla
    """
    from vlascore.board.archive import format_bytes
    from vlascore.board.bundle import pack
    from vlascore.store import StoreError

    if out.suffix.lower() != ".zip":
        raise fail(f"--out {out} should end in .zip (a bundle is a zip file)")
    if out.exists() and out.is_dir():
        raise fail(f"--out {out} is a folder: give a file name, e.g. {out / 'bundle.zip'}")
    try:
        packed = pack(run_dir, out, name=name, url=url, notes=notes)
    except StoreError as exc:
        raise fail(str(exc)) from None
    s, files = packed.submission, packed.manifest.files
    judges = (
        ", ".join(f"{j.judge} {j.judge_version}" + (f" ({j.judge_model})" if j.judge_model else "") for j in s.judges)
        or "none (success rates only)"
    )
    qa = f"\n  QA: {', '.join(f.benchmark for f in s.qa)}; {s.mm.describe()}" if s.qa and s.mm else ""
    console.print(
        f"packed {escape(s.name)!s}: {len(files)} file(s), {format_bytes(sum(f.size for f in files.values()))} "
        f"into {escape(str(packed.path))}\n  suite {escape(s.suite)} (fingerprint {s.suite_fingerprint}), "
        f"{sum(s.episodes_per_task.values())} episode(s); judgements: {escape(judges)}{escape(qa)}\n"
        f"add it to a board with: vlascore leaderboard add {escape(str(packed.path))} --board DIR",
        highlight=False,
        soft_wrap=True,
    )


@leaderboard_app.command("add")
def add_cmd(
    bundles: Annotated[list[Path], typer.Argument(metavar="BUNDLE...", help="Bundles written by `vlascore submit`.")],
    board: BoardOpt,
    max_files: Annotated[
        int | None, typer.Option("--max-files", min=1, help="Override board.yaml's max_files for this add.")
    ] = None,
    max_bytes: Annotated[
        str | None, typer.Option("--max-bytes", help="Override board.yaml's max_bytes (e.g. 8GiB, 500MiB).")
    ] = None,
    min_episodes: Annotated[
        int | None, typer.Option("--min-episodes", min=1, help="Override board.yaml's min_episodes_per_task.")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Print each step.")] = True,
) -> None:
    """Check submission bundles and store the good ones on a board; a rejected bundle changes nothing.

    Each bundle is checked for archive safety (paths, links, sizes), its manifest, schemas, a suite and judge
    versions the board knows, coverage (every task, the first N seeds, at least min_episodes_per_task), and the
    honesty of its results (the board recomputes them from the traces). Exit code 1 if any bundle is rejected.

    Examples:

      vlascore leaderboard add scripted.zip --board board/

      vlascore leaderboard add *.zip --board board/ --max-bytes 2GiB --min-episodes 20
    """
    import dataclasses

    from vlascore.board import Board, Rejected
    from vlascore.board.archive import parse_size
    from vlascore.store import StoreError

    b = Board(board)
    try:
        limits = b.config().limits()
        if max_files is not None:
            limits = dataclasses.replace(limits, max_files=max_files)
        if max_bytes is not None:
            limits = dataclasses.replace(limits, max_bytes=parse_size(max_bytes))
    except (StoreError, ValueError) as exc:
        raise fail(str(exc), 1) from None
    rejected = 0
    for bundle in bundles:
        try:
            record = b.add(bundle, limits=limits, min_episodes=min_episodes, progress=say if progress else None)
        except Rejected as exc:
            _rejection(str(bundle), exc)
            rejected += 1
            continue
        except StoreError as exc:
            raise fail(str(exc), 1) from None
        console.print(
            f"[green]accepted[/] {escape(record.name)} as [bold]{record.id}[/] (suite {escape(record.suite)})",
            highlight=False,
            soft_wrap=True,
        )
    if rejected:
        raise typer.Exit(1)


@leaderboard_app.command("list")
def list_cmd(board: BoardOpt) -> None:
    """The submissions on a board: id, name, suite, success mean, each judgement's VLA Score and MM (QA).

    Example: vlascore leaderboard list --board board/
    """
    from rich.table import Table

    from vlascore.board import Board
    from vlascore.store import StoreError

    b = Board(board)
    try:
        b.check_folder(must_exist=True)
        entries = b.entries()
    except StoreError as exc:
        raise fail(str(exc), 1) from None
    table = Table(title=f"{len(entries)} submission(s) on {escape(str(board))}")
    for col in ("id", "name", "adapter", "suite", "success %", "VLA Score (judgement)", "MM (QA)", "added"):
        table.add_column(col, justify="right" if col == "success %" else "left", overflow="fold")
    for e in entries:
        mean = e.results.suite_mean
        made = {j.label for j in e.record.board_judgements}
        vla = (
            "\n".join(
                f"{_num(v.vla_score.value)} ({escape(v.label)}{', board' if v.label in made else ''})"
                for v in e.results.vla
            )
            or "-"
        )
        success = _num(None if mean is None else 100 * mean)
        table.add_row(
            e.record.id,
            escape(e.record.name),
            escape(e.record.adapter),
            f"{escape(e.record.suite)} {e.record.suite_fingerprint}",
            success,
            vla,
            _mm(e.record.mm),
            e.record.added_at,
        )
    console.print(table)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def _mm(mm: Summary | None) -> str:
    """MM with the columns it averaged (partial: some missing)."""
    if mm is None:
        return "-"
    return f"{_num(mm.value)} ({', '.join(mm.columns) or 'no scores'}{'; partial' if mm.partial else ''})"


@leaderboard_app.command("build")
def build_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Site folder to write (new, empty, or an earlier build).")],
    board_dir: BoardArg = None,
    board_opt: AnyBoardOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild every model's report, changed or not.")] = False,
) -> None:
    """Build the static leaderboard site: SITE/data/board.json, then SITE/index.html and one report per model.

    One section per suite and judge configuration (judge, version, model), with the reasoning (Sim., R, A, I, RA,
    VLA Score) and specialist (Sim., A, I, VLA Score) tables and a success-only table per suite; sortable by
    clicking a header; works from file://. A model's report is rebuilt only when its judgement files (or vlascore)
    changed.

    Examples:

      vlascore leaderboard build --board board/ -o site/

      vlascore leaderboard build --board board/ -o site/ && vlascore leaderboard serve site/
    """
    from vlascore.board import build_site
    from vlascore.store import StoreError

    board = _board(board_dir, board_opt)
    try:
        summary = build_site(board, out, force=force, progress=say)
    except StoreError as exc:
        raise fail(str(exc), 1) from None
    console.print(
        f"site written to {escape(str(out / 'index.html'))} ({summary.submissions} submission(s), "
        f"{summary.reports_built} report(s) built, {summary.reports_reused} up to date, "
        f"{summary.seconds:.1f} s)",
        highlight=False,
        soft_wrap=True,
    )
    for rid, problem in summary.report_errors.items():
        err.print(f"[yellow]warning:[/] the report of {rid} could not be built: {escape(problem)}", highlight=False)
    if summary.report_errors:
        raise typer.Exit(1)


@leaderboard_app.command("serve")
def serve_cmd(
    site: Annotated[Path, typer.Argument(metavar="SITE", help="Site folder from `vlascore leaderboard build`.")],
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port (0: any free one).")] = 8000,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
) -> None:
    """Serve a built site over HTTP until Ctrl-C (or SIGTERM).

    Examples:

      vlascore leaderboard serve site/

      vlascore leaderboard serve site/ --port 9000 --host 0.0.0.0
    """
    import signal
    import threading

    from vlascore.board.serve import make_server, url_of
    from vlascore.store import StoreError

    try:
        server = make_server(site, host, port)
    except StoreError as exc:
        raise fail(str(exc), 1) from None

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Set both explicitly: a shell that starts us in the background (CI, nohup, `&`) leaves SIGINT ignored, and
    # service managers stop a server with SIGTERM. (Only the main thread may; an embedding caller keeps its own.)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop)
    console.print(f"serving {escape(str(site))} at {url_of(server)} (Ctrl-C to stop)", highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    console.print("stopped")


@leaderboard_app.command("rejudge")
def rejudge_cmd(
    judge: JudgeOpt,
    board_dir: BoardArg = None,
    board_opt: AnyBoardOpt = None,
    judge_model: JudgeModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: ApiKeyEnvOpt = ENDPOINT.api_key_env,
    concurrency: ConcurrencyOpt = ENDPOINT.concurrency,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Re-judge every stored submission's traces with another judge and print the old and new VLA Scores.

    The new verdicts go to a board-made judgement file labelled `<judge label>@<effective version>` next to the
    submitted ones, which stay byte-identical; the board records which files it made. The next `leaderboard build`
    shows the new judge version as its own section. A failure on one submission is reported and the others go
    on; exit code 1 if any failed.

    Examples:

      vlascore leaderboard rejudge --board board/ -j grounded

      vlascore leaderboard rejudge --board board/ -j my_grounded.yaml

      vlascore leaderboard rejudge --board board/ -j vla-score --judge-model gpt-4o -c 16
    """
    from rich.table import Table

    from vlascore.board import Board
    from vlascore.judging import JudgeError
    from vlascore.judging.endpoint import JudgeAbort
    from vlascore.store import StoreError

    board = _board(board_dir, board_opt)

    def on_start(entry: Entry, label: str) -> None:
        say(f"judging {entry.record.id} ({entry.record.name}) -> {label}")

    def on_done(o: RejudgeOutcome) -> None:
        if o.error:
            err.print(f"[bold red]failed[/] {escape(o.id)}: {escape(o.error)}", highlight=False, soft_wrap=True)

    try:
        context = judge_context(endpoint(judge_model, base_url, api_key_env, concurrency), cache_dir)
        outcomes = Board(board).rejudge(judge, context, on_start=on_start, on_done=on_done)
    except (StoreError, JudgeError, JudgeAbort, ValueError) as exc:
        raise fail(str(exc), 1) from None
    table = Table(title=f"VLA Score before and after re-judging with {escape(judge)}")
    for col in ("model", "id", "old judgement", "old", "new judgement", "new", "delta"):
        numeric = col in ("old", "new", "delta")
        table.add_column(col, justify="right" if numeric else "left", no_wrap=numeric, overflow="fold")
    for o in outcomes:
        new = "failed" if o.error else _num(o.new)
        olds = list(o.old.items()) or [("-", None)]
        for label, old in olds:
            delta = "-" if o.new is None or old is None else f"{o.new - old:+.1f}"
            table.add_row(
                escape(o.name),
                o.id,
                escape(label),
                _num(old) if label != "-" else "-",
                escape(o.label or "-"),
                new,
                delta,
            )
    console.print(table)
    failed = [o for o in outcomes if o.error]
    console.print(
        f"re-judged {len(outcomes) - len(failed)} of {len(outcomes)} submission(s)"
        + (f"; {len(failed)} failed" if failed else "")
        + "; rebuild the site with "
        f"`vlascore leaderboard build --board {escape(str(board))} -o SITE`",
        highlight=False,
        soft_wrap=True,
    )
    if failed:
        raise typer.Exit(1)


@leaderboard_app.command("verify")
def verify_cmd(board_dir: BoardArg = None, board_opt: AnyBoardOpt = None) -> None:
    """Check that every stored submission's files still match its manifest (and that nothing else was added).

    Example: vlascore leaderboard verify --board board/
    """
    from vlascore.board import Board
    from vlascore.store import StoreError

    board = _board(board_dir, board_opt)

    b = Board(board)
    try:
        b.check_folder(must_exist=True)
        records = b.records()
    except StoreError as exc:
        raise fail(str(exc), 1) from None
    bad = 0
    for record in records:
        problems = b.verify(record)
        for p in problems:
            err.print(f"[red]{record.id}[/]: {escape(p)}", highlight=False)
        bad += bool(problems)
    console.print(f"{len(records) - bad} of {len(records)} submission(s) intact")
    if bad:
        raise typer.Exit(1)
