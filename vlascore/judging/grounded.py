"""The grounded judge (judges/grounded.yaml): R, A, I, RA as 0-10 integers from the privileged simulator
state in a trace, with no API and no model. It goes beyond the paper, whose judge is a VLM.

Every formula is documented in docs/judging.md ("The grounded judge"); in short, with the task's object
(first `objects:` role) and target (second role):

    A  = 10 * (w_s * smoothness + w_e * efficiency + w_p * precision)
         smoothness = the TCP path's log dimensionless jerk mapped linearly from ldlj_worst (0) to ldlj_best (1)
                      (0 when the TCP hardly moved: no evidence)
         efficiency = sqrt(path * steps),  path = min(1, D * progress / TCP path length),
                      steps = min(1, (D / tcp_speed + extra_steps) / steps taken),
                      D = |object - TCP| + the object's distance beyond the goal tolerance, at the start
         precision  = exp(-final distance beyond the goal tolerance / precision_scale)  (1 when B = 1)
    I  = 10 * (w_p * progress + w_t * timeliness)
         progress   = (deepest subgoal reached + fractional approach to the next) / number of subgoals
         timeliness = mean of that progress curve over the task's horizon (earlier progress scores higher)
    R  = 10 * (w_o * object terms of the instruction named + w_s * subgoals named in order / subgoals)
    RA = 10 * steps whose motion matches the stated intention / steps with a statement

B (the simulator's success flag) says the goal was reached after the last action, whose resulting state
is not among the recorded steps: with B = 1 every subgoal counts as reached at the last step.
A and I never read policy text, so no text can move them; R and RA read it only through word matching
(the first intention word decides, and later text cannot change an earlier match), see the audit.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vlascore.judging.base import EpisodeJudge, JudgeContext
from vlascore.judging.definitions import JudgeError, JudgeSpec
from vlascore.judging.inputs import JudgeInput
from vlascore.judging.judgement import Judgement, Mode
from vlascore.store import LoadedRun
from vlascore.suites import Suite, TaskSpec

SubgoalTest = Literal["reach", "reach_side", "grasp", "lift", "moved", "above_target", "at_goal", "released"]
Expectation = Literal[
    "gripper_opens", "gripper_closes", "object_to_goal", "tcp_away", "tcp_down", "tcp_up", "tcp_to_point"
]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GoalSpec(_Params):
    """Where the object must end, relative to the target's position."""

    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    axes: Literal["xyz", "xy"] = "xyz"
    tolerance: float = Field(gt=0)
    z_tolerance: float | None = None
    """With axes `xy`: the height must also be within this of the goal's (stacking, placing in a bin)."""


class Subgoal(_Params):
    id: str
    test: SubgoalTest
    words: tuple[str, ...]
    """Words or phrases that name this subgoal in a plan (case-insensitive, whole words)."""


class Category(_Params):
    goal: GoalSpec
    extra_steps: int = Field(default=0, ge=0)
    """Control steps a direct solution needs beyond travelling (closing and opening the gripper)."""
    subgoals: list[Subgoal] = Field(min_length=1)
    tcp_speed: float | None = Field(default=None, gt=0)
    """TCP metres per control step at a full command on this category's robot and controller; None: the
    `action.tcp_speed` of the judge (another simulator's arm moves at another speed)."""
    state: dict[str, float] = {}
    """Overrides of `state:` thresholds for this category's tasks (LIBERO's groceries are larger than a 4 cm
    cube: the TCP grasps them further from their centre)."""

    @field_validator("state")
    @classmethod
    def _known_state_keys(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(StateParams.model_fields))
        if unknown:
            raise ValueError(
                f"unknown state threshold(s) {', '.join(unknown)}; known: {', '.join(StateParams.model_fields)}"
            )
        return value


class AlignRule(_Params):
    expect: Expectation
    words: tuple[str, ...]


class Weights(_Params):
    action: dict[Literal["smoothness", "efficiency", "precision"], float]
    intention: dict[Literal["progress", "timeliness"], float]
    reasoning: dict[Literal["objects", "subgoals"], float]


class ActionParams(_Params):
    ldlj_best: float
    ldlj_worst: float
    min_motion: float = Field(ge=0)
    tcp_speed: float = Field(gt=0)
    precision_scale: float = Field(gt=0)


class StateParams(_Params):
    near: float = Field(gt=0)
    grasp_distance: float = Field(gt=0)
    closed: float
    open: float
    lift: float = Field(gt=0)
    carried_lift: float = Field(gt=0)
    moved: float = Field(gt=0)
    epsilon: float = Field(ge=0)
    side_distance: float = 0.06
    """reach_side: the TCP within this (xy) of the object ..."""
    side_height: float = 0.03
    """... and no higher than this above the object's centre."""
    behind: float = 0.045
    """A statement about getting behind the object aims this far beyond its centre, away from the goal."""
    above_xy: float = 0.02
    """above_target: the object within this (xy) of the goal and higher than it."""


class FlagParams(_Params):
    """Thresholds below which a measurement flags a failure mode."""

    jerky_below: float = Field(ge=0, le=1)
    inefficient_below: float = Field(ge=0, le=1)
    misaligned_below: float = Field(ge=0, le=1)


class GroundedParams(_Params):
    """The `params:` block of a grounded judge definition."""

    weights: Weights
    action: ActionParams
    failure_modes: FlagParams
    state: StateParams
    categories: dict[str, Category]
    alignment: list[AlignRule]
    non_object_words: list[str] = []


_PARAMS: dict[str, GroundedParams] = {}


def _params(spec: JudgeSpec) -> GroundedParams:
    """The spec's params, validated once per effective version (which hashes them)."""
    if spec.effective_version not in _PARAMS:
        try:
            _PARAMS[spec.effective_version] = GroundedParams.model_validate(spec.params)
        except ValidationError as exc:
            raise JudgeError(f"invalid params in grounded judge {spec.source or spec.name}:\n{exc}") from None
    return _PARAMS[spec.effective_version]


@lru_cache(maxsize=256)
def _pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(re.escape(w.strip().lower()) for w in words) + r")\b")


# -- the episode as arrays --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Track:
    """One episode's states (T steps, each before its action) for the task's object and goal."""

    tcp: np.ndarray  # T x 3
    grip: np.ndarray  # T
    obj: np.ndarray  # T x 3
    goal: np.ndarray  # T x 3: the target's position + the category's goal offset
    spec: GoalSpec

    @property
    def n(self) -> int:
        return len(self.tcp)

    def grasped(self, s: StateParams) -> np.ndarray:
        """Gripper closed with the object at the TCP, per step."""
        return (self.grip < s.closed) & (np.linalg.norm(self.tcp - self.obj, axis=1) <= s.grasp_distance)

    def goal_distance(self) -> np.ndarray:
        """Distance object -> goal on the goal's axes."""
        d = self.obj - self.goal
        return np.linalg.norm(d if self.spec.axes == "xyz" else d[:, :2], axis=1)

    def excess(self) -> np.ndarray:
        """How far the object is outside the goal tolerance (0 inside it)."""
        out = np.maximum(self.goal_distance() - self.spec.tolerance, 0.0)
        if self.spec.axes == "xy" and self.spec.z_tolerance is not None:
            dz = np.maximum(np.abs(self.obj[:, 2] - self.goal[:, 2]) - self.spec.z_tolerance, 0.0)
            out = np.hypot(out, dz)
        return out


def track(inp: JudgeInput, category: Category) -> Track:
    roles = list(inp.task.objects)
    steps = inp.steps
    if len(roles) < 2:
        raise JudgeError(
            f"task {inp.task.id!r} names {len(roles)} object role(s); the grounded judge needs the "
            "manipulated object and the target as its first two `objects:` roles"
        )
    obj_role, target_role = roles[0], roles[1]
    try:
        poses = [(p[obj_role][:3], p[target_role][:3]) for p in steps["privileged"]]
    except (KeyError, TypeError):
        raise JudgeError(
            f"episode {inp.episode_id} has no privileged poses of {obj_role!r} and {target_role!r}; "
            "the grounded judge needs a backend that records them"
        ) from None
    obj = np.array([p[0] for p in poses], dtype=float).reshape(-1, 3)
    target = np.array([p[1] for p in poses], dtype=float).reshape(-1, 3)
    tcp = np.array([list(p)[:3] for p in steps["ee_pose"]], dtype=float).reshape(-1, 3)
    return Track(
        tcp=tcp,
        grip=np.asarray(steps["gripper"], dtype=float),
        obj=obj,
        goal=target + np.asarray(category.goal.offset),
        spec=category.goal,
    )


# -- Intention: subgoals over time --------------------------------------------------------------------------
def _test(tr: Track, test: SubgoalTest, s: StateParams) -> tuple[np.ndarray, np.ndarray | None, float]:
    """(reached at each step, a distance that shrinks toward it or None, the distance at which it is reached)."""
    if test == "reach":
        d = np.linalg.norm(tr.tcp - tr.obj, axis=1)
        return d <= s.near, d, s.near
    if test == "reach_side":
        d = np.linalg.norm((tr.tcp - tr.obj)[:, :2], axis=1)
        return (d <= s.side_distance) & (tr.tcp[:, 2] <= tr.obj[:, 2] + s.side_height), d, s.side_distance
    if test == "grasp":
        return tr.grasped(s), None, 0.0
    if test == "lift":
        below = np.maximum(tr.obj[0, 2] + s.lift - tr.obj[:, 2], 0.0)
        return below <= 0, below, 0.0
    if test == "moved":
        gd = tr.goal_distance()
        return gd <= gd[0] - s.moved, gd, float(gd[0] - s.moved)
    if test == "above_target":
        d = np.linalg.norm((tr.obj - tr.goal)[:, :2], axis=1)
        return (d <= s.above_xy) & (tr.obj[:, 2] > tr.goal[:, 2]), d, s.above_xy
    excess = tr.excess()
    if test == "at_goal":
        return excess <= 0, excess, 0.0
    return (tr.grip >= s.open) & (excess <= 0), None, 0.0  # released


@dataclass(frozen=True)
class Progress:
    curve: np.ndarray
    """P(t) in [0, 1] at every recorded step."""
    reached_at: dict[str, int]
    """Subgoal id -> first step it was reached."""


def progress(tr: Track, category: Category, s: StateParams, success: bool) -> Progress:
    """P(t) = (deepest subgoal reached by t + fractional approach to the next) / number of subgoals."""
    k_total, n = len(category.subgoals), tr.n
    tests = [_test(tr, g.test, s) for g in category.subgoals]
    first = [int(np.argmax(hit)) if hit.any() else None for hit, _, _ in tests]
    if success and n:  # B = 1: the goal was reached after the last action (see the module docstring)
        first = [f if f is not None else n - 1 for f in first]
    reached_at = {g.id: f for g, f in zip(category.subgoals, first, strict=True) if f is not None}
    curve = np.zeros(n)
    for t in range(n):
        k = max((j + 1 for j, f in enumerate(first) if f is not None and f <= t), default=0)
        frac = 0.0
        if k < k_total and (dist := tests[k][1]) is not None:
            start = 0 if k == 0 else first[k - 1] or 0
            span = dist[start] - tests[k][2]
            if span > 0:
                frac = float(np.clip((dist[start] - dist[start : t + 1].min()) / span, 0.0, 1.0))
        curve[t] = (k + min(frac, 0.999)) / k_total
    return Progress(curve, reached_at)


# -- Action ---------------------------------------------------------------------------------------------------
def action_parts(tr: Track, cat: Category, p: GroundedParams, final_progress: float, success: bool) -> dict[str, float]:
    a = p.action
    path = float(np.linalg.norm(np.diff(tr.tcp, axis=0), axis=1).sum())
    jerk = np.diff(tr.tcp, n=3, axis=0)  # m / step^3
    moved = path >= a.min_motion and len(jerk) > 0
    ldlj = math.nan
    if moved:  # log dimensionless jerk: -ln(N^5 / L^2 * sum |jerk|^2), invariant to speed and amplitude
        ldlj = -math.log(max(tr.n**5 / path**2 * float((jerk**2).sum()), 1e-300))
    smoothness = float(np.clip((ldlj - a.ldlj_worst) / (a.ldlj_best - a.ldlj_worst), 0, 1)) if moved else 0.0
    excess = tr.excess()
    direct = float(np.linalg.norm(tr.obj[0] - tr.tcp[0]) + excess[0]) if tr.n else 0.0
    path_eff = min(1.0, direct * final_progress / path) if moved and path > 0 else 0.0
    min_steps = direct / (cat.tcp_speed or a.tcp_speed) + cat.extra_steps
    steps_eff = min(1.0, min_steps / max(tr.n, 1))
    precision = 1.0 if success else math.exp(-float(excess[-1]) / a.precision_scale) if tr.n else 0.0
    return {
        "smoothness": smoothness,
        "efficiency": math.sqrt(path_eff * steps_eff),
        "precision": precision,
        "ldlj": ldlj,
        "path": path,
        "direct": direct,
        "path_eff": path_eff,
        "steps_eff": steps_eff,
        "min_steps": min_steps,
        "final_excess": float(excess[-1]) if tr.n else math.nan,
    }


# -- Reasoning and alignment: the policy's words --------------------------------------------------------------
_WORD = re.compile(r"[a-z0-9]+")
_ABOVE = re.compile(r"\b(?:above|over)\b")
_BEHIND = re.compile(r"\b(?:behind|far side|back of)\b")


def _texts(column: pd.Series) -> list[str]:
    """Distinct non-empty texts in order of first appearance."""
    seen: dict[str, None] = {}
    for value in column:
        if isinstance(value, str) and value.strip():
            seen.setdefault(value.strip(), None)
    return list(seen)


def reasoning_parts(inp: JudgeInput, cat: Category, p: GroundedParams) -> dict[str, Any]:
    plan = " \n".join(_texts(inp.steps["reasoning"])).lower() if len(inp.steps) else ""
    ignore = {w.lower() for w in p.non_object_words}
    terms = list(dict.fromkeys(w for w in _WORD.findall(inp.episode.instruction.lower()) if w not in ignore))
    said = set(_WORD.findall(plan))
    named = [t for t in terms if t in said]
    last, in_order = -1, []
    for g in cat.subgoals:
        later = [m.start() for m in _pattern(g.words).finditer(plan) if m.start() > last]
        if later:
            last = min(later)
            in_order.append(g.id)
    return {"has_text": bool(plan.strip()), "terms": terms, "named": named, "in_order": in_order}


_SENTENCE = re.compile(r"[.!?;\n]+")


def statement(intention: object, reasoning: object) -> str:
    """What a step says it does: its intention, else the last sentence of its reasoning."""
    if isinstance(intention, str) and intention.strip():
        return intention.strip().lower()
    if isinstance(reasoning, str):
        parts = [s for s in _SENTENCE.split(reasoning) if s.strip()]
        return parts[-1].strip().lower() if parts else ""
    return ""


@lru_cache(maxsize=4096)
def _classify(text: str, rules: tuple[AlignRule, ...]) -> Expectation | None:
    """The rule of the first rule word in `text` (the longest at the same position)."""
    best: tuple[int, int, Expectation] | None = None
    for rule in rules:
        m = _pattern(rule.words).search(text)
        if m and (best is None or (m.start(), -len(m.group())) < best[:2]):
            best = (m.start(), -len(m.group()), rule.expect)
    return best[2] if best else None


def alignment_parts(inp: JudgeInput, tr: Track, p: GroundedParams, s: StateParams | None = None) -> dict[str, Any]:
    s = s or p.state
    eps = s.epsilon
    steps = inp.steps
    carried = tr.grasped(s) & (tr.obj[:, 2] >= tr.obj[0, 2] + s.carried_lift)
    gd, excess = tr.goal_distance(), tr.excess()
    stated = agreed = 0
    misses: dict[str, int] = {}
    rules = tuple(p.alignment)
    for t in range(tr.n - 1):
        text = statement(steps["intention"].iloc[t], steps["reasoning"].iloc[t])
        if not text:
            continue
        stated += 1
        expect = _classify(text, rules)
        point = tr.goal[t] if carried[t] else tr.obj[t]
        axes = slice(0, 2) if _ABOVE.search(text) else slice(0, 3)
        if _BEHIND.search(text):  # the pushing side: beyond the object, away from the goal, at any height
            away = (tr.obj[t] - tr.goal[t])[:2]
            point = tr.obj[t].copy()
            point[:2] += away / max(float(np.linalg.norm(away)), 1e-9) * s.behind
            axes = slice(0, 2)
        d0, d1 = (float(np.linalg.norm((point - tr.tcp[k])[axes])) for k in (t, t + 1))
        dz = tr.tcp[t + 1, 2] - tr.tcp[t, 2]
        ok = {
            None: False,
            "gripper_opens": tr.grip[t + 1] > tr.grip[t] + eps or tr.grip[t + 1] >= s.open,
            "gripper_closes": tr.grip[t + 1] < tr.grip[t] - eps or tr.grip[t + 1] <= s.closed,
            "object_to_goal": gd[t + 1] < gd[t] - eps or excess[t + 1] <= 0,
            "tcp_away": dz > eps
            or np.linalg.norm(tr.tcp[t + 1] - tr.obj[t + 1]) > np.linalg.norm(tr.tcp[t] - tr.obj[t]) + eps,
            "tcp_down": dz < -eps or d1 <= s.near,
            "tcp_up": dz > eps or (carried[t] and d1 < d0 - eps) or d1 <= s.near,
            "tcp_to_point": d1 < d0 - eps or d1 <= s.near,
        }[expect]
        agreed += bool(ok)
        if not ok:
            misses[text] = misses.get(text, 0) + 1
    return {"stated": stated, "agreed": agreed, "misses": misses}


# -- the judge ------------------------------------------------------------------------------------------------
def _score(x: float) -> int:
    """10 * x rounded half up, as an integer 0-10."""
    return int(np.clip(math.floor(10 * x + 0.5), 0, 10))


def _weighted(weights: dict[Any, float], parts: dict[str, float]) -> float:
    return sum(w * parts[k] for k, w in weights.items()) / max(sum(weights.values()), 1e-12)


def judge_grounded(inp: JudgeInput, spec: JudgeSpec, mode: Mode) -> tuple[dict[str, int], str, list[str]]:
    """(scores, thought, failure modes) of one episode."""
    p = _params(spec)
    cat = category_of(inp.task, spec)
    tr = track(inp, cat)
    if tr.n == 0:
        raise JudgeError(f"episode {inp.episode_id} has no steps to judge")
    state = p.state.model_copy(update=cat.state) if cat.state else p.state
    prog = progress(tr, cat, state, inp.success)
    horizon = max(inp.task.max_steps, tr.n)
    curve = np.concatenate([prog.curve, np.full(horizon - tr.n, prog.curve[-1])])
    final = float(prog.curve[-1])
    act = action_parts(tr, cat, p, final, inp.success)
    intention = {"progress": final, "timeliness": float(curve.mean())}
    scores = {
        "Action": _score(_weighted(p.weights.action, act)),
        "Intention": _score(_weighted(p.weights.intention, intention)),
    }
    f = p.failure_modes
    grasp_missed = any(g.test == "grasp" and g.id not in prog.reached_at for g in cat.subgoals)
    flags = {
        "missed_goal": not inp.success,
        "missed_grasp": not inp.success and grasp_missed,
        "jerky_motion": not math.isnan(act["ldlj"]) and act["smoothness"] < f.jerky_below,
        "inefficient_path": act["efficiency"] < f.inefficient_below,
    }
    reached = ", ".join(f"{g}@{t}" for g, t in prog.reached_at.items()) or "none"
    thought = [
        f"Action {scores['Action']}: smoothness {act['smoothness']:.2f} (log dimensionless jerk {act['ldlj']:.1f}), "
        f"efficiency {act['efficiency']:.2f} (TCP path {act['path']:.2f} m "
        f"vs direct {act['direct']:.2f} m; {tr.n} steps vs {act['min_steps']:.0f} minimum), precision "
        f"{act['precision']:.2f} ("
        + ("simulator success" if inp.success else f"{100 * act['final_excess']:.1f} cm outside the goal tolerance")
        + ").",
        f"Intention {scores['Intention']}: subgoals reached {reached} ({len(prog.reached_at)}/{len(cat.subgoals)}; "
        f"progress {final:.2f}, timeliness {intention['timeliness']:.2f} over {horizon} steps).",
    ]
    if mode == "reasoning":
        r = reasoning_parts(inp, cat, p)
        flags["no_reasoning"] = not r["has_text"]
        if not r["has_text"]:
            scores["Reasoning"] = 0
            thought.append("Reasoning 0: the policy produced no reasoning text.")
        else:
            parts = {
                "objects": len(r["named"]) / max(len(r["terms"]), 1) if r["terms"] else 1.0,
                "subgoals": len(r["in_order"]) / len(cat.subgoals),
            }
            scores["Reasoning"] = _score(_weighted(p.weights.reasoning, parts))
            flags["incomplete_plan"] = min(parts.values()) < 1
            thought.append(
                f"Reasoning {scores['Reasoning']}: names {len(r['named'])}/{len(r['terms'])} object terms "
                f"({', '.join(r['named']) or 'none'}) and {len(r['in_order'])}/{len(cat.subgoals)} "
                f"subgoals in order ({', '.join(r['in_order']) or 'none'})."
            )
        al = alignment_parts(inp, tr, p, state)
        scores["Alignment"] = _score(al["agreed"] / al["stated"]) if al["stated"] else 0
        flags["misaligned"] = bool(al["stated"]) and al["agreed"] / al["stated"] < f.misaligned_below
        if not al["stated"]:
            thought.append("Alignment 0: no step states an intention to check the motion against.")
        else:
            worst = sorted(al["misses"].items(), key=lambda kv: -kv[1])[:2]
            missed = "; mismatched: " + ", ".join(f"'{k[:60]}' x{v}" for k, v in worst) if worst else ""
            thought.append(
                f"Alignment {scores['Alignment']}: the motion matched the stated intention on "
                f"{al['agreed']}/{al['stated']} steps{missed}."
            )
    return scores, " ".join(thought), [m for m in spec.taxonomy.modes if flags.get(m)]


def category_of(task: TaskSpec, spec: JudgeSpec) -> Category:
    p = _params(spec)
    if task.category not in p.categories:
        raise JudgeError(
            f"the grounded judge ({spec.source or spec.name}) has no subgoal table for task {task.id!r} "
            f"(category {task.category or 'unset'!r}); it knows {', '.join(p.categories)}: set the task's category "
            "in its suite, or add the category to a copy of judges/grounded.yaml and pass --judge PATH"
        )
    return p.categories[task.category]


class GroundedJudge(EpisodeJudge):
    """The offline judge; checks at construction that it can judge every task of the run."""

    reproducible = True

    @classmethod
    def for_run(cls, spec: JudgeSpec, mode: Mode, run: LoadedRun, context: JudgeContext) -> GroundedJudge:
        suite = Suite.model_validate(run.run.suite_spec)
        return cls(spec, mode, [suite.task(t) for t in run.run.tasks])

    def __init__(self, spec: JudgeSpec, mode: Mode, tasks: list[TaskSpec]) -> None:
        self.spec, self.mode = spec, mode
        for task in tasks:
            category_of(task, spec)
            if len(task.objects) < 2:  # refused before any episode, not on the first one
                raise JudgeError(
                    f"task {task.id!r} names {len(task.objects)} object role(s); the grounded judge needs "
                    "the manipulated object and the target as its first two `objects:` roles (judge "
                    "this run with the VLM judge, -j vla-score)"
                )

    def judge(self, inp: JudgeInput, use_cache: bool = True) -> Judgement:
        started = time.perf_counter()
        scores, thought, failure_modes = judge_grounded(inp, self.spec, self.mode)
        return Judgement(
            episode_id=inp.episode_id,
            judge=self.spec.name,
            judge_version=self.spec.effective_version,
            mode=self.mode,
            status="ok",
            scores=scores,
            thought=thought,
            failure_modes=failure_modes,
            latency_s=time.perf_counter() - started,
        )
