"""Overlay tasks: lmms-eval task configs that include the benchmark's own config and change only what vlascore
needs (the data source, the headline metric alone, vlascore's grading for judge-graded benchmarks).

Runs inside the lmms-eval worker process (it reads lmms-eval's task folder). Written to the run's
qa/work/tasks/ folder, so what was run stays next to the results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vlascore.qa.benchmarks import Benchmark, DataSource
from vlascore.qa.hooks import PENDING_METRIC

OVERLAY_VERSION = "1"
"""Bumped when the overlay changes what a benchmark computes (part of each result's resume key)."""


class Function(str):
    """A `!function module.name` value."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(Function, lambda d, v: d.represent_scalar("!function", str(v)))


def tasks_root() -> Path:
    import lmms_eval.tasks

    return Path(lmms_eval.tasks.__file__).parent


def find_task_yaml(task: str, root: Path | None = None) -> Path:
    """The lmms-eval YAML file that defines `task`."""
    root = root or tasks_root()
    needle = f"task: {task}"
    for path in sorted(root.rglob("*.yaml")):
        for line in path.read_text(errors="replace").splitlines():
            if line.strip().replace('"', "").replace("'", "") == needle:
                return path
    raise LookupError(f"lmms-eval has no task {task!r} under {root} (is the installed lmms-eval too old or new?)")


def _simple_config(path: Path) -> dict[str, Any]:
    from lmms_eval.utils import load_yaml_config

    return dict(load_yaml_config(yaml_path=str(path), mode="simple"))


def _function_value(value: Any, yaml_file: Path, root: Path) -> Any:
    """A `!function utils.f` node of `yaml_file` as an absolute `!function lmms_eval.tasks.DIR.utils.f`."""
    if isinstance(value, yaml.Node):
        package = ".".join(("lmms_eval", "tasks", *yaml_file.parent.relative_to(root).parts))
        return Function(f"{package}.{value.value}")
    return value


def _data_fields(source: DataSource, bench: Benchmark) -> dict[str, Any]:
    if source.kind == "hub":
        if source.path == bench.hub:
            return {}
        return {"dataset_path": source.path, "dataset_name": source.config}
    if source.kind == "disk":
        return {"dataset_path": source.path, "dataset_name": None, "dataset_kwargs": {"load_from_disk": True}}
    return {
        "dataset_path": "parquet",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {source.split: list(source.files)}},
    }


def overlay_config(bench: Benchmark, source: DataSource, root: Path | None = None) -> dict[str, Any]:
    """The overlay task's config (a dict ready for YAML)."""
    root = root or tasks_root()
    base_file = find_task_yaml(bench.lmms_task, root)
    base = _simple_config(base_file)
    data = _data_fields(source, bench)
    if bench.grader == "judge":
        keep = (
            "dataset_path",
            "dataset_name",
            "dataset_kwargs",
            "generation_kwargs",
            "lmms_eval_specific_kwargs",
            "doc_to_target",
        )
        config = {k: base[k] for k in keep if k in base}
        config.update(
            task=bench.task_name,
            test_split=bench.split,
            output_type="generate_until",
            doc_to_visual=Function("vlascore.qa.hooks.first_image"),
            doc_to_text=Function("vlascore.qa.hooks.prompted_question"),
            process_results=Function("vlascore.qa.hooks.keep_reply"),
            metric_list=[
                {"metric": PENDING_METRIC, "aggregation": Function("vlascore.qa.hooks.count"), "higher_is_better": True}
            ],
            metadata={"version": 0.0, "vlascore_overlay": OVERLAY_VERSION},
        )
        config.update(data)
        return config
    entries = [m for m in base.get("metric_list", []) if m.get("metric") == bench.metric]
    if not entries:
        raise LookupError(f"lmms-eval's task {bench.lmms_task} ({base_file}) has no metric {bench.metric!r}")
    metric = {k: _function_value(v, base_file, root) for k, v in entries[0].items()}
    if bench.aggregation:
        metric["aggregation"] = Function(bench.aggregation)
    config = {
        "include": str(base_file),
        "task": bench.task_name,
        "test_split": bench.split,
        "metric_list": [metric],
        "tag": [],
        "metadata": {"version": 0.0, "vlascore_overlay": OVERLAY_VERSION},
    }
    config.update(data)
    return config


def write_overlay(bench: Benchmark, source: DataSource, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{bench.task_name}.yaml"
    text = yaml.dump(overlay_config(bench, source), Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    path.write_text(f"# vlascore overlay of lmms-eval's {bench.lmms_task} (written by vlascore qa)\n{text}")
    return path
