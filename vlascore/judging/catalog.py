"""Judges by name: the built-in judge files in judges/, the `vla-score` alias, and loading a judge file into a
checked JudgeSpec (its templates and taxonomy read, its `kind` one the judge registry knows)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from vlascore.judging.base import JUDGES
from vlascore.judging.definitions import JudgeError, JudgeSpec
from vlascore.paths import data_dir, read_yaml_mapping
from vlascore.registry import did_you_mean

AUTO_JUDGES = {"vla-score": ("vla-score-reasoning", "vla-score-specialist")}
"""Alias -> (reasoning judge, specialist judge), picked from the adapter's declaration."""


def builtin_judge_paths() -> dict[str, Path]:
    """Judge name -> YAML file for the judges shipped in judges/."""
    return {p.stem: p for p in sorted(data_dir("judges").glob("*.yaml"))}


def load_judge_file(path: str | Path) -> JudgeSpec:
    path = Path(path)
    raw = read_yaml_mapping(path, "judge", "`name`, `kind` and `version`", JudgeError)
    try:
        spec = JudgeSpec.model_validate({**raw, "source": str(path), "root": str(path.parent)})
    except ValidationError as exc:
        raise JudgeError(f"invalid judge {path}:\n{exc}") from exc
    if spec.kind not in JUDGES.names():
        kinds = JUDGES.names()
        hint = did_you_mean(spec.kind, kinds)
        raise JudgeError(f"invalid judge {path}: unknown judge kind {spec.kind!r}.{hint} Known: {', '.join(kinds)}")
    spec.template_texts  # noqa: B018 - fail at load time on a missing template or taxonomy
    spec.taxonomy  # noqa: B018
    return spec


def load_judge(name_or_path: str | Path, reasons: bool | None = None) -> JudgeSpec:
    """A built-in judge by name (or the `vla-score` alias, given the policy kind), or any judge YAML by path."""
    name = str(name_or_path)
    if name in AUTO_JUDGES:
        if reasons is None:
            raise JudgeError(f"{name!r} picks a judge from the run's policy; load one of {AUTO_JUDGES[name]} instead")
        name = AUTO_JUDGES[name][0 if reasons else 1]
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_judge_file(path)
    builtin = builtin_judge_paths()
    if name not in builtin:
        hint = did_you_mean(name, [*builtin, *AUTO_JUDGES])
        raise JudgeError(f"unknown judge {name!r}.{hint} Built-in: {', '.join([*builtin, *AUTO_JUDGES])}")
    return load_judge_file(builtin[name])
