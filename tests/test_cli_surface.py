"""The command line's surface: every command and group, each parameter's flags, whether it is required and its
default, against tests/fixtures/cli_surface.json. A change to the CLI shows up here as a reviewed fixture change:
regenerate it with `VLASCORE_UPDATE_SURFACE=1 .venv/bin/python -m pytest tests/test_cli_surface.py`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from vlascore.cli import app

FIXTURE = Path(__file__).parent / "fixtures" / "cli_surface.json"


def surface() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}

    def walk(command: Any, path: list[str]) -> None:
        out[" ".join(path) or "(root)"] = [
            {
                "name": p.name,
                "opts": [*p.opts, *getattr(p, "secondary_opts", [])],
                "required": p.required,
                "default": repr(p.default),
            }
            for p in command.params
        ]
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return dict(sorted(out.items()))


def test_the_cli_surface_is_the_recorded_one() -> None:
    now = surface()
    if os.environ.get("VLASCORE_UPDATE_SURFACE"):
        FIXTURE.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    assert now == json.loads(FIXTURE.read_text()), "the CLI changed: review it, then regenerate the fixture"


def test_every_command_has_help_with_an_example_or_a_description() -> None:
    def walk(command: Any, path: list[str]) -> None:
        assert (command.help or "").strip(), f"`vlascore {' '.join(path)}` has no help text"
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
