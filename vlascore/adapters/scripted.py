"""`scripted`: closed-loop expert controllers for the tabletop tasks, in end-effector delta space (and, for LIBERO's
tasks, the expert of vlascore/adapters/libero_expert.py, in LIBERO's convention).

Each task is a table of phases (intention, target, gripper, completion test) executed in order by one
proportional controller, using privileged simulator state (object and goal poses). The expert narrates
its plan as reasoning and its current phase as intention, giving traces with known-good reasoning and
reason-act alignment for judges. mplib's motion planner is not used (it segfaults on this stack).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vlascore.adapters.base import Adapter, EpisodeContext, PolicyStep
from vlascore.adapters.libero_expert import CONTROL_MODE as LIBERO_CONTROL
from vlascore.adapters.libero_expert import LiberoExpert
from vlascore.backends.base import Observation, PrivilegedState

POS_SCALE = 0.1  # metres per unit of normalised position action (pd_ee_delta_pose)
ROT_SCALE = 0.1  # radians per unit of normalised rotation action
OPEN, CLOSE = 1.0, -1.0
CUBE_HALF = 0.02
HOVER = 0.08  # height above an object before descending to it


def yaw_of(quat_wxyz: np.ndarray) -> float:
    """Yaw of a pose's x axis in the world xy plane."""
    w, x, y, z = quat_wxyz
    return float(np.arctan2(2 * (x * y + w * z), 1 - 2 * (y * y + z * z)))


def wrap_quarter(angle: float) -> float:
    """Wrap to [-pi/4, pi/4): cubes and the parallel gripper look the same every 90 degrees."""
    return float((angle + np.pi / 4) % (np.pi / 2) - np.pi / 4)


@dataclass
class Memory:
    """Per-episode state the phases may read and write."""

    steps_in_phase: int = 0
    push_dir: np.ndarray | None = None


Target = Callable[[PrivilegedState, Memory], np.ndarray]
Done = Callable[[PrivilegedState, Memory], bool]


@dataclass(frozen=True)
class Phase:
    """One step of a plan: move the TCP toward `target` with the gripper at `grip` until `done`."""

    intention: str
    target: Target
    grip: float
    done: Done
    align_to: str | None = None  # object role whose yaw the gripper matches
    max_speed: float = 1.0  # cap on the normalised position command


def obj(role: str, offset: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Target:
    return lambda s, m: s.objects[role][:3] + np.asarray(offset)


def near(target: Target, tol: float = 0.01, min_steps: int = 0) -> Done:
    return lambda s, m: m.steps_in_phase >= min_steps and bool(np.linalg.norm(s.ee_pose[:3] - target(s, m)) < tol)


def after(steps: int) -> Done:
    return lambda s, m: m.steps_in_phase >= steps


def never(s: PrivilegedState, m: Memory) -> bool:
    return False


def pick(role: str, name: str) -> list[Phase]:
    """Reach above `role`, descend, close the gripper, lift."""
    above, at = obj(role, (0, 0, HOVER)), obj(role)
    return [
        Phase(f"reach above the {name}", above, OPEN, near(above, 0.015), align_to=role),
        Phase(f"descend to the {name}", at, OPEN, near(at, 0.006), align_to=role),
        Phase(f"grasp the {name}", at, CLOSE, after(6), align_to=role),
    ]


def push_side(cube: str, goal: str, stand_off: float) -> Target:
    """Point on the far side of the cube from the goal, at cube height: where the fingertips push from."""

    def target(s: PrivilegedState, m: Memory) -> np.ndarray:
        if m.push_dir is None:
            d = s.objects[goal][:2] - s.objects[cube][:2]
            m.push_dir = d / max(np.linalg.norm(d), 1e-6)
        p = s.objects[cube][:3].copy()
        p[:2] -= m.push_dir * stand_off
        return p

    return target


def lifted(target: Target, dz: float) -> Target:
    return lambda s, m: target(s, m) + np.array([0.0, 0.0, dz])


def push_to_goal(cube: str, goal: str, verb: str) -> list[Phase]:
    """Close the gripper, hover behind the cube, lower, then drive the cube onto the goal."""
    behind = push_side(cube, goal, CUBE_HALF + 0.025)
    hover = lifted(behind, 0.06)

    def drive(s: PrivilegedState, m: Memory) -> np.ndarray:
        assert m.push_dir is not None
        p = s.objects[goal][:3].copy()
        p[:2] -= m.push_dir * (CUBE_HALF + 0.01)
        p[2] = s.objects[cube][2]
        return p

    return [
        Phase("move behind the cube", hover, CLOSE, near(hover, 0.015)),
        Phase("lower behind the cube", behind, CLOSE, near(behind, 0.01)),
        Phase(f"{verb} the cube onto the target", drive, CLOSE, never, max_speed=0.5),
    ]


def place_on(role: str, name: str, height: float, release_tol: float) -> list[Phase]:
    """Carry the held object above `role`, lower it to `height` above it, release, retreat."""
    above, down = obj(role, (0, 0, height + 0.06)), obj(role, (0, 0, height))

    def overhead(s: PrivilegedState, m: Memory) -> np.ndarray:
        return np.array([*s.ee_pose[:2], 0.12])

    return [
        Phase("lift the object", overhead, CLOSE, near(overhead, 0.03)),
        Phase(f"move above the {name}", above, CLOSE, near(above, 0.008), align_to=role),
        Phase(f"lower onto the {name}", down, CLOSE, near(down, release_tol), align_to=role, max_speed=0.4),
        Phase("release", down, OPEN, after(6)),
        Phase("retreat upward", obj(role, (0, 0, height + 0.08)), OPEN, never),
    ]


PICK_AND_LIFT = (
    "reach above the red cube, descend, grasp it, then lift it to the green goal and hold still",
    [*pick("cube", "cube"), Phase("lift to the goal", obj("goal"), CLOSE, never, max_speed=0.6)],
)
PLANS: dict[str, tuple[str, list[Phase]]] = {
    "PickCube": PICK_AND_LIFT,
    # The numpy toy world (backends/toy.py) is a pick-and-place too: same plan, so demos work without a simulator.
    "ToyPick": PICK_AND_LIFT,
    "PushCube": (
        "close the gripper, move behind the blue cube, lower to the table, push the cube onto the red and white target",
        push_to_goal("cube", "goal", "push"),
    ),
    "PullCube": (
        "close the gripper, move over to the far side of the cube, lower, "
        "pull the cube back onto the red and white target",
        push_to_goal("cube", "goal", "pull"),
    ),
    "StackCube": (
        "reach above the red cube, descend, grasp it, lift it, move it above the green cube, lower it, release",
        [*pick("cube", "red cube"), *place_on("base", "green cube", 2 * CUBE_HALF + 0.004, 0.006)],
    ),
    "PlaceSphere": (
        "reach above the ball, descend, grasp it, lift it, move it above the shallow bin, lower it in, release",
        [*pick("ball", "ball"), *place_on("bin", "bin", 0.02 + 0.0025 + 0.01, 0.006)],
    ),
}


class ScriptedAdapter(Adapter):
    """Expert per tabletop task; reads privileged state and says what it is doing."""

    name = "scripted"
    reasons = True
    uses_privileged_state = True
    speaks_task_convention = True  # each expert commands its simulator's own controller

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__(gain=gain)
        self.gain = float(gain)
        self._plan: tuple[str, list[Phase]] | None = None
        self._libero: LiberoExpert | None = None

    def reset(self, context: EpisodeContext) -> None:
        task = context.task
        self.action_space = task.action_space
        self._plan, self._libero = None, None
        if task.control_mode == LIBERO_CONTROL:
            self._libero = LiberoExpert(task)
            return
        if task.id not in PLANS:
            raise ValueError(f"no scripted expert for task {task.id!r}; supported: {', '.join(PLANS)}, LIBERO tasks")
        self._plan = PLANS[task.id]
        self._phase = 0
        self._memory = Memory()

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        if self._libero is not None:
            action, reasoning, intention = self._libero.act(obs)
            return PolicyStep(action=action, reasoning=reasoning, intention=intention)
        if self._plan is None:
            raise RuntimeError("reset() must be called before act()")
        plan_text, phases = self._plan
        s, m = obs.privileged, self._memory
        while self._phase < len(phases) - 1 and phases[self._phase].done(s, m):
            self._phase += 1
            m.steps_in_phase = 0
        phase = phases[self._phase]
        m.steps_in_phase += 1
        err = phase.target(s, m) - s.ee_pose[:3]
        move = np.clip(self.gain * err / POS_SCALE, -phase.max_speed, phase.max_speed)
        turn = np.zeros(3)
        if phase.align_to is not None:
            yaw_err = wrap_quarter(yaw_of(s.objects[phase.align_to][3:]) - yaw_of(s.ee_pose[3:]))
            turn[2] = np.clip(-yaw_err / ROT_SCALE, -1.0, 1.0)  # +z rotation command lowers the TCP yaw
        action = np.concatenate([move, turn, [phase.grip]])
        reasoning = f"Plan: {plan_text}. Step {self._phase + 1}/{len(phases)}: {phase.intention}."
        return PolicyStep(action=action, reasoning=reasoning, intention=phase.intention)
