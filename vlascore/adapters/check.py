"""Adapter conformance, in the spirit of Gymnasium's env checker: run before a long evaluation, or in a
plugin's own CI, to find contract violations in seconds instead of as errored episodes.

Observations are synthetic but shaped exactly like the task's (camera resolution, proprio keys, privileged
poses of the task's object roles), so no simulator is needed; `observe=` can supply real ones instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlascore.adapters.base import Adapter, EpisodeContext, InvalidActionError, PolicyStep, validate_actions
from vlascore.adapters.conventions import check_conventions
from vlascore.backends.base import Observation, PrivilegedState
from vlascore.checks import Check, Findings
from vlascore.suites import TaskSpec


@dataclass
class CheckReport(Findings):
    adapter: str
    task: str
    checks: list[Check] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)


def synthetic_observation(task: TaskSpec, rng: np.random.Generator, step: int = 0) -> Observation:
    """An observation with the task's image size and a plausible scene: objects on a table in front of the TCP."""
    # a task at the simulator's own camera size (SimplerEnv) gets a typical real-camera frame
    width, height = task.resolution or (640, 480)
    ident = np.array([1.0, 0.0, 0.0, 0.0])
    ee_pose = np.concatenate([[0.0, 0.0, 0.2] + rng.normal(0, 0.01, 3), ident])
    objects = {role: np.concatenate([[*rng.uniform(-0.1, 0.1, 2), 0.02], ident]) for role in task.objects}
    privileged = PrivilegedState(ee_pose=ee_pose, gripper=1.0, objects=objects)
    proprio = {"qpos": rng.normal(0, 0.1, 9), "qvel": np.zeros(9), "ee_pose": ee_pose}
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Observation(image=image, proprio=proprio, privileged=privileged, step=step)


Observe = Callable[[TaskSpec, int, int], Observation]
"""(task, seed, step) -> observation; the same arguments must give the same observation."""


def _synthetic(task: TaskSpec, seed: int, step: int) -> Observation:
    return synthetic_observation(task, np.random.default_rng([seed, step]), step)


def _same(a: list[PolicyStep], b: list[PolicyStep]) -> bool:
    return all(
        np.array_equal(np.asarray(x.action), np.asarray(y.action))
        and (x.reasoning, x.intention) == (y.reasoning, y.intention)
        for x, y in zip(a, b, strict=True)
    )


def check_adapter(
    make: Callable[[], Adapter],
    tasks: list[TaskSpec],
    *,
    seed: int = 0,
    steps: int = 3,
    timed_calls: int = 5,
    max_latency_ms: float | None = None,
    observe: Observe = _synthetic,
) -> list[CheckReport]:
    """Construct the adapter once and run the conformance checks on each task; never raises for its faults."""
    try:
        adapter = make()
    except Exception as exc:  # noqa: BLE001 - a failure to construct is the finding
        report = CheckReport(adapter="?", task=tasks[0].id if tasks else "-")
        report.add("construct", "fail", f"{type(exc).__name__}: {exc}")
        return [report]
    reports = []
    try:
        for task in tasks:
            report = CheckReport(adapter=adapter.name or type(adapter).__name__, task=task.id)
            reports.append(report)
            try:
                _run_checks(adapter, task, report, seed, steps, timed_calls, max_latency_ms, observe)
            except Exception as exc:  # noqa: BLE001 - e.g. reset() raising inside the latency loop
                report.add("unexpected", "fail", f"{type(exc).__name__}: {exc}")
    finally:
        try:
            adapter.close()
        except Exception as exc:  # noqa: BLE001
            if reports:
                reports[-1].add("close", "fail", f"{type(exc).__name__}: {exc}")
    return reports


def _run_checks(
    adapter: Adapter,
    task: TaskSpec,
    report: CheckReport,
    seed: int,
    steps: int,
    timed_calls: int,
    max_latency_ms: float | None,
    observe: Observe,
) -> None:
    add = report.add
    add("construct", "ok", f"{type(adapter).__module__}.{type(adapter).__qualname__}")
    if not adapter.name:
        add("name", "warn", "the adapter sets no `name`")
    try:
        info = adapter.info()
        json.dumps(info)
        add("info", "ok", "info() is JSON-serialisable (stored in the run record)")
    except Exception as exc:  # noqa: BLE001
        add("info", "fail", f"info() must return JSON-serialisable data: {type(exc).__name__}: {exc}")
    try:
        conv = check_conventions(adapter, task)
        space = task.action_space if adapter.speaks_task_convention else adapter.action_space
        desc = f"{space.mode} {space.rotation} dim {space.dim} normalised={space.normalized}" + (
            " (the task's own: it speaks each task's convention)" if adapter.speaks_task_convention else ""
        )
        add("conventions", "ok", desc + (f"; converted for {task.id}: {', '.join(conv.steps)}" if conv else ""))
    except Exception as exc:  # noqa: BLE001
        add("conventions", "fail", str(exc))
        return
    if adapter.uses_privileged_state:
        add("privileged state", "warn", "reads simulator ground truth: a scripted expert, not a deployable policy")

    def episode(n: int) -> list[PolicyStep]:
        adapter.reset(EpisodeContext(task=task, seed=seed, episode_id=f"{task.id}-{seed}"))
        return [adapter.act(observe(task, seed, i), task.instruction) for i in range(n)]

    try:
        outs = episode(steps)
    except Exception as exc:  # noqa: BLE001
        add("act", "fail", f"reset()/act() raised {type(exc).__name__}: {exc}")
        return
    shape_ok = True
    for i, out in enumerate(outs):
        try:
            actions = validate_actions(out, adapter)
        except InvalidActionError as exc:
            add("actions", "fail", f"step {i}: {exc}")
            shape_ok = False
            break
        raw = np.asarray(out.action)
        if not np.issubdtype(raw.dtype, np.floating):
            add("dtype", "warn", f"step {i}: action dtype {raw.dtype}; return floats")
        _bounds(adapter, actions, i, report)
    if shape_ok:
        k = {np.asarray(o.action).reshape(-1, adapter.action_space.dim).shape[0] for o in outs}
        add(
            "actions",
            "ok",
            f"{steps} calls, chunk length(s) {sorted(k)} (chunk_size {adapter.chunk_size}, "
            f"executes {adapter.execute_steps or 'all'}), finite",
        )
    _text(adapter, outs, report)
    deterministic = False
    try:
        deterministic = _same(outs, episode(steps))
        if deterministic:
            add("determinism", "ok", f"same seed -> the same {steps} outputs")
        else:
            add("determinism", "fail", "reset() with the same seed and the same observations gave different outputs")
    except Exception as exc:  # noqa: BLE001
        add("determinism", "fail", f"second episode raised {type(exc).__name__}: {exc}")
    if not deterministic:
        add("act_batch", "skip", "not compared: outputs are not reproducible")
    else:
        _batch(adapter, task, seed, steps, outs, observe, report)
    _latency(adapter, task, seed, timed_calls, max_latency_ms, observe, report)


def _batch(
    adapter: Adapter,
    task: TaskSpec,
    seed: int,
    steps: int,
    outs: list[PolicyStep],
    observe: Observe,
    report: CheckReport,
) -> None:
    add = report.add
    try:
        adapter.reset(EpisodeContext(task=task, seed=seed, episode_id=f"{task.id}-{seed}"))
        batched = adapter.act_batch([observe(task, seed, i) for i in range(steps)], [task.instruction] * steps)
        if len(batched) != steps:
            add("act_batch", "fail", f"act_batch of {steps} returned {len(batched)} steps")
        elif _same(outs, batched):
            add("act_batch", "ok", f"a batch of {steps} equals {steps} act() calls")
        else:
            add("act_batch", "fail", "act_batch differs from act() called on the same observations in order")
    except Exception as exc:  # noqa: BLE001
        add("act_batch", "fail", f"{type(exc).__name__}: {exc}")


def _bounds(adapter: Adapter, actions: np.ndarray, i: int, report: CheckReport) -> None:
    space = adapter.action_space
    if space.normalized and np.any(np.abs(actions) > 1 + 1e-6):
        report.add(
            "bounds",
            "warn",
            f"step {i}: normalised action outside [-1, 1] (the controller clips): {np.round(actions, 3).tolist()}",
        )
    grip = actions[:, -1]
    if space.gripper_binary and not np.all(np.isin(grip, (-1.0, 1.0))):
        report.add("gripper", "fail", f"step {i}: declared a binary gripper but sent {grip.tolist()}")
    elif space.normalized and np.any(np.abs(grip) > 1 + 1e-6):
        report.add("gripper", "warn", f"step {i}: gripper command {grip.tolist()} outside [-1, 1]")


def _text(adapter: Adapter, outs: list[PolicyStep], report: CheckReport) -> None:
    texts = [v for o in outs for v in (o.reasoning, o.intention) if v is not None]
    bad = [type(v).__name__ for v in texts if not isinstance(v, str)]
    if bad:
        report.add("text", "fail", f"reasoning and intention must be str or None, got {', '.join(sorted(set(bad)))}")
        return
    said = [o.reasoning for o in outs if o.reasoning]
    if adapter.reasons and not said:
        report.add("reasoning", "fail", "declares reasons=True but returned no reasoning text")
    elif not adapter.reasons and said:
        report.add(
            "reasoning",
            "warn",
            "returns reasoning but declares reasons=False: judges will treat it as a specialist and ignore the text",
        )
    else:
        report.add("reasoning", "ok", f"{len(said)}/{len(outs)} calls with reasoning (reasons={adapter.reasons})")


def _latency(
    adapter: Adapter, task: TaskSpec, seed: int, calls: int, max_ms: float | None, observe: Observe, report: CheckReport
) -> None:
    if calls < 1:
        return
    adapter.reset(EpisodeContext(task=task, seed=seed + 1, episode_id=f"{task.id}-{seed + 1}"))
    for i in range(calls):
        obs = observe(task, seed + 1, i)
        t = time.perf_counter()
        adapter.act(obs, task.instruction)
        report.latency_ms.append((time.perf_counter() - t) * 1e3)
    med, worst = float(np.median(report.latency_ms)), max(report.latency_ms)
    detail = f"median {med:.1f} ms, max {worst:.1f} ms per call over {calls} calls"
    if max_ms is not None and med > max_ms:
        report.add("latency", "fail", f"{detail}: above --max-latency-ms {max_ms:g}")
    else:
        report.add("latency", "ok", detail)


def summarise(reports: list[CheckReport]) -> dict[str, Any]:
    """A JSON-ready summary (for `--json` and CI)."""
    return {
        "ok": not any(r.problems for r in reports),
        "reports": [
            {"adapter": r.adapter, "task": r.task, "latency_ms": r.latency_ms, "checks": [c.__dict__ for c in r.checks]}
            for r in reports
        ],
    }
