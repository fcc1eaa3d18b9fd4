"""Task suites: YAML data in tasks/, validated into frozen specs with a protocol version and a fingerprint.

The fingerprint is a hash of the normalised spec (defaults applied, seeds expanded), so two files that
describe the same protocol share it and any change that could move a score changes it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vlascore.episode_grid import EpisodeBlock, EpisodeCell, expand_grid, grid_cell, grid_size
from vlascore.paths import SAFE_NAME, data_dir, read_yaml_mapping, yaml_line
from vlascore.registry import did_you_mean
from vlascore.versioned import check_version, first_error

SUITE_SCHEMA_VERSION = 1
MAX_EPISODES = 100_000
"""Most episodes a task may list (a seed range or a grid): a few characters of YAML must not expand to billions."""

# Fields added after suites were first fingerprinted. They are left out of the fingerprint while they hold their
# default, so a suite that does not use them keeps the fingerprint (and the resumable runs) it had.
_LATE_FIELDS: dict[str, dict[str, Any]] = {
    "suite": {"columns": [], "averages": [], "key_prefix": ""},
    "task": {"grid": None, "sim_freq": None, "control_freq": None, "mean_over": []},
    "action_space": {"gripper": "absolute"},
}


class SuiteError(ValueError):
    """A suite file that cannot be read or does not validate."""


class SeedRange(BaseModel):
    """A compact seed list: `count` consecutive seeds from `start`."""

    model_config = ConfigDict(extra="forbid")
    start: int = 0
    """First seed."""
    count: int = Field(gt=0, le=MAX_EPISODES)
    """How many consecutive seeds."""


class ActionSpace(BaseModel):
    """The action convention a task expects; adapters must declare the same one (checked before step 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["ee_delta", "ee_absolute", "joint_delta", "joint_absolute"] = "ee_delta"
    """What the arm part of the action commands."""
    rotation: Literal["euler_xyz", "euler_rpy", "axis_angle", "quaternion", "rot6d", "none"] = "euler_xyz"
    """Rotation representation of the arm part (see vlascore/adapters/conventions.py for the exact definitions:
    euler_xyz is intrinsic X-Y-Z as ManiSkill applies it, euler_rpy roll-pitch-yaw about fixed axes)."""
    dim: int = 7
    """Length of one action vector (arm + gripper)."""
    normalized: bool = True
    """Whether each entry is in [-1, 1] and scaled by the controller."""
    gripper_open: Literal[1, -1] = 1
    """Sign of the gripper command that opens the gripper."""
    gripper_binary: bool = False
    """Whether the gripper takes only the two extreme values."""
    gripper: Literal["absolute", "relative"] = "absolute"
    """`absolute`: the command is a target opening. `relative`: a change of the target (SimplerEnv's Google Robot
    controller, gripper_pd_joint_target_delta_pos); the two do not convert into each other."""


class TaskSpec(BaseModel):
    """One task of a suite: what the simulator builds and what the policy is told."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    """Short task id, unique in the suite (used in episode ids and tables)."""
    env_id: str
    """Simulator environment id (e.g. ManiSkill's `PickCube-v1`)."""
    instruction: str
    """Natural-language instruction given to the policy."""
    category: str = ""
    """Task family (Pick, Push, Stack, Put, Open, Move), used for retrieval and summaries."""
    control_mode: str = "pd_ee_delta_pose"
    """Simulator controller; `pd_ee_delta_pose` is end-effector delta pose."""
    action_space: ActionSpace = ActionSpace()
    """The action convention of `control_mode`."""
    camera: str = "base_camera"
    """Camera whose image is the policy's observation and the recorded frame."""
    resolution: tuple[int, int] | None = (128, 128)
    """Camera (width, height) in pixels; None keeps the simulator's own (the SimplerEnv twins' real-camera
    size, which their green-screen overlay matches)."""
    max_steps: int = Field(default=100, gt=0)
    """Episode horizon in control steps; reaching it ends the episode with `max_steps`."""
    seeds: list[int]
    """Episode seeds in run order; `--episodes N` takes the first N. For a grid task, the grid's cell indices."""
    objects: dict[str, str] = {}
    """Role -> simulator attribute for privileged state (e.g. `cube: cube`, `goal: goal_site`)."""
    success_mode: Literal["ever", "final"] = "ever"
    """`ever`: the episode ends at the first success step. `final`: runs to the horizon, success at the end."""
    env_kwargs: dict[str, Any] = {}
    """Extra keyword arguments passed to the simulator's make()."""
    grid: list[EpisodeBlock] | None = None
    """Episode grid (vlascore/episode_grid.py): episode i is cell i, built and reset with its settings. None: the
    episodes are the seeds, all on one environment."""
    mean_over: list[str] = []
    """Grid labels (`variant` or axis names) whose combinations are averaged with equal weight: the task's rate is
    the mean of the groups' rates, as SimplerEnv averages per variant (VA) or per URDF (VM). Empty: the rate over
    all the task's episodes."""
    sim_freq: int | None = None
    """Physics steps per second; None: the simulator's default."""
    control_freq: int | None = None
    """Control steps (actions) per second; None: the simulator's default."""

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if not SAFE_NAME.fullmatch(value):
            raise ValueError(
                f"task id {value[:120]!r} is not a safe file name (it names the episodes' frames files): use letters, "
                "digits and . _ + -, starting with a letter or digit, at most 100 characters"
            )
        return value

    @property
    def episode_count(self) -> int:
        """Episodes a full run of the task has (a grid task's seeds are its cells, all of them unless listed)."""
        return len(self.seeds)

    def cell(self, index: int) -> EpisodeCell | None:
        """What episode `index` builds and resets with (None for a seeded task)."""
        return grid_cell(self.grid, index, self.env_id, self.env_kwargs) if self.grid else None

    @model_validator(mode="after")
    def _seeds_in_grid(self) -> TaskSpec:
        if self.grid:
            size = grid_size(self.grid)
            outside = [s for s in self.seeds if not 0 <= s < size]
            if outside:
                raise ValueError(f"task {self.id!r}: seeds {outside[:5]} are outside its grid of {size} episodes")
        return self


class Column(BaseModel):
    """A result column: the unweighted mean of some tasks' success rates (e.g. SimplerEnv's Pick Coke Can, the
    mean of its three orientations)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    """Column id, unique in the suite."""
    title: str = ""
    tasks: list[str] = Field(min_length=1)
    """Task ids averaged (one task: the column is that task's rate)."""
    key: str = ""
    """Name of the column across suites (summaries in tasks/qa/summaries.yaml, `vlascore simreal`), e.g.
    `google_vm/pick_coke_can`; empty: `<key_prefix or suite name>/<id>`. Suites sharing a key must run the same
    protocol for that column."""
    in_mean: bool = True
    """Whether the suite mean counts it (False for breakdown columns such as one coke-can orientation)."""


class Average(BaseModel):
    """A headline average over named columns, always stated with them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    title: str = ""
    columns: list[str] = Field(min_length=1)
    """Column ids averaged, unweighted."""


class Suite(BaseModel):
    """A named, versioned collection of tasks."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: int = SUITE_SCHEMA_VERSION
    """Version of this file format."""
    name: str
    """Suite name (`--suite`)."""
    protocol_version: str
    """Bumped by hand whenever the protocol changes meaningfully; stored with every result."""
    description: str = ""
    """One paragraph for `vlascore tasks list`."""
    backend: str = "maniskill"
    """Simulator backend that runs the tasks."""
    key_prefix: str = ""
    """Prefix of the suite's column keys (default: the suite name), e.g. `google_vm`."""
    tasks: list[TaskSpec]
    """The tasks, in run order."""
    columns: list[Column] = []
    """Result columns; empty: one column per task."""
    averages: list[Average] = []
    """Headline averages over columns (the suite mean is the mean of the columns with `in_mean`)."""

    @field_validator("tasks")
    @classmethod
    def _unique_ids(cls, tasks: list[TaskSpec]) -> list[TaskSpec]:
        ids = [t.id for t in tasks]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate task ids: {', '.join(dupes)}")
        if not tasks:
            raise ValueError("a suite needs at least one task")
        return tasks

    @model_validator(mode="after")
    def _check_columns(self) -> Suite:
        ids = {t.id for t in self.tasks}
        for col in self.columns:
            unknown = [t for t in col.tasks if t not in ids]
            if unknown:
                raise ValueError(f"column {col.id!r} names unknown tasks: {', '.join(unknown)}")
        col_ids = [c.id for c in self.result_columns]
        if len(set(col_ids)) != len(col_ids):
            raise ValueError("duplicate column ids")
        for avg in self.averages:
            unknown = [c for c in avg.columns if c not in col_ids]
            if unknown:
                raise ValueError(f"average {avg.id!r} names unknown columns: {', '.join(unknown)}")
        return self

    @property
    def result_columns(self) -> list[Column]:
        """The declared columns, or one per task."""
        return list(self.columns) or [Column(id=t.id, title=t.id, tasks=[t.id]) for t in self.tasks]

    def column_key(self, column: Column) -> str:
        return column.key or f"{self.key_prefix or self.name}/{column.id}"

    @property
    def fingerprint(self) -> str:
        """sha256 (first 16 hex) of the normalised spec; the description does not count."""
        spec = _without_late_defaults(self.model_dump(mode="json", exclude={"description"}))
        blob = json.dumps(spec, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def with_success_mode(self, mode: Literal["ever", "final"]) -> Suite:
        """The same suite with every task's success semantics set to `mode` (another protocol: another fingerprint)."""
        spec = self.model_dump(mode="json")
        spec["tasks"] = [{**t, "success_mode": mode} for t in spec["tasks"]]
        return Suite.model_validate(spec)

    def task(self, task_id: str) -> TaskSpec:
        """The task `task_id`; a name that differs only in case finds it too (`-t pickcube`), as model, suite and
        judge names do, unless two tasks differ only in case."""
        for t in self.tasks:
            if t.id == task_id:
                return t
        folded = [t for t in self.tasks if t.id.casefold() == task_id.casefold()]
        if len(folded) == 1:
            return folded[0]
        ids = [t.id for t in self.tasks]
        hint = did_you_mean(task_id, ids)
        listing = ", ".join(ids[:20]) + (
            f" (+{len(ids) - 20} more: `vlascore tasks list {self.name}`)" if len(ids) > 20 else ""
        )
        raise SuiteError(f"suite {self.name!r} has no task {task_id!r}.{hint} Tasks: {listing}")


def _without_late_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    def strip(d: dict[str, Any], kind: str) -> dict[str, Any]:
        return {k: v for k, v in d.items() if not (k in _LATE_FIELDS[kind] and v == _LATE_FIELDS[kind][k])}

    tasks = [strip({**t, "action_space": strip(t["action_space"], "action_space")}, "task") for t in spec["tasks"]]
    return {**strip(spec, "suite"), "tasks": tasks}


def _shape(value: Any, kind: type, what: str) -> Any:
    """`value` when it is a `kind` (list or mapping), for the parts of a suite read before validation."""
    if not isinstance(value, kind):
        shape = "a list" if kind is list else "a mapping"
        raise SuiteError(f"{what} must be {shape}, not {type(value).__name__} ({str(value)[:60]!r})")
    return value


def _normalise(raw: dict[str, Any]) -> dict[str, Any]:
    """Apply `defaults:` to every task, expand seed ranges and grid shorthands, so the spec is explicit."""
    raw = dict(raw)
    raw.pop("anchors", None)  # a place for YAML anchors the tasks reuse; not part of the spec
    defaults = _shape(raw.pop("defaults", {}) or {}, dict, "`defaults`")
    tasks = []
    for k, task in enumerate(_shape(raw.get("tasks", []) or [], list, "`tasks`")):
        merged = {**defaults, **_shape(task, dict, f"task {k + 1} of `tasks`")}
        if merged.get("grid") is not None:
            try:
                merged["grid"] = expand_grid(merged["grid"])
            except ValueError as exc:
                raise SuiteError(f"task {merged.get('id', '?')!r}: {exc}") from exc
            if "seeds" not in task:  # a grid task runs every cell unless it lists some
                size = sum(EpisodeBlock.model_validate(b).size for b in merged["grid"])
                if size > MAX_EPISODES:
                    raise SuiteError(
                        f"task {merged.get('id', '?')!r}: its grid has {size} cells, more than {MAX_EPISODES}"
                    )
                merged["seeds"] = list(range(size))
        seeds = merged.get("seeds")
        if isinstance(seeds, dict):
            rng = SeedRange.model_validate(seeds)
            merged["seeds"] = list(range(rng.start, rng.start + rng.count))
        tasks.append(merged)
    included_tasks: list[dict[str, Any]] = []
    included_columns: list[dict[str, Any]] = []
    for spec in _shape(raw.pop("include", []) or [], list, "`include`"):
        t, c = _include(spec, raw.get("backend", "maniskill"))
        included_tasks += t
        included_columns += c
    raw["tasks"] = included_tasks + tasks
    if included_columns:
        raw["columns"] = included_columns + list(raw.get("columns", []) or [])
    return raw


def _include(spec: Any, backend: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Tasks and columns of another suite (`include: [{suite, tasks, columns, prefix}]`), ids prefixed, column keys
    kept: the same protocol under the same key, without copying its YAML."""
    if not isinstance(spec, dict) or "suite" not in spec:
        raise SuiteError(f"an include needs `suite` (and optional tasks, columns, prefix), got {spec!r}")
    extra = sorted(set(spec) - {"suite", "tasks", "columns", "prefix"})
    if extra:
        raise SuiteError(f"include of {spec['suite']!r}: unknown keys {', '.join(extra)}")
    other = load_suite(spec["suite"])
    if other.backend != backend:
        raise SuiteError(f"include of {other.name!r}: its backend is {other.backend!r}, this suite's {backend!r}")
    prefix = str(spec.get("prefix", ""))
    wanted = list(spec.get("tasks") or [t.id for t in other.tasks])
    tasks = [{**other.task(t).model_dump(mode="json"), "id": prefix + t} for t in wanted]
    cols = [c for c in other.result_columns if set(c.tasks) <= set(wanted)]
    if spec.get("columns"):
        unknown = sorted(set(spec["columns"]) - {c.id for c in cols})
        if unknown:
            raise SuiteError(f"include of {other.name!r}: no column(s) {', '.join(unknown)} over the included tasks")
        cols = [c for c in cols if c.id in spec["columns"]]
    columns = [
        {**c.model_dump(), "id": prefix + c.id, "tasks": [prefix + t for t in c.tasks], "key": other.column_key(c)}
        for c in cols
    ]
    return tasks, columns


def load_suite_file(path: str | Path) -> Suite:
    path = Path(path)
    raw = read_yaml_mapping(path, "suite", "`name`, `protocol_version` and `tasks`", SuiteError)
    check_version(raw.get("schema_version", 1), Suite, f"suite {path}", error=SuiteError)
    try:
        return Suite.model_validate(_normalise(raw))
    except ValidationError as exc:
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        # the line of the value in the file as written (included tasks come first in the spec: no line for those)
        line = None if raw.get("include") else yaml_line(path, tuple(exc.errors()[0]["loc"]))
        raise SuiteError(f"invalid suite {path}{f':{line}' if line else ''}: {first_error(exc)}{more}") from None
    except SuiteError as exc:
        raise SuiteError(f"invalid suite {path}: {exc}") from None
    except (TypeError, AttributeError, ValueError) as exc:  # a shape the normalising step did not expect
        raise SuiteError(f"invalid suite {path}: {type(exc).__name__}: {exc}") from None
    except RecursionError:
        raise SuiteError(f"invalid suite {path}: its includes include each other") from None


def builtin_suite_paths() -> dict[str, Path]:
    """Suite name -> YAML file for the suites shipped in tasks/."""
    return {p.stem: p for p in sorted(data_dir("tasks").glob("*.yaml"))}


def load_suite(name_or_path: str | Path) -> Suite:
    """A built-in suite by name, or any suite YAML by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_suite_file(path)
    builtin = builtin_suite_paths()
    if str(name_or_path) not in builtin:
        hint = did_you_mean(str(name_or_path), builtin)
        raise SuiteError(f"unknown suite {name_or_path!r}.{hint} Built-in: {', '.join(builtin)}; or pass a YAML path")
    return load_suite_file(builtin[str(name_or_path)])
