"""Backend conformance, in the spirit of Gymnasium's env checker and of the adapter checker
(vlascore/adapters/check.py): build each task's env and drive a few resets and steps to find violations of the
simulator contract (vlascore/backends/base.py) in seconds, before a long evaluation or in a simulator plugin's own CI.

Each `check_*` function runs one check on a backend and returns one finding (`Check`: its name, a status ok, warn,
fail or skip, and a detail that says what was wrong); `check_backend` composes them per task and never raises for the
backend's faults. A task's checks other than `make` expect the backend to have made that task.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import numpy as np

from vlascore.backends.base import Backend, Observation, StepResult
from vlascore.checks import Check, Findings, Status
from vlascore.suites import TaskSpec

QUAT_TOLERANCE = 1e-3
"""How far a quaternion's norm may be from 1 (float32 simulators store poses with about 1e-7 error)."""
PROPRIO_KEYS = ("qpos", "qvel", "ee_pose")
"""Proprio entries the contract names (adapters converting conventions read `ee_pose`)."""
TASK_CHECKS = (
    "make",
    "reset_observation",
    "reset_seed_determinism",
    "reset_seed_varies",
    "env_reuse",
    "step_result",
    "step_determinism",
    "describe",
)
"""The checks run for every task, in order (`construct` before them, `close` after the last task): `env_reuse` comes
before the other stepping checks, so its first reset is one of an env that has not stepped yet."""


@dataclass
class BackendReport(Findings):
    """The findings of one backend on one task; `problems` are the failed checks."""

    backend: str
    task: str
    checks: list[Check] = field(default_factory=list)


P = ParamSpec("P")
T = TypeVar("T")
Verdict = tuple[Status, str]


class _CallFailed(Exception):
    """A backend call raised; the message names the call."""


def _call(what: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the backend's exception is the finding
        raise _CallFailed(f"{what} raised {type(exc).__name__}: {exc}") from exc


def _check(fn: Callable[P, Verdict]) -> Callable[P, Check]:
    """A check body returning (status, detail) as a `Check` named after the function (`check_make` -> `make`); an
    exception is a failure of that check."""
    name = fn.__name__.removeprefix("check_")

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> Check:
        try:
            status, detail = fn(*args, **kwargs)
        except _CallFailed as exc:
            status, detail = "fail", str(exc)
        except Exception as exc:  # noqa: BLE001 - e.g. an observation field of a type the contract does not allow
            status, detail = "fail", f"{type(exc).__name__} while checking: {exc}"
        return Check(name, status, detail)

    return run


def _verdict(problems: list[str], warnings: list[str], ok: str) -> Verdict:
    if problems:
        return "fail", "; ".join(problems + warnings)
    if warnings:
        return "warn", "; ".join(warnings)
    return "ok", ok


# --- actions ---------------------------------------------------------------------------------------------------------


def neutral_action(task: TaskSpec) -> np.ndarray:
    """An action of the task's dim that holds still: zero arm motion and, for an absolute gripper, the open command
    (a relative gripper gets 0, no change). Absolute arm modes get zeros too (no convention-free neutral exists)."""
    space = task.action_space
    action = np.zeros(space.dim, dtype=np.float64)
    if space.gripper == "absolute":
        action[-1] = float(space.gripper_open)
    return action


def probe_actions(task: TaskSpec, seed: int, n: int) -> list[np.ndarray]:
    """`n` reproducible actions that move the arm a little (delta modes: up to half the normalised range, or 2 cm /
    0.02 rad unnormalised) with the gripper held; other modes repeat the neutral action."""
    neutral = neutral_action(task)
    if not task.action_space.mode.endswith("_delta"):
        return [neutral.copy() for _ in range(n)]
    rng = np.random.default_rng([seed, 7])
    scale = 0.5 if task.action_space.normalized else 0.02
    out = []
    for _ in range(n):
        action = neutral.copy()
        action[:-1] = rng.uniform(-scale, scale, len(action) - 1)
        out.append(action)
    return out


# --- observations ----------------------------------------------------------------------------------------------------


def _image_findings(image: Any, task: TaskSpec, problems: list[str], warnings: list[str]) -> None:
    if image is None:
        where = f"camera {task.camera!r}"
        if task.resolution is not None:
            problems.append(
                f"image is None but the task declares a {task.resolution[0]}x{task.resolution[1]} image from {where}"
            )
        else:
            warnings.append(f"image is None ({where} gave no frame)")
        return
    if not isinstance(image, np.ndarray):
        problems.append(f"image is a {type(image).__name__}, not a numpy array")
        return
    if image.dtype != np.uint8:
        problems.append(f"image dtype is {image.dtype}, not uint8")
    if image.ndim != 3 or image.shape[2] != 3:
        problems.append(f"image shape is {image.shape}, not HxWx3")
    elif task.resolution is not None and image.shape[:2] != (task.resolution[1], task.resolution[0]):
        problems.append(
            f"image is {image.shape[1]}x{image.shape[0]} (WxH), the task declares "
            f"{task.resolution[0]}x{task.resolution[1]}"
        )
    if image.size and not problems and np.all(image == image.flat[0]):
        warnings.append(f"every pixel of the image is {image.flat[0]}: a blank render?")


def _pose_findings(label: str, pose: Any, problems: list[str]) -> None:
    try:
        arr = np.asarray(pose, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        problems.append(f"{label} is not numeric ({type(pose).__name__}: {exc})")
        return
    if arr.shape != (7,):
        problems.append(f"{label} has shape {arr.shape}, not 7 floats (x y z qw qx qy qz)")
        return
    if not np.all(np.isfinite(arr)):
        problems.append(f"{label} is not finite: {arr.tolist()}")
        return
    norm = float(np.linalg.norm(arr[3:]))
    if abs(norm - 1.0) > QUAT_TOLERANCE:
        problems.append(f"{label} quaternion {np.round(arr[3:], 4).tolist()} has norm {norm:.4f}, not 1")


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def observation_findings(obs: Any, task: TaskSpec) -> tuple[list[str], list[str]]:
    """(problems, warnings) of one observation against the contract and the task's declarations."""
    if not isinstance(obs, Observation):
        return [f"returned a {type(obs).__name__}, not an Observation"], []
    problems: list[str] = []
    warnings: list[str] = []
    _image_findings(obs.image, task, problems, warnings)
    if obs.instruction is not None and not isinstance(obs.instruction, str):
        problems.append(f"instruction is a {type(obs.instruction).__name__}, not a str or None")
    elif obs.instruction == "":
        warnings.append("instruction is an empty string (None means: the task's instruction)")
    priv = obs.privileged
    _pose_findings("privileged.ee_pose", priv.ee_pose, problems)
    g = priv.gripper
    if not isinstance(g, numbers.Real) or isinstance(g, bool) or not math.isfinite(g) or not 0.0 <= g <= 1.0:
        problems.append(f"privileged.gripper is {g!r}, not a float in [0 closed, 1 open]")
    if not isinstance(priv.objects, dict):
        problems.append(f"privileged.objects is a {type(priv.objects).__name__}, not a dict role -> pose")
    else:
        missing = sorted(set(task.objects) - set(priv.objects))
        extra = sorted(set(priv.objects) - set(task.objects))
        if missing:
            problems.append(f"privileged.objects lacks the task's role(s) {', '.join(missing)}")
        if extra:
            warnings.append(f"privileged.objects has role(s) the task does not declare: {', '.join(map(str, extra))}")
        for role, pose in priv.objects.items():
            _pose_findings(f"privileged.objects[{role!r}]", pose, problems)
    if not _is_bool(priv.is_grasped):
        problems.append(f"privileged.is_grasped is {priv.is_grasped!r}, not a bool")
    if not isinstance(obs.proprio, dict):
        problems.append(f"proprio is a {type(obs.proprio).__name__}, not a dict")
    else:
        absent = [k for k in PROPRIO_KEYS if k not in obs.proprio]
        if absent:
            warnings.append(f"proprio lacks {', '.join(absent)}")
        for key, value in obs.proprio.items():
            try:
                finite = bool(np.all(np.isfinite(np.asarray(value, dtype=np.float64))))
            except (TypeError, ValueError):
                finite = False
            if not finite:
                problems.append(f"proprio[{key!r}] is not a finite numeric array")
    return problems, warnings


def _same(a: Any, b: Any) -> bool:
    x, y = np.asarray(a), np.asarray(b)
    nan = np.issubdtype(x.dtype, np.inexact) and np.issubdtype(y.dtype, np.inexact)
    return x.shape == y.shape and bool(np.array_equal(x, y, equal_nan=nan))


def _array_difference(label: str, a: Any, b: Any) -> str | None:
    if a is None or b is None:
        return None if a is None and b is None else f"{label} is None in one and not the other"
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape:
        return f"{label} shape {x.shape} vs {y.shape}"
    if _same(x, y):
        return None
    try:
        delta = np.abs(x.astype(np.float64) - y.astype(np.float64))
        return f"{label} differs ({int(np.count_nonzero(delta))} of {x.size} values, max |diff| {np.nanmax(delta):.3g})"
    except (TypeError, ValueError):
        return f"{label} differs"


def observation_difference(a: Observation, b: Observation) -> str | None:
    """The first difference between two observations (image, privileged state, proprio, instruction), or None."""
    pa, pb = a.privileged, b.privileged
    if set(pa.objects) != set(pb.objects):
        return f"privileged.objects roles {sorted(pa.objects)} vs {sorted(pb.objects)}"
    if set(a.proprio) != set(b.proprio):
        return f"proprio keys {sorted(a.proprio)} vs {sorted(b.proprio)}"
    pairs = [
        ("image", a.image, b.image),
        ("privileged.ee_pose", pa.ee_pose, pb.ee_pose),
        ("privileged.gripper", pa.gripper, pb.gripper),
        ("privileged.is_grasped", pa.is_grasped, pb.is_grasped),
    ]
    pairs += [(f"privileged.objects[{r!r}]", pa.objects[r], pb.objects[r]) for r in pa.objects]
    pairs += [(f"proprio[{k!r}]", a.proprio[k], b.proprio[k]) for k in a.proprio]
    for label, x, y in pairs:
        diff = _array_difference(label, x, y)
        if diff:
            return diff
    if a.instruction != b.instruction:
        return f"instruction {a.instruction!r} vs {b.instruction!r}"
    if a.step != b.step:
        return f"step {a.step} vs {b.step}"
    return None


# --- the checks ------------------------------------------------------------------------------------------------------


@_check
def check_make(backend: Backend, task: TaskSpec) -> Verdict:
    """make(task) builds (or switches to) the task's env."""
    t = time.perf_counter()
    _call(f"make({task.id!r})", backend.make, task)
    return "ok", f"made {task.env_id} in {time.perf_counter() - t:.2f} s"


@_check
def check_reset_observation(backend: Backend, task: TaskSpec, seed: int = 0) -> Verdict:
    """reset(seed) returns an Observation of the task's image size with a valid instruction, TCP pose, gripper
    opening and a pose for each of the task's object roles."""
    obs = _call(f"reset({seed})", backend.reset, seed)
    problems, warnings = observation_findings(obs, task)
    if isinstance(obs, Observation) and obs.step != 0:
        warnings.append(f"the reset observation has step {obs.step}, not 0")
    shape = "no image" if not isinstance(obs, Observation) or obs.image is None else f"image {np.shape(obs.image)}"
    roles = ", ".join(task.objects) or "none"
    return _verdict(problems, warnings, f"{shape}, unit-quaternion ee_pose, gripper in [0, 1], object poses: {roles}")


@_check
def check_reset_seed_determinism(backend: Backend, task: TaskSpec, seed: int = 0) -> Verdict:
    """reset(seed) twice gives the same observation and privileged state."""
    first = _call(f"reset({seed})", backend.reset, seed)
    second = _call(f"second reset({seed})", backend.reset, seed)
    diff = observation_difference(first, second)
    if diff:
        return "fail", f"reset({seed}) twice gave different initial states: {diff}"
    return "ok", f"reset({seed}) twice gave identical observations and privileged state"


@_check
def check_reset_seed_varies(backend: Backend, task: TaskSpec, seed: int = 0) -> Verdict:
    """Another seed starts another episode (a warning only: a task may have no randomness)."""
    other = next((s for s in task.seeds if s != seed), seed + 1)
    if task.grid and other not in task.seeds:
        return "skip", "the task's grid has no second episode"
    a = _call(f"reset({seed})", backend.reset, seed)
    b = _call(f"reset({other})", backend.reset, other)
    if observation_difference(a, b) is None:
        return "warn", f"reset({seed}) and reset({other}) gave identical initial states: is the seed used?"
    return "ok", f"reset({other}) starts from another state than reset({seed})"


@_check
def check_step_result(backend: Backend, task: TaskSpec, seed: int = 0) -> Verdict:
    """step(neutral action) returns a StepResult with a finite float reward, bool success and terminated, and a valid
    observation of the reset observation's shape."""
    obs0 = _call(f"reset({seed})", backend.reset, seed)
    action = neutral_action(task)
    t = time.perf_counter()
    result = _call(f"step({action.tolist()})", backend.step, action)
    ms = (time.perf_counter() - t) * 1e3
    if not isinstance(result, StepResult):
        return "fail", f"step() returned a {type(result).__name__}, not a StepResult"
    problems: list[str] = []
    warnings: list[str] = []
    r = result.reward
    if not isinstance(r, numbers.Real) or isinstance(r, bool | np.bool_):
        problems.append(f"reward is a {type(r).__name__}, not a float")
    elif not math.isfinite(r):
        problems.append(f"reward is {r}, not finite")
    for label, flag in (("success", result.success), ("terminated", result.terminated)):
        if isinstance(flag, np.bool_):
            warnings.append(f"{label} is a numpy bool; return a Python bool")
        elif not isinstance(flag, bool):
            problems.append(f"{label} is {flag!r} ({type(flag).__name__}), not a bool")
    if not isinstance(result.info, dict):
        problems.append(f"info is a {type(result.info).__name__}, not a dict")
    obs_problems, obs_warnings = observation_findings(result.observation, task)
    problems += [f"observation after step: {p}" for p in obs_problems]
    warnings += [f"observation after step: {w}" for w in obs_warnings]
    obs = result.observation
    if isinstance(obs, Observation) and isinstance(obs0, Observation):
        shape0 = None if obs0.image is None else np.shape(obs0.image)
        shape1 = None if obs.image is None else np.shape(obs.image)
        if shape0 != shape1:
            problems.append(f"the image after step has shape {shape1}, after reset {shape0}")
        if obs.step != 1:
            warnings.append(f"the observation after the first step has step {obs.step}, not 1")
    if problems:
        return _verdict(problems, warnings, "")
    ok = (
        f"step(neutral {action.tolist()}) in {ms:.1f} ms: reward {float(r):.4g}, success {bool(result.success)}, "
        f"terminated {bool(result.terminated)}"
    )
    return _verdict(problems, warnings, ok)


def _rollout(backend: Backend, seed: int, actions: list[np.ndarray], run: str) -> list[Any]:
    """[reset observation, step results...] of one episode of `actions`, stopping at termination."""
    trajectory: list[Any] = [_call(f"{run} reset({seed})", backend.reset, seed)]
    for i, action in enumerate(actions):
        result = _call(f"{run} step {i}", backend.step, action)
        trajectory.append(result)
        if result.terminated:
            break
    return trajectory


def _step_difference(a: StepResult, b: StepResult) -> str | None:
    for label, x, y in (
        ("reward", a.reward, b.reward),
        ("success", a.success, b.success),
        ("terminated", a.terminated, b.terminated),
    ):
        if not _same(x, y):
            return f"{label} {x!r} vs {y!r}"
    return observation_difference(a.observation, b.observation)


@_check
def check_step_determinism(backend: Backend, task: TaskSpec, seed: int = 0, steps: int = 5) -> Verdict:
    """The same seed and the same actions give the same trajectory (observations, rewards, success, termination)."""
    actions = probe_actions(task, seed, steps)
    first = _rollout(backend, seed, actions, "first")
    second = _rollout(backend, seed, actions, "second")
    if len(first) != len(second):
        return "fail", f"the same actions terminated after {len(first) - 1} steps, then after {len(second) - 1}"
    diff = observation_difference(first[0], second[0])
    if diff:
        return "fail", f"reset({seed}): {diff}"
    for i, (x, y) in enumerate(zip(first[1:], second[1:], strict=True)):
        diff = _step_difference(x, y)
        if diff:
            return "fail", f"step {i} of the same seed and actions: {diff}"
    return "ok", f"seed {seed} and the same {len(first) - 1} actions gave identical trajectories"


@_check
def check_env_reuse(backend: Backend, task: TaskSpec, seed: int = 0, steps: int = 5) -> Verdict:
    """The env is reused across episodes: reset(seed) after steps, and after making the same task again, starts the
    same episode as the first reset(seed) (run before the env's first step, it is a fresh env's), and steps."""
    actions = probe_actions(task, seed, max(steps, 1))
    reference = _rollout(backend, seed, actions, "first")[0]
    again = _call(f"reset({seed}) after {len(actions)} steps", backend.reset, seed)
    diff = observation_difference(reference, again)
    if diff:
        return "fail", f"reset({seed}) after steps differs from the first reset({seed}): {diff}"
    t = time.perf_counter()
    _call(f"make({task.id!r}) again", backend.make, task)
    remake_s = time.perf_counter() - t
    after = _call(f"reset({seed}) after making the task again", backend.reset, seed)
    diff = observation_difference(reference, after)
    if diff:
        return "fail", f"reset({seed}) after making the task again differs from the first: {diff}"
    _call("step() after making the task again", backend.step, neutral_action(task))
    return "ok", f"reset after steps and after make() again (took {remake_s:.2f} s) start the same episode"


@_check
def check_describe(backend: Backend) -> Verdict:
    """describe() returns a JSON-serialisable dict that does not change between calls (it is stored in the run
    record and compared on --resume)."""
    described = _call("describe()", backend.describe)
    if not isinstance(described, dict):
        return "fail", f"describe() returned a {type(described).__name__}, not a dict"
    try:
        text = json.dumps(described, sort_keys=True)
    except (TypeError, ValueError) as exc:
        return "fail", f"describe() is not JSON-serialisable (it is stored in the run record): {exc}"
    again = json.dumps(_call("second describe()", backend.describe), sort_keys=True, default=repr)
    if again != text:
        return "fail", f"describe() changed between calls ({text} then {again}): --resume would refuse the run"
    return "ok", f"JSON-serialisable: {text if len(text) <= 200 else text[:197] + '...'}"


@_check
def check_close(backend: Backend) -> Verdict:
    """close() releases the backend without raising (a second close() should be harmless too)."""
    _call("close()", backend.close)
    try:
        backend.close()
    except Exception as exc:  # noqa: BLE001
        return "warn", f"a second close() raised {type(exc).__name__}: {exc}"
    return "ok", "close() and a second close() returned"


# --- composition -----------------------------------------------------------------------------------------------------


def _task_checks(backend: Backend, task: TaskSpec, seed: int, steps: int) -> list[Check]:
    made = check_make(backend, task)
    if made.status == "fail":
        return [made] + [Check(name, "skip", "not run: make() failed") for name in TASK_CHECKS[1:]]
    checks = [made, check_reset_observation(backend, task, seed)]
    determinism = check_reset_seed_determinism(backend, task, seed)
    checks += [determinism, check_reset_seed_varies(backend, task, seed)]
    reproducible = determinism.status != "fail"  # env_reuse and step_determinism compare against reset(seed)
    why = "not compared: reset(seed) is not reproducible"
    checks.append(check_env_reuse(backend, task, seed, steps) if reproducible else Check("env_reuse", "skip", why))
    checks.append(check_step_result(backend, task, seed))
    if reproducible:
        checks.append(check_step_determinism(backend, task, seed, steps))
    else:
        checks.append(Check("step_determinism", "skip", why))
    checks.append(check_describe(backend))
    return checks


def check_backend(
    make_backend: Callable[[], Backend], tasks: list[TaskSpec], *, seed: int = 0, steps: int = 5
) -> list[BackendReport]:
    """Construct the backend once, run the checks on each task in order (one report per task) and close it (the
    `close` finding goes in the last report); never raises for the backend's faults."""
    if not tasks:
        raise ValueError("check_backend needs at least one task")
    try:
        backend = make_backend()
    except Exception as exc:  # noqa: BLE001 - a failure to construct is the finding
        report = BackendReport(backend="?", task=tasks[0].id)
        report.add("construct", "fail", f"{type(exc).__name__}: {exc}")
        return [report]
    name = getattr(backend, "name", "") or type(backend).__name__
    reports: list[BackendReport] = []
    try:
        for task in tasks:
            report = BackendReport(backend=name, task=task.id)
            reports.append(report)
            report.add("construct", "ok", f"{type(backend).__module__}.{type(backend).__qualname__}")
            if not getattr(backend, "name", ""):
                report.add("name", "warn", "the backend sets no `name`")
            try:
                report.checks += _task_checks(backend, task, seed, steps)
            except Exception as exc:  # noqa: BLE001 - a fault the checks did not foresee is still a finding
                report.add("unexpected", "fail", f"{type(exc).__name__}: {exc}")
    finally:
        reports[-1].checks.append(check_close(backend))
    return reports
