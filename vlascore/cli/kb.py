"""`vlascore kb`: the retrieval knowledge base of reviewed reference trajectories (docs/vla_score.md §5)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vlascore.cli._common import KbOpt, ProgressOpt, RunArg, console, err, escape, fail

kb_app = typer.Typer(
    help=(
        "The knowledge base of reviewed reference trajectories used for retrieval-augmented judging "
        "(few-shot examples, docs/vla_score.md §5). Default KB: the one shipped in judges/kb/.\n\n"
        "Workflow: record a run, look at an episode, write its rationale and scores by hand, add it, rebuild:\n\n"
        "  vlascore kb add runs/scripted PickCube-3 --kb judges/kb --rationale-file r.txt "
        '--scores "A=9,I=9,R=8,RA=9" --reviewed-by "Ada"\n\n'
        "  vlascore kb build --kb judges/kb\n\n"
        '  vlascore kb search "pick up the cube" runs/scripted PickCube-3 --kb judges/kb'
    ),
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(kb_app, name="kb")


def _kb_dir(kb: Path | None) -> Path:
    from vlascore.judging.retrieval import default_kb_dir

    return kb if kb is not None else default_kb_dir()


@kb_app.command("add")
def add_cmd(
    run_dir: RunArg,
    episode_id: Annotated[str, typer.Argument(help="Episode id in that run, e.g. PickCube-3.")],
    scores: Annotated[
        str,
        typer.Option(
            "--scores",
            help="Reviewed scores 0-10: reasoning policies need Reasoning, Action, Intention, Alignment; "
            "specialists Action and Intention. Short keys R, A, I, RA work too.",
        ),
    ],
    reviewed_by: Annotated[str, typer.Option("--reviewed-by", help="Who wrote and checked the rationale.")],
    kb: KbOpt = None,
    rationale: Annotated[str | None, typer.Option("--rationale", help="The hand-written rationale text.")] = None,
    rationale_file: Annotated[
        Path | None, typer.Option("--rationale-file", help="Read the rationale from this file instead.")
    ] = None,
    entry_id: Annotated[str | None, typer.Option("--id", help="Entry id [default: RUNID-EPISODE_ID].")] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="Task family [default: the task's category in its suite].")
    ] = None,
) -> None:
    """Add one reviewed episode (its rationale, scores and a few frames) to a knowledge base.

    Look at the episode first (`vlascore report RUN`), then write what the arm did, where it went wrong and
    whether reasoning and motion agree. Rebuild the index afterwards with `vlascore kb build`.

    Example:

      vlascore kb add runs/scripted StackCube-4 --kb judges/kb --scores "R=8,A=7,I=8,RA=9"
      --rationale "Grasps the red cube cleanly, ..." --reviewed-by "Ada"
    """
    from vlascore.judging.retrieval import KBError, kb_add, parse_scores

    if (rationale is None) == (rationale_file is None):
        raise fail("give the rationale with exactly one of --rationale TEXT or --rationale-file FILE")
    if rationale_file is not None:
        try:
            rationale = rationale_file.read_text()
        except OSError as exc:
            raise fail(f"cannot read --rationale-file {rationale_file}: {exc}") from None
    kb_dir = _kb_dir(kb)
    try:
        entry = kb_add(
            kb_dir,
            run_dir,
            episode_id,
            rationale or "",
            parse_scores(scores),
            reviewed_by,
            entry_id=entry_id,
            category=category,
        )
    except KBError as exc:
        raise fail(str(exc)) from None
    shown = ", ".join(f"{k}={v}" for k, v in entry.scores.items())
    console.print(
        f"added [bold]{escape(entry.id)}[/] ({entry.task}, {entry.mode}, success={entry.success}, {shown}) to "
        f"{escape(str(kb_dir))}; rebuild the index: vlascore kb build --kb {escape(str(kb_dir))}",
        highlight=False,
        soft_wrap=True,
    )


@kb_app.command("build")
def build_cmd(
    reviewed_jsonl: Annotated[
        Path | None,
        typer.Argument(help="Reviewed JSONL to build from (replaces the KB's reviewed.jsonl) [default: the KB's]."),
    ] = None,
    kb: KbOpt = None,
    text_embedder: Annotated[
        str, typer.Option("--text-embedder", help="hashing (offline), openai[:MODEL], clip[:MODEL].")
    ] = "hashing",
    image_embedder: Annotated[str, typer.Option("--image-embedder", help="histogram (offline), clip[:MODEL].")] = (
        "histogram"
    ),
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="openai embedder: OpenAI-compatible endpoint (.../v1).")
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="openai embedder: variable holding the API key.")
    ] = None,
    progress: ProgressOpt = True,
) -> None:
    """(Re)build the retrieval index (index.npz + index.json) of a knowledge base, atomically.

    Judges must use the same embedders as the index (their retrieval settings); a mismatch is refused.

    Examples:

      vlascore kb build --kb judges/kb

      vlascore kb build reviewed.jsonl --kb judges/kb

      vlascore kb build --kb my-kb --text-embedder openai:text-embedding-3-small --base-url http://localhost:8000/v1
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from vlascore.judging.retrieval import KBError, kb_build

    options = {k: v for k, v in {"base_url": base_url, "api_key_env": api_key_env}.items() if v is not None}
    if options and not text_embedder.startswith("openai"):
        raise fail("--base-url and --api-key-env apply to the openai text embedder only")
    kb_dir = _kb_dir(kb)
    bar = Progress(TextColumn("[bold]embedding"), BarColumn(), MofNCompleteColumn(), console=err, disable=not progress)
    bar_id = bar.add_task("embedding", total=None)

    def step(done: int, total: int) -> None:
        bar.update(bar_id, completed=done, total=total)

    try:
        with bar:
            meta = kb_build(
                kb_dir, reviewed_jsonl, text_embedder, image_embedder, text_options=options or None, on_progress=step
            )
    except KBError as exc:
        raise fail(str(exc)) from None
    t, i = meta["text_embedder"], meta["image_embedder"]
    console.print(
        f"indexed {len(meta['ids'])} entries in {escape(str(kb_dir))} (text: {t['name']} {t['version']}, "
        f"{t['dim']} dims; image: {i['name']} {i['version']}, {i['dim']} dims)",
        highlight=False,
        soft_wrap=True,
    )


def _fmt_scores(scores: dict[str, int]) -> str:
    from vlascore.judging.judgement import DIMENSIONS

    return " ".join(f"{DIMENSIONS[k]}={v}" for k, v in scores.items())


@kb_app.command("list")
def list_cmd(
    kb: KbOpt = None,
    full: Annotated[bool, typer.Option("--full", help="Also print every entry's rationale.")] = False,
) -> None:
    """The entries of a knowledge base, and whether its index is up to date.

    Examples: vlascore kb list; vlascore kb list --kb my-kb --full
    """
    from vlascore.judging.retrieval import KBError, KnowledgeBase, read_entries

    kb_dir = _kb_dir(kb)
    try:
        entries = read_entries(kb_dir)
    except KBError as exc:
        raise fail(str(exc)) from None
    # The path goes on its own line: as a table title it would wrap (or be cut) at the table's width.
    console.print(
        f"[bold]knowledge base[/] {escape(str(kb_dir))} ({len(entries)} entries)", highlight=False, soft_wrap=True
    )
    table = Table()
    for col in ("id", "task", "category", "mode", "success", "scores", "steps"):
        table.add_column(col, no_wrap=col in ("id", "scores"))
    for e in entries:
        table.add_row(
            escape(e.id),
            e.task,
            e.category,
            e.mode,
            "[green]yes[/]" if e.success else "[red]no[/]",
            _fmt_scores(e.scores),
            str(e.num_steps),
        )
    console.print(table)
    if full:
        for e in entries:
            console.print(
                f"\n[bold]{escape(e.id)}[/] ({escape(e.reviewed_by)}): {escape(e.rationale)}", highlight=False
            )
    try:
        loaded = KnowledgeBase.load(kb_dir)
        t, i = loaded.meta["text_embedder"], loaded.meta["image_embedder"]
        console.print(
            f"[green]index up to date[/] (built {loaded.meta['built_at']}; text {t['name']} {t['version']}, "
            f"image {i['name']} {i['version']})",
            highlight=False,
        )
    except KBError as exc:
        console.print(f"[yellow]index:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)


@kb_app.command("search")
def search_cmd(
    instruction: Annotated[str, typer.Argument(help="Instruction of the trajectory to judge.")],
    run_dir: Annotated[
        Path | None, typer.Argument(metavar="[RUN]", help="Run whose episode's frames drive scene retrieval.")
    ] = None,
    episode_id: Annotated[str | None, typer.Argument(help="Episode id in RUN.")] = None,
    kb: KbOpt = None,
    mode: Annotated[str, typer.Option("--mode", help="reasoning or specialist (which scores are needed).")] = (
        "reasoning"
    ),
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Examples to retrieve.")] = 3,
    text_embedder: Annotated[str, typer.Option("--text-embedder", help="Must match the index.")] = "hashing",
    image_embedder: Annotated[str, typer.Option("--image-embedder", help="Must match the index.")] = "histogram",
) -> None:
    """Show what retrieval returns for an instruction (and optionally an episode's frames), for debugging.

    Examples:

      vlascore kb search "stack the red cube on the green cube"

      vlascore kb search "push the cube to the target" runs/scripted PushCube-0 --mode reasoning --top-k 3
    """
    from vlascore.judging.definitions import RetrievalSettings
    from vlascore.judging.retrieval import KBError, KnowledgeBase
    from vlascore.store import StoreError, load_run

    if mode not in ("reasoning", "specialist"):
        raise fail(f"--mode must be reasoning or specialist, got {mode!r}")
    if (run_dir is None) != (episode_id is None):
        raise fail("give both RUN and EPISODE_ID for scene retrieval, or neither")
    frames, exclude = None, None
    if run_dir is not None and episode_id is not None:
        try:
            run = load_run(run_dir)
            frames = run.frames(episode_id)[0]
        except StoreError as exc:
            raise fail(str(exc)) from None
        exclude = (run.run.suite_fingerprint, run.run.adapter, episode_id)  # as a judge would: never itself
    settings = RetrievalSettings(top_k=top_k, text_embedder=text_embedder, image_embedder=image_embedder)
    try:
        result = KnowledgeBase.load(_kb_dir(kb)).search(instruction, frames, mode, settings, exclude)  # type: ignore[arg-type]
    except KBError as exc:
        raise fail(str(exc)) from None
    cats = ", ".join(f"{c} {s:.3f}" for c, s in result.category_similarity.items())
    console.print(
        f"task retrieval: [bold]{escape(result.category)}[/] (instruction cosine per category: {cats})",
        highlight=False,
        soft_wrap=True,
    )
    table = Table(title="scene retrieval" + ("" if frames is not None else " (no frames: ranked by instruction)"))
    for col in ("rank", "id", "task", "success", "scores", "task sim", "scene sim"):
        table.add_column(col, no_wrap=col in ("id", "scores"))
    for rank, hit in enumerate(result.hits, 1):
        e = hit.entry
        scene = f"{hit.scene_similarity:.3f}" if hit.scene_similarity is not None else "-"
        table.add_row(
            str(rank),
            escape(e.id),
            e.task,
            "yes" if e.success else "no",
            _fmt_scores(e.scores),
            f"{hit.task_similarity:.3f}",
            scene,
        )
    console.print(table)
    for rank, hit in enumerate(result.hits, 1):
        console.print(f"\n{rank}. [bold]{escape(hit.entry.id)}[/]: {escape(hit.entry.rationale)}", highlight=False)
