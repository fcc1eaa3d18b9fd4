"""`vlascore data`: the DualVLA method's training-data tools (dual-layer reasoning pruning, scene triggers;
vlascore/data/, docs/dualvla_data.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vlascore.cli._common import ProgressOpt, console, err, fail, parse_model_args, say, split_ids

data_app = typer.Typer(
    help=(
        "Training data for reasoning VLAs, the DualVLA way: prune reasoning annotations to the steps where a scene "
        "trigger and the arm's kinematics agree (docs/dualvla_data.md).\n\n"
        "  vlascore data prune runs/scripted -o data/scripted-pruned\n\n"
        "  vlascore data triggers\n\n"
        "  vlascore data train-trigger runs/scripted --labels boundaries.csv -o trigger.pt"
    ),
    no_args_is_help=True,
)

SourceArg = Annotated[
    Path, typer.Argument(metavar="SOURCE", help="A vlascore run directory or a LeRobot-format dataset folder.")
]
FieldOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--field",
        "-F",
        help="LeRobot datasets: where each input is, key=value (repeatable): pose=COLUMN[a:b] (x, y, z and a "
        "rotation), rotation=euler_xyz|euler_rpy|quaternion|axis_angle, gripper=COLUMN[i]<0.5 (closed when the "
        "comparison holds), reasoning=COLUMN, intention=COLUMN, image=CAMERA_KEY.",
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


def _reporter(what: str, progress: bool) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A progress bar on a terminal; one line per tenth of the work otherwise (logs, CI)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not progress:
        return (lambda done, total: None), (lambda: None)
    if not err.is_terminal:
        shown = {"tenth": -1}

        def line(done: int, total: int) -> None:
            tenth = done * 10 // max(total, 1)
            if tenth > shown["tenth"]:
                shown["tenth"] = tenth
                say(f"{what}: {done}/{total}")

        return line, lambda: None
    bar = Progress(
        TextColumn(f"[bold]{escape(what)}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )
    task = bar.add_task(what, total=None)
    bar.start()
    return (lambda done, total: bar.update(task, completed=done, total=total)), bar.stop


def _fields(pairs: list[str] | None) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise fail(f"--field expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out or None


@data_app.command("prune")
def prune_cmd(
    source: SourceArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="New folder for the pruned copy and its labels.")],
    trigger: Annotated[
        str, typer.Option("--trigger", help="Scene trigger (`vlascore data triggers`): frame-diff, intention, learned.")
    ] = "frame-diff",
    trigger_arg: Annotated[
        list[str] | None,
        typer.Option("--trigger-arg", "-T", help="Trigger option key=value (repeatable), e.g. radius=2, model=t.pt."),
    ] = None,
    ablation: Annotated[
        str,
        typer.Option(
            "--ablation",
            help="dual (the method: both layers), no-action, no-scene, or random (proportional dropout, "
            "ECoT-Lite style).",
        ),
    ] = "dual",
    keep_fraction: Annotated[
        float | None,
        typer.Option("--keep-fraction", help="--ablation random: fraction kept [default: what dual keeps]."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="--ablation random: seed of the draw.")] = 0,
    field: FieldOpt = None,
    view: Annotated[
        int, typer.Option("--view", min=0, help="Episodes in the visual check pruning/view.html (0: none).")
    ] = 40,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier pruned copy at --out.")] = False,
    progress: ProgressOpt = True,
) -> None:
    """Prune reasoning annotations with the DualVLA paper's dual-layer rule and write a pruned copy.

    Every step gets a **scene** label (a reasoning trigger: --trigger) and an **action** label (pose acceleration
    above the trajectory's mean, or a gripper flip). A step keeps its reasoning text only when both are 1; every
    step keeps its action. --ablation picks the paper's ablations instead. OUT gets a copy of SOURCE in the same
    format (a vlascore run or a LeRobot dataset) with the other steps' reasoning removed, plus
    pruning/labels.parquet (episode_id, task, step, scene, action, kept, has_reasoning), pruning/pruning.json
    (settings and statistics) and pruning/view.html (timelines, kept frames and text).

    Examples:

      vlascore data prune runs/scripted -o data/scripted-pruned

      vlascore data prune runs/scripted -o data/by-intention --trigger intention -T radius=2

      vlascore data prune runs/scripted -o data/random --ablation random --seed 1

      vlascore data prune ~/lerobot/my_ecot_data -o data/ecot-pruned -F pose="observation.state[0:6]"
      -F rotation=euler_rpy -F "gripper=action[6]<0.5" -F reasoning=reasoning
    """
    from vlascore.data.labels import ABLATIONS
    from vlascore.data.prune import PruneError, prune
    from vlascore.data.trajectory import TrajectoryError
    from vlascore.extras import MissingExtraError
    from vlascore.versioned import RecordError

    if ablation not in ABLATIONS:
        raise fail(f"--ablation must be one of {', '.join(ABLATIONS)}, not {ablation!r}")
    report, stop = _reporter(f"labelling {source.name}", progress)
    try:
        record = prune(
            source,
            out,
            trigger=trigger,
            trigger_options=parse_model_args(trigger_arg or []),
            ablation=ablation,  # type: ignore[arg-type]
            keep_fraction=keep_fraction,
            seed=seed,
            fields=_fields(field),
            overwrite=overwrite,
            view_episodes=view,
            progress=report,
        )
    except (PruneError, TrajectoryError, RecordError, MissingExtraError, OSError) as exc:
        raise fail(str(exc)) from None
    finally:
        stop()
    table = Table(title=f"reasoning kept: {record.trigger['name']}, {record.ablation}", title_style="bold")
    for name in ("task", "episodes", "steps", "with reasoning", "scene", "action", "kept", "kept %"):
        table.add_column(name, justify="left" if name == "task" else "right")
    for s in record.stats:
        pct = "n/a" if s.kept_fraction is None else f"{100 * s.kept_fraction:.1f}"
        cells = [s.task, s.episodes, s.steps, s.reasoning_steps, s.scene_steps, s.action_steps, s.kept_steps, pct]
        table.add_row(*[str(c) for c in cells], end_section=s.task != "all" and s is record.stats[-2])
    console.print(table)
    for f in record.failed:
        err.print(f"[red]left out[/] {escape(f.episode_id)}: {escape(f.reason)}", highlight=False)
    console.print(f"pruned copy: {escape(str(out))} (labels and record in {escape(str(out / 'pruning'))})")
    if view:
        console.print(f"visual check: {escape(str(out / 'pruning' / 'view.html'))}")


@data_app.command("view")
def view_cmd(
    pruned: Annotated[Path, typer.Argument(metavar="PRUNED", help="A folder written by `vlascore data prune`.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="HTML file [default: PRUNED/pruning/view.html].")
    ] = None,
    episode: Annotated[str | None, typer.Option("--episode", "-e", help="Comma-separated episode ids.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Episodes shown, taken in turn per task.")] = 40,
) -> None:
    """Write the visual check of a pruned copy: per episode, a timeline of the scene and action labels and the
    kept steps (with the stated intention's changes marked), the frames at the kept steps and the kept text.

    Examples:

      vlascore data view data/scripted-pruned

      vlascore data view data/scripted-pruned -e PickCube-3,StackCube-0 -o check.html
    """
    from vlascore.data.trajectory import TrajectoryError
    from vlascore.data.view import write_view
    from vlascore.extras import MissingExtraError
    from vlascore.versioned import RecordError

    target = output or pruned / "pruning" / "view.html"
    try:
        write_view(pruned, target, limit=limit, episodes=split_ids(episode))
    except (TrajectoryError, RecordError, MissingExtraError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    console.print(f"wrote {escape(str(target))}")


@data_app.command("triggers")
def triggers_cmd() -> None:
    """List the scene triggers (built in, and those third-party packages register under `vlascore.triggers`).

    Examples:

      vlascore data triggers
    """
    from vlascore.data.triggers import TRIGGERS
    from vlascore.registry import PluginTypeError, UnknownPluginError

    table = Table(title="scene triggers", title_style="bold")
    for name in ("name", "from", "what it marks"):
        table.add_column(name)
    for name in TRIGGERS.names():
        try:
            summary = TRIGGERS.get(name).summary
        except (ImportError, PluginTypeError, UnknownPluginError) as exc:
            summary = f"[red]cannot load: {escape(str(exc))}[/]"
        table.add_row(name, TRIGGERS.origin(name), summary)
    console.print(table)


@data_app.command("train-trigger")
def train_trigger_cmd(
    source: SourceArg,
    labels: Annotated[
        Path,
        typer.Option(
            "--labels",
            help="Boundary labels: a CSV with columns episode_id,step (every listed step is a boundary; the "
            "episodes named are the labelled ones), or a prune's labels.parquet (its scene column).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write (e.g. trigger.pt).")],
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the labelled episodes.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the initial weights and the episode order.")] = 0,
    field: FieldOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Train the learned scene trigger (a small temporal convolution over shrunk frames) on your boundary labels:
    the paper's hook of retraining an event-boundary detector on a few hand-labelled trajectories.

    Examples:

      vlascore data train-trigger runs/scripted --labels boundaries.csv -o trigger.pt

      vlascore data prune runs/other -o data/other-pruned --trigger learned -T model=trigger.pt
    """
    from vlascore.data.learned import read_boundary_labels, train_trigger
    from vlascore.data.opening import open_source
    from vlascore.data.trajectory import TrajectoryError
    from vlascore.extras import MissingExtraError

    report, stop = _reporter("training", progress)
    try:
        record = train_trigger(
            open_source(source, _fields(field)),
            read_boundary_labels(labels),
            out,
            epochs=epochs,
            seed=seed,
            progress=lambda done, total, loss: report(done, total),
        )
    except (TrajectoryError, MissingExtraError, OSError) as exc:
        raise fail(str(exc)) from None
    finally:
        stop()
    console.print(
        f"trained on {len(record.episodes)} episode(s), {record.frames} frames ({record.positives} boundaries): "
        f"loss {record.final_loss:.4f}, training F1 {record.train_f1:.3f}\nwrote {escape(str(out))}; use it with "
        f"`vlascore data prune SOURCE -o OUT --trigger learned -T model={escape(str(out))}`",
        highlight=False,
    )
