"""Options given as text (`-M key=value`, `-B key=value`) take the types the constructor declares: strings stay
strings, numbers and booleans are parsed where declared, and a bad key or value is named with the valid ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from typer.testing import CliRunner

from vlascore.cli import app
from vlascore.registry import OptionError, coerce_options


class Model:
    def __init__(
        self,
        path: str,
        revision: str | None = None,
        unnorm_key: str = "bridge_orig",
        gain: float = 1.0,
        steps: int = 3,
        fp16: bool = False,
        mode: Literal["json", "tokens"] = "json",
        layers: list[int] | None = None,
        cache: Path | None = None,
    ) -> None:
        pass


class TakesAnything:
    def __init__(self, scale: float = 1.0, **extra: Any) -> None:
        pass


def coerce(cls: Any = Model, **options: str) -> dict[str, Any]:
    return coerce_options(cls, options, "adapter 'm'")


def test_declared_types_are_parsed_and_strings_stay_strings() -> None:
    assert coerce(path="0123", revision="0123", unnorm_key="no") == {
        "path": "0123",
        "revision": "0123",
        "unnorm_key": "no",
    }
    assert coerce(gain="2.5", steps="7", fp16="yes", mode="tokens") == {
        "gain": 2.5,
        "steps": 7,
        "fp16": True,
        "mode": "tokens",
    }
    assert coerce(revision="none", layers="[1, 2]", cache="/tmp/c") == {
        "revision": None,
        "layers": [1, 2],
        "cache": Path("/tmp/c"),
    }
    assert coerce(TakesAnything, scale="3", other="0123") == {"scale": 3.0, "other": "0123"}
    assert coerce(gain=2) == {"gain": 2}  # values that are not text (the Python API) pass as they are


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"gain": "abc"}, "option 'gain' of adapter 'm' expects a number, got 'abc'"),
        ({"steps": "2.5"}, "option 'steps' of adapter 'm' expects an integer"),
        ({"fp16": "maybe"}, "expects true or false"),
        ({"mode": "yaml"}, "must be one of json, tokens"),
        ({"layers": "3"}, "expects a list written as YAML"),
        ({"gian": "1"}, "adapter 'm' has no option 'gian'. Did you mean 'gain'? Its options: path, revision"),
    ],
)
def test_bad_values_and_keys_name_the_option(options: dict[str, str], problem: str) -> None:
    with pytest.raises(OptionError, match=problem.replace("?", r"\?").replace(".", r"\.")):
        coerce(**options)


def test_the_cli_names_the_option_and_lists_the_valid_keys(tmp_path: Path) -> None:
    cli = CliRunner()
    bad = cli.invoke(app, ["run", "-m", "scripted", "-M", "gain=abc", "-s", "toy", "-o", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "option 'gain' of adapter 'scripted' expects a number, got 'abc'" in bad.output
    bad = cli.invoke(app, ["run", "-m", "random", "-M", "nosuch=1", "-s", "toy", "-o", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "has no option 'nosuch'. Its options: scale, seed_offset" in bad.output
    bad = cli.invoke(app, ["run", "-m", "random", "-M", "novalue", "-s", "toy", "-o", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "--model-arg expects key=value, got 'novalue'" in bad.output
    ok = cli.invoke(
        app,
        ["run", "-m", "random", "-M", "scale=0.5", "-s", "toy", "-n", "1", "-o", str(tmp_path / "r"), "--no-progress"],
    )
    assert ok.exit_code == 0, ok.output
    assert '"scale": 0.5' in (tmp_path / "r" / "run.json").read_text()
