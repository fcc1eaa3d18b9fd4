"""Where the package data (tasks/, judges/, leaderboard/) lives: the installed wheel or the source tree; and
how its YAML is read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML was built with it: several times faster


MAX_YAML_BYTES = 16 << 20
"""Largest YAML file read (suites, judges, board settings are kilobytes)."""
MAX_YAML_NODES = 1_000_000
"""Most values a YAML document may expand to, counting each alias as a copy of what it names: anchors and aliases
nested a few levels deep (a "billion laughs") would otherwise grow without bound in whatever walks the data."""
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
"""Ids that become file names (task ids, and so episode ids and frames files): letters, digits and ._+-, starting
with a letter or digit, at most 100 characters; no '/', no '..' component, nothing a shell or a zip treats apart."""


class YAMLBombError(yaml.YAMLError):
    """A YAML document that expands past MAX_YAML_NODES, refers to itself, or nests too deep."""


def _expanded_size(root: Any) -> int:
    """Values `root` holds when every alias is expanded (shared objects counted once per reference); raises
    YAMLBombError past the limit or on a cycle. Memoised per object, so the walk itself stays linear."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, dict | list):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise YAMLBombError("the YAML document refers to itself (a recursive alias)")
        on_path.add(key)
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        total = 1 + sum(size(c) for c in children)
        on_path.discard(key)
        if total > MAX_YAML_NODES:
            raise YAMLBombError(
                f"the YAML document expands to more than {MAX_YAML_NODES} values (aliases of aliases); write it out"
            )
        sizes[key] = total
        return total

    return size(root)


def load_yaml(text: str) -> Any:
    """Parse YAML safely: no arbitrary objects, and no alias bomb, self-reference or nesting too deep for the parser
    (YAMLBombError); raises yaml.YAMLError."""
    if len(text) > MAX_YAML_BYTES:
        raise YAMLBombError(f"the YAML text is {len(text)} characters, more than the {MAX_YAML_BYTES} read")
    try:
        data = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
        _expanded_size(data)
    except RecursionError:
        raise YAMLBombError("the YAML document nests too deep") from None
    return data


def yaml_problem(exc: BaseException, path: Path | str) -> str:
    """One line for a YAML error, placed in `path` (line:column) rather than PyYAML's "<unicode string>"."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        return f"{path}:{mark.line + 1}:{mark.column + 1}: {what}"
    return " ".join(str(exc).split())


def yaml_line(path: Path, keys: tuple[Any, ...]) -> int | None:
    """The line (1-based) of the value at `keys` (mapping keys and list indices, a validation error's location) in
    the YAML file at `path`, or None where the path does not lead through the file as written."""
    try:
        node = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return None
    line = None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if getattr(k, "value", None) == str(key)), None)
            if match is None:
                return line
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def read_yaml_mapping(path: Path, what: str, keys: str, error: type[Exception]) -> dict[str, Any]:
    """A YAML file that must hold a mapping (a suite, a judge...); `error` names the problem and the file."""
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise YAMLBombError(f"the file is larger than {MAX_YAML_BYTES} bytes")
        raw = load_yaml(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise error(f"cannot read {what} {path}: {yaml_problem(exc, path)}") from exc
    if not isinstance(raw, dict):
        raise error(f"{what} {path} must be a YAML mapping with {keys}")
    return raw


_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The wheel's copy (vlascore/_data/NAME) or, in a source checkout, the top-level NAME folder."""
    candidates = [_PKG / "_data" / name]
    if (_PKG.parent / "pyproject.toml").is_file():  # a checkout, not an unrelated folder in site-packages
        candidates.append(_PKG.parent / name)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"data folder {name!r} not found next to the vlascore package (reinstall vlascore)")
