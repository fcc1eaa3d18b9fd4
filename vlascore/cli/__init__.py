"""The `vlascore` command line: builds the Typer app and registers the command modules, in the order `--help` lists
them. Each command group lives in its own module; shared options and helpers are in `_common`, tables in `_tables`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from vlascore.cli import board, catalog, data, export, judge, kb, plan, qa, run, score, serve, simreal
from vlascore.cli._common import OneLineErrors

app = typer.Typer(
    name="vlascore",
    cls=OneLineErrors,
    help=(
        "Score Vision-Language-Action robot policies: run them in simulated episodes, record per-step traces, "
        "and score success (and, with judges, the VLA Score).\n\n"
        "Quick start:\n\n"
        "  vlascore doctor\n\n"
        "  vlascore run --model scripted --suite tabletop --episodes 5 --out runs/scripted\n\n"
        "  vlascore score runs/scripted"
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from vlascore._version import __version__

        print(f"vlascore {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    pass


# Commands are listed in this order, then the groups (tasks, models, adapter, judge, kb, leaderboard, data).
for module in (run, score, plan, export, catalog, judge, kb, board, serve, qa, simreal, data):
    module.register(app)


def main() -> None:
    app()


__all__ = ["app", "main"]
