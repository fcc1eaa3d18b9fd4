"""The scripted expert on LIBERO tasks (`-m scripted` on the libero-* suites), from privileged state.

A task's plan comes from its `category` and its `objects:` roles (tasks/libero-*.yaml): PlaceIn and PlaceOn pick up
the first role and put it in or on the second; PlaceTwo does that for two pairs of roles in turn. Each step of a
plan is a phase (what it intends, where the gripper goes, open or closed, when it is done) run by one proportional
controller in LIBERO's action convention (OSC_POSE: +-1 moves the goal 0.05 m and turns it 0.5 rad about world
axes; gripper -1 open, +1 closed). Grasps are sized from each object's bounding box: the fingers close across the
box's narrower side, at a height the box allows. The expert narrates its plan as reasoning and its phase as
intention, like the tabletop expert. It pushes drawers and doors closed and objects to a region, but has no plan
for opening a drawer or turning a knob (see CATEGORIES).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlascore.backends.base import Observation, PrivilegedState
from vlascore.suites import TaskSpec

CONTROL_MODE = "OSC_POSE"
POS_SCALE, ROT_SCALE = 0.05, 0.5  # OSC_POSE: metres and radians per unit of action
OPEN, CLOSE = -1.0, 1.0
GAIN = 2.0  # the OSC closes about a quarter of the commanded goal offset per step
HOVER = 0.06  # height above an object's top before descending to it
CLEARANCE = 0.04  # a carried object's bottom stays this far above the target's top
FINGER_REACH = 0.035  # how far the fingertips reach below the grip point
FLOOR_MARGIN = 0.008  # the grip point stays this far above the object's bottom
GRIP_STEPS = 12  # steps for the gripper to close or open fully
SPAN = 0.07  # objects narrower than this fit between the open fingers (0.08 m apart)
RIM_INSET = 0.012  # a rim grasp centres the fingers this far inside the object's outline
RIM_DEPTH = 0.015  # ... and this far below its top
STAND_OFF = 0.06  # distance kept from a part's face before moving onto it
PUSH_HEIGHT = 0.015  # push an object this far above its bottom (at most at its middle)
RISE = 0.1  # how far the hand rises between stages


@dataclass
class Memory:
    """Per-episode facts phases share: where the grasp sits on the object and the chosen gripper yaw."""

    steps_in_phase: int = 0
    hang: float = 0.0
    """How far the held object's bottom hangs below the grip point."""
    held: np.ndarray = field(default_factory=lambda: np.zeros(3))
    """Grip point minus the held object's bounding-box centre, fixed at the grasp."""
    grip: np.ndarray | None = None
    """Where the grip point goes, relative to the object's bounding-box centre (chosen once per object)."""
    yaw: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    """What phases note for later ones (the carrying height, the held grip point...)."""


Target = Callable[[PrivilegedState, Memory], np.ndarray]
Done = Callable[[PrivilegedState, Memory], bool]


@dataclass(frozen=True)
class Phase:
    intention: str
    target: Target
    grip: float
    done: Done
    max_speed: float = 1.0


def box(s: PrivilegedState, role: str) -> np.ndarray:
    if role in s.boxes:
        return np.asarray(s.boxes[role], dtype=np.float64)
    p = np.asarray(s.objects[role][:3], dtype=np.float64)
    return np.concatenate([p - 0.02, p + 0.02])


def centre(b: np.ndarray) -> np.ndarray:
    return (b[:3] + b[3:]) / 2


def hand_yaw(quat_wxyz: np.ndarray) -> float:
    """Yaw of the hand's x axis in the world xy plane."""
    w, x, y, z = quat_wxyz
    return float(math.atan2(2 * (x * y + w * z), 1 - 2 * (y * y + z * z)))


def wrap(angle: float) -> float:
    return float((angle + math.pi) % (2 * math.pi) - math.pi)


def grasp(b: np.ndarray, ee: np.ndarray, current_yaw: float) -> tuple[np.ndarray, float]:
    """(grip point minus the box's centre, hand yaw) for an object with bounding box `b`.

    An object narrower than the open fingers is held across its narrower horizontal side, over its centre; a wider
    one (a bowl) by its rim, on the side facing the hand, fingers across the wall. The fingers close along the hand's
    y axis, which is world y at yaw 0; of the equivalent yaws the one nearest `current_yaw` is taken.
    """
    dx, dy, height = b[3] - b[0], b[4] - b[1], b[5] - b[2]
    c = centre(b)
    if min(dx, dy) <= SPAN:
        angle = math.pi / 2 if dy < dx else 0.0  # the direction the fingers close along: across the narrower side
        offset = np.zeros(3)
        z = max(b[5] - min(FINGER_REACH, height / 2), b[2] + FLOOR_MARGIN)
    else:
        toward = ee[:2] - c[:2]
        angle = math.atan2(toward[1], toward[0]) if np.linalg.norm(toward) > 1e-6 else 0.0
        radius = min(dx, dy) / 2 - RIM_INSET
        offset = np.array([radius * math.cos(angle), radius * math.sin(angle), 0.0])
        z = b[5] - RIM_DEPTH
    offset[2] = z - c[2]
    base = angle + math.pi / 2  # the yaw whose finger axis (sin yaw, -cos yaw) lies along `angle`
    yaw = min((base + k * math.pi for k in (-3, -2, -1, 0, 1, 2)), key=lambda a: abs(wrap(a - current_yaw)))
    return offset, wrap(yaw)


def near(target: Target, tol: float) -> Done:
    return lambda s, m: bool(np.linalg.norm(s.ee_pose[:3] - target(s, m)) < tol)


def near_or_blocked(target: Target, tol: float, patience: int = 8) -> Done:
    """At the target, or stopped short of it for `patience` steps (the fingers rest on something)."""

    def done(s: PrivilegedState, m: Memory) -> bool:
        here = s.ee_pose[:3]
        if np.linalg.norm(here - target(s, m)) < tol:
            return True
        last = m.data.get("last_z")
        m.data["last_z"] = float(here[2])
        m.data["still"] = m.data.get("still", 0.0) + 1 if last is not None and abs(here[2] - last) < 5e-4 else 0.0
        return m.data["still"] >= patience

    return done


def after(steps: int) -> Done:
    return lambda s, m: m.steps_in_phase >= steps


def never(s: PrivilegedState, m: Memory) -> bool:
    return False


def pick(role: str, name: str, target: str) -> list[Phase]:
    """Above the object, down to the grasp height, close, lift it clear of the target's top."""

    def at(s: PrivilegedState, m: Memory) -> np.ndarray:
        b = box(s, role)
        if m.grip is None:
            m.grip, m.yaw = grasp(b, s.ee_pose[:3], hand_yaw(s.ee_pose[3:]))
        return centre(b) + m.grip

    def above(s: PrivilegedState, m: Memory) -> np.ndarray:
        return np.array([*at(s, m)[:2], box(s, role)[5] + HOVER])

    def hold(s: PrivilegedState, m: Memory) -> np.ndarray:
        if "hold" not in m.data:  # the grasp closes here: remember how the object hangs from the fingers
            b = box(s, role)
            m.hang = float(s.ee_pose[2] - b[2])
            m.held = s.ee_pose[:3] - centre(b)
            m.data["carry_z"] = float(max(box(s, target)[5], b[5]) + m.hang + CLEARANCE)
            m.data["hold"] = s.ee_pose[:3].copy()
        return np.asarray(m.data["hold"])

    def lifted(s: PrivilegedState, m: Memory) -> np.ndarray:
        return np.array([*m.data["hold"][:2], m.data["carry_z"]])

    return [
        Phase(f"reach above the {name}", above, OPEN, near(above, 0.015)),
        Phase(f"descend to the {name}", at, OPEN, near_or_blocked(at, 0.008), max_speed=0.6),
        Phase(f"grasp the {name}", hold, CLOSE, after(GRIP_STEPS)),
        Phase(f"lift the {name}", lifted, CLOSE, lambda s, m: s.ee_pose[2] >= m.data["carry_z"] - 0.015),
    ]


def place(role: str, name: str, target: str, target_name: str, into: bool) -> list[Phase]:
    """Carry the held object above the target, lower it until its bottom is just above the target's top (into a
    container: just below the rim), open, rise."""

    def drop_z(s: PrivilegedState, m: Memory) -> float:
        b = box(s, target)
        rest = b[2] + 0.3 * (b[5] - b[2]) if into else b[5]  # where the object's bottom should end
        return rest + m.hang + 0.015

    def over(s: PrivilegedState, m: Memory) -> np.ndarray:
        c = centre(box(s, target)) + m.held  # the object's centre over the target's
        return np.array([c[0], c[1], max(m.data["carry_z"], drop_z(s, m))])

    def down(s: PrivilegedState, m: Memory) -> np.ndarray:
        c = centre(box(s, target)) + m.held
        return np.array([c[0], c[1], drop_z(s, m)])

    def up(s: PrivilegedState, m: Memory) -> np.ndarray:
        return np.array([*s.ee_pose[:2], m.data["carry_z"]])

    word = "into" if into else "onto"
    return [
        Phase(f"carry the {name} above the {target_name}", over, CLOSE, near(over, 0.015)),
        Phase(f"lower the {name} {word} the {target_name}", down, CLOSE, near_or_blocked(down, 0.012), max_speed=0.5),
        Phase(f"release the {name}", down, OPEN, after(GRIP_STEPS)),
        Phase("retreat upward", up, OPEN, near(up, 0.02)),
    ]


def direction(s: PrivilegedState, part: str, goal: str) -> np.ndarray:
    """Unit vector (xy) from where a part is to where its goal state puts it."""
    d = np.asarray(s.objects[goal][:2]) - np.asarray(s.objects[part][:2])
    n = float(np.linalg.norm(d))
    return np.array([d[0] / n, d[1] / n, 0.0]) if n > 1e-6 else np.array([1.0, 0.0, 0.0])


def face(b: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The point of box `b`'s outline in direction `d` (xy), at the box's mid-height."""
    half = (b[3:] - b[:3]) / 2
    reach = half[0] * abs(d[0]) + half[1] * abs(d[1])
    return centre(b) + d * reach


def finger_yaw(angle: float, current: float) -> float:
    """The hand yaw whose fingers close along `angle` (world xy), nearest the current yaw."""
    base = angle + math.pi / 2
    return wrap(min((base + k * math.pi for k in (-3, -2, -1, 0, 1, 2)), key=lambda a: abs(wrap(a - current))))


def push_part(part: str, goal: str, body: str, name: str, verb: str) -> list[Phase]:
    """Close the gripper, come down on the far side of the part from its goal, and push it there."""

    def d(s: PrivilegedState, m: Memory) -> np.ndarray:
        if "dx" not in m.data:
            v = direction(s, part, goal)
            m.data["dx"], m.data["dy"] = float(v[0]), float(v[1])
            m.yaw = finger_yaw(math.atan2(v[1], v[0]) + math.pi / 2, hand_yaw(s.ee_pose[3:]))
        return np.array([m.data["dx"], m.data["dy"], 0.0])

    def contact(s: PrivilegedState, m: Memory) -> np.ndarray:
        b = box(s, body)
        p = face(b, -d(s, m))
        p[2] = min(b[2] + PUSH_HEIGHT, centre(b)[2])
        return p

    def behind_above(s: PrivilegedState, m: Memory) -> np.ndarray:
        return contact(s, m) - d(s, m) * STAND_OFF + np.array([0.0, 0.0, box(s, body)[5] - contact(s, m)[2] + HOVER])

    def behind(s: PrivilegedState, m: Memory) -> np.ndarray:
        return contact(s, m) - d(s, m) * STAND_OFF

    def pushed(s: PrivilegedState, m: Memory) -> np.ndarray:
        shift = np.asarray(s.objects[goal][:3]) - np.asarray(s.objects[part][:3])
        shift[2] = 0.0
        return contact(s, m) + shift + d(s, m) * 0.01

    def at_goal(s: PrivilegedState, m: Memory) -> bool:
        gap = np.linalg.norm((np.asarray(s.objects[goal]) - np.asarray(s.objects[part]))[:2])
        return bool(gap < 0.006)

    def up(s: PrivilegedState, m: Memory) -> np.ndarray:
        return s.ee_pose[:3] - d(s, m) * 0.03 + np.array([0.0, 0.0, 0.05])

    return [
        Phase(f"move behind the {name}", behind_above, CLOSE, near(behind_above, 0.015)),
        Phase(f"lower behind the {name}", behind, CLOSE, near_or_blocked(behind, 0.012)),
        Phase(f"{verb} the {name}", pushed, CLOSE, lambda s, m: at_goal(s, m) or near_or_blocked(pushed, 0)(s, m)),
        Phase("retreat upward", up, CLOSE, after(10)),
    ]


def _words(role: str) -> str:
    return role.replace("_", " ")


@dataclass(frozen=True)
class Stage:
    text: str
    phases: list[Phase]


def place_stage(obj: str, target: str, into: bool) -> Stage:
    name, tname, word = _words(obj), _words(target), "into" if into else "onto"
    text = (
        f"reach above the {name}, descend, grasp it, lift it, carry it above the {tname}, lower it {word} the "
        f"{tname}, release it"
    )
    return Stage(text, [*pick(obj, name, target), *place(obj, name, target, tname, into)])


def close_stage(part: str, goal: str, body: str) -> Stage:
    name = _words(part)
    return Stage(f"push the {name} closed from its front", push_part(part, goal, body, name, "push closed"))


def push_stage(obj: str, target: str) -> Stage:
    name, tname = _words(obj), _words(target)
    return Stage(
        f"close the gripper, move behind the {name}, push it to the {tname}", push_part(obj, target, obj, name, "push")
    )


CATEGORIES = ("PlaceIn", "PlaceOn", "PlaceTwo", "PlaceInClose", "PushTo", "TurnOnPlaceOn")
"""What the expert plans. Not Open, OpenPlaceIn, TurnOn: pulling a handle and turning a knob need the hand level
with them (or a wrist twist), and this expert keeps the hand pointing down."""


def part_of(task: TaskSpec, goal_role: str) -> str:
    """The role naming what `goal_role` (`NAME@state`) is a state of."""
    base = task.objects[goal_role].partition("@")[0]
    return next((role for role, name in task.objects.items() if name == base), goal_role)


def stages_for(task: TaskSpec) -> list[Stage]:
    """The expert's plan for a LIBERO task, from its category and roles (tasks/libero-*.yaml)."""
    r, cat = list(task.objects), task.category
    into_two = " in " in f" {task.instruction} "
    needs = {"PlaceIn": 2, "PlaceOn": 2, "PlaceTwo": 4, "PlaceInClose": 4, "PushTo": 2, "TurnOnPlaceOn": 2}
    if cat not in needs or len(r) < needs[cat]:
        raise ValueError(
            f"no scripted expert for LIBERO task {task.id!r} (category {cat or 'unset'!r} with {len(r)} roles); it "
            f"plans {', '.join(CATEGORIES)} tasks"
        )
    if cat == "PlaceTwo":
        return [place_stage(r[0], r[1], into_two), place_stage(r[2], r[3], into_two)]
    if cat == "PlaceInClose":  # the part the closed state moves: the drawer's region, or the microwave's door
        return [place_stage(r[0], r[1], True), close_stage(part_of(task, r[2]), r[2], r[3])]
    if cat == "PushTo":
        return [push_stage(r[0], r[1])]
    # PlaceIn, PlaceOn; TurnOnPlaceOn: the knob is not turned (this expert has no wrist-twist primitive)
    return [place_stage(r[0], r[1], cat == "PlaceIn")]


def rise() -> Phase:
    """Up, where the hand is, before the next stage: the hand leaves what it just let go of from above."""

    def up(s: PrivilegedState, m: Memory) -> np.ndarray:
        if "rise_from" not in m.data:
            m.data["rise_from"] = s.ee_pose[:3].copy()
        return np.asarray(m.data["rise_from"]) + np.array([0.0, 0.0, RISE])

    return Phase("rise clear", up, OPEN, near_or_blocked(up, 0.015))


class LiberoExpert:
    """One episode's controller: the stages' phases in order, each run until done."""

    def __init__(self, task: TaskSpec) -> None:
        stages = stages_for(task)
        self.text = f"to {task.instruction.strip().rstrip('.')}: " + "; then ".join(st.text for st in stages)
        stages = stages[:1] + [Stage(st.text, [rise(), *st.phases]) for st in stages[1:]]
        self.phases: list[Phase] = [p for st in stages for p in st.phases]
        self.starts = [sum(len(st.phases) for st in stages[:i]) for i in range(len(stages))]
        self.phase = 0
        self.memory = Memory()

    def act(self, obs: Observation) -> tuple[np.ndarray, str, str]:
        s, m = obs.privileged, self.memory
        while self.phase < len(self.phases) - 1 and self.phases[self.phase].done(s, m):
            self.phase += 1
            m.steps_in_phase = 0
            if self.phase in self.starts:  # the next object: a new grasp
                self.memory = m = Memory()
        phase = self.phases[self.phase]
        m.steps_in_phase += 1
        err = phase.target(s, m) - s.ee_pose[:3]
        if m.yaw is None:  # a stage's first phase chooses the yaw; until then, hold the current one
            m.yaw = hand_yaw(s.ee_pose[3:])
        move = np.clip(GAIN * err / POS_SCALE, -phase.max_speed, phase.max_speed)
        turn = np.clip(GAIN * self._rotation_error(s.ee_pose[3:], m.yaw) / ROT_SCALE, -1.0, 1.0)
        action = np.concatenate([move, turn, [phase.grip]])
        k = self.phase + 1
        reasoning = f"Plan: {self.text}. Step {k}/{len(self.phases)}: {phase.intention}."
        return action, reasoning, phase.intention

    @staticmethod
    def _rotation_error(quat_wxyz: np.ndarray, yaw: float) -> np.ndarray:
        """Axis-angle (world frame) turning the hand to point straight down at `yaw`."""
        w, x, y, z = quat_wxyz
        cur = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
            ]
        )
        c, s_ = math.cos(yaw), math.sin(yaw)
        want = np.array([[c, -s_, 0.0], [s_, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([1.0, -1.0, -1.0])
        r = want @ cur.T
        angle = math.acos(float(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0)))
        if angle < 1e-9:
            return np.zeros(3)
        axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
        norm = np.linalg.norm(axis)
        if norm < 1e-9:  # 180 degrees: any perpendicular axis
            return np.array([math.pi, 0.0, 0.0])
        return axis / norm * angle
