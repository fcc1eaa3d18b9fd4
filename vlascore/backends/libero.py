"""LIBERO backend: the LIBERO benchmark's scenes (robosuite on MuJoCo), rendered offscreen on CPU.

A task's `env_id` names its BDDL file under hf-libero's `bddl_files/` without the extension
(`libero_object/pick_up_the_ketchup_and_place_it_in_the_basket`); episode `i` starts from the task's fixed initial
state `i` (its `.pruned_init` file, as LIBERO's benchmark loads it). One environment is built per task and reused
for its episodes; moving to the next task closes it (a scene and its renderer hold about half a gigabyte).

Episode settings a suite states in each task's `env_kwargs` (tasks/libero-*.yaml):
  settle_steps    no-op steps (arm still, gripper open) after the initial state is set, while objects settle; they
                  are not policy steps and do not count toward `max_steps`
  rotate_images   turn both cameras' images by 180 degrees (LIBERO renders them upside down; published policies
                  were trained on the turned images)
  wrist_camera    the second camera, offered to policies as `Observation.extra_images` ('' for none)
  placement_seed  LIBERO samples the fixtures' placement (cabinets, stoves: about a centimetre) on every reset from
                  NumPy's global generator; episode i seeds it with placement_seed + i, so an episode is the same
                  whatever ran before it (resume, parallel workers)

Observations: the task camera's image, the wrist image, proprio (`qpos`, `qvel`, `ee_pose` and LIBERO's own state
pieces `eef_pos`, `eef_axis_angle`, `gripper_qpos`), and privileged state: the end-effector pose, the gripper
opening, and for every role of the task's `objects:` the pose (and bounding box) of the LIBERO object, fixture,
region site or MuJoCo body it names, or of an articulated part in its goal state (`NAME@open`, see _Role). Success
is the task's BDDL goal (LIBERO's check_success()).
"""

from __future__ import annotations

import math
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

from vlascore.backends.base import Backend, BackendError, Observation, PrivilegedState, StepResult
from vlascore.backends.libero_setup import (
    HF_LIBERO_VERSION,
    asset_dir,
    gl_backend,
    missing_setup,
    package_root,
    render_problem,
    write_config,
)
from vlascore.extras import require
from vlascore.suites import TaskSpec

CONTROL_MODE = "OSC_POSE"
"""LIBERO's controller: robosuite's operational-space controller on end-effector delta poses."""
SETTINGS: dict[str, Any] = {
    "settle_steps": 10,
    "rotate_images": True,
    "wrist_camera": "robot0_eye_in_hand",
    "placement_seed": 0,
}
"""The episode settings a task's env_kwargs may state, and their defaults."""
SETTLE_ACTION = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)  # arm still, gripper open (-1 opens LIBERO's gripper)
SIM_FREQ = 500  # robosuite's physics step, 2 ms (robosuite.macros.SIMULATION_TIMESTEP)
FINGER_SPAN = 0.08  # Panda finger joints: 0.04 each when open


def _quat_xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    return np.array([q[3], q[0], q[1], q[2]], dtype=np.float64)


def axis_angle_of(quat_xyzw: np.ndarray) -> np.ndarray:
    """Axis-angle vector of a robosuite (x y z w) quaternion, as LIBERO's policies receive the end-effector rotation
    (robosuite's quat2axisangle)."""
    q = np.asarray(quat_xyzw, dtype=np.float64)
    w = float(np.clip(q[3], -1.0, 1.0))
    den = math.sqrt(1.0 - w * w)
    if math.isclose(den, 0.0):
        return np.zeros(3)
    return q[:3] * 2.0 * math.acos(w) / den


def load_init_states(path: Path) -> np.ndarray:
    """A task's fixed initial states (N x state size): torch-pickled NumPy arrays, read with torch's weights-only
    unpickler that admits NumPy arrays and nothing else."""
    torch = require("torch", "libero", purpose="LIBERO's initial-state files")
    np_core = getattr(np, "_core", None) or np.core
    reconstruct = np_core.multiarray._reconstruct
    allowed: list[Any] = [(reconstruct, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype]
    if np_core is not getattr(np, "core", None):
        allowed.append((reconstruct, "numpy._core.multiarray._reconstruct"))
    allowed += [(type(np.dtype(t)), f"numpy.dtype[{np.dtype(t).name}]") for t in ("float64", "float32")]
    try:
        with torch.serialization.safe_globals(allowed):
            states = torch.load(str(path), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file becomes one actionable error
        raise BackendError(
            f"cannot read LIBERO's initial states {path}: {type(exc).__name__}: {str(exc)[:200]}; reinstall hf-libero"
        ) from exc
    states = np.asarray(states, dtype=np.float64)
    if states.ndim != 2 or not len(states):
        raise BackendError(f"LIBERO's initial states {path} have shape {states.shape}, not (episodes, state size)")
    return states


def _silence_robosuite_macros() -> None:
    """robosuite warns at import that it has no private macro file (robosuite.macros_private); vlascore keeps
    robosuite's defaults, so an empty module stands in for it."""
    sys.modules.setdefault("robosuite.macros_private", types.ModuleType("robosuite.macros_private"))


def import_libero(gl: str) -> Any:
    """`libero.libero.envs`, imported with its config written, its assets pointed at and MuJoCo's GL chosen."""
    problem = missing_setup()
    if problem:
        raise BackendError(problem)
    current = os.environ.get("MUJOCO_GL")
    if "mujoco" in sys.modules and current and current != gl:
        raise BackendError(
            f"MuJoCo was already loaded in this process with MUJOCO_GL={current}; rendering with gl={gl} needs a "
            f"fresh process (or pass -B gl={current})"
        )
    os.environ["MUJOCO_GL"] = gl
    os.environ["PYOPENGL_PLATFORM"] = gl
    root, assets = package_root(), asset_dir()
    assert root is not None and assets is not None  # missing_setup() said so
    try:
        config = write_config(root, assets)
    except OSError as exc:
        raise BackendError(
            f"cannot write LIBERO's config file ({exc}): set LIBERO_CONFIG_PATH to a writable folder"
        ) from exc
    os.environ.setdefault("LIBERO_CONFIG_PATH", str(config.parent))
    _silence_robosuite_macros()
    libero = require("libero.libero", "libero", purpose="the LIBERO backend")
    vars(libero)["_assets_path_cache"] = str(assets)  # get_assets_path() reads it instead of a hub download
    return require("libero.libero.envs", "libero", purpose="the LIBERO backend")


GOAL_STATES = {"open": "default_open_ranges", "close": "default_close_ranges", "on": "default_turnon_ranges"}
"""A role `NAME@STATE` is where NAME would be with its articulation in that state (the middle of the joint range
LIBERO's goal predicate accepts): the target of opening a drawer, closing a door or turning a knob."""


class _Role:
    """Where a role's pose and bounding box come from: a LIBERO object or fixture (its body frame, as LIBERO's goal
    predicates read it), a region site, or any other MuJoCo body of the scene, such as a drawer or a door (the centre
    of its geometry: a door's frame sits on its hinge); `NAME@STATE` evaluates NAME with its articulation in STATE."""

    def __init__(self, env: Any, spec: str) -> None:
        import mujoco

        self.model = model = env.sim.model._model
        name, _, state = spec.partition("@")
        self.site_id: int | None = None
        self.body_id: int | None = None
        self.part = name not in env.object_states_dict  # a raw MuJoCo body: its pose is its geometry's centre
        if name in env.object_sites_dict or (
            name not in env.obj_body_id and mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, name) >= 0
        ):
            self.site_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, name)
            body = int(model.site_bodyid[self.site_id])
        else:
            self.body_id = env.obj_body_id.get(name, mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name))
            if self.body_id < 0:
                raise KeyError(name)
            body = self.body_id
        subtree = self._subtree(model, body) if self.site_id is None else set()
        # collision geometry only: visual meshes (labels, decorations) can stand out of what the fingers touch
        self.geoms = [
            g
            for g in range(model.ngeom)
            if int(model.geom_bodyid[g]) in subtree and (model.geom_contype[g] or model.geom_conaffinity[g])
        ]
        self.goal: tuple[int, float] | None = None
        self.scratch: Any = None
        if state:
            self.goal = self._articulation(env, body, name, state)
            self.scratch = mujoco.MjData(model)

    @staticmethod
    def _subtree(model: Any, root: int) -> set[int]:
        bodies = {root}
        for b in range(model.nbody):
            parent = b
            while parent > 0 and parent not in bodies:
                parent = int(model.body_parentid[parent])
            if parent in bodies:
                bodies.add(b)
        return bodies

    def _articulation(self, env: Any, body: int, name: str, state: str) -> tuple[int, float]:
        """(qpos address, value) of the hinge or slide joint that moves `body`, at the middle of `state`'s range."""
        if state not in GOAL_STATES:
            raise BackendError(f"role {name}@{state}: the state must be one of {', '.join(GOAL_STATES)}")
        model = self.model
        chain, b = [], body
        while b > 0:
            chain.append(b)
            b = int(model.body_parentid[b])
        hinged = [j for j in range(model.njnt) if model.jnt_type[j] in (2, 3)]  # slide, hinge
        joint = next((j for b in chain for j in hinged if int(model.jnt_bodyid[j]) == b), None)
        if joint is None:
            raise BackendError(f"role {name}@{state}: {name} is not moved by a hinge or slide joint")
        moved = int(model.jnt_bodyid[joint])
        owner = next(
            (
                obj
                for key, obj in {**env.fixtures_dict, **env.objects_dict}.items()
                if key in env.obj_body_id and moved in self._subtree(model, env.obj_body_id[key])
            ),
            None,
        )
        ranges = (getattr(owner, "object_properties", {}) or {}).get("articulation", {}).get(GOAL_STATES[state])
        if not ranges:
            raise BackendError(f"role {name}@{state}: LIBERO defines no {state} range for the object that owns {name}")
        return int(model.jnt_qposadr[joint]), float(np.mean(ranges))

    def _data(self, data: Any) -> Any:
        if self.goal is None:
            return data
        import mujoco

        self.scratch.qpos[:] = data.qpos
        self.scratch.qpos[self.goal[0]] = self.goal[1]
        mujoco.mj_kinematics(self.model, self.scratch)
        return self.scratch

    def pose(self, data: Any) -> np.ndarray:
        import mujoco

        d = self._data(data)
        if self.site_id is not None:
            quat = np.empty(4)
            mujoco.mju_mat2Quat(quat, d.site_xmat[self.site_id])
            return np.concatenate([d.site_xpos[self.site_id], quat]).astype(np.float64)
        if self.part and self.geoms:  # a door's origin sits on its hinge: the door's middle moves with it
            b = self.box(data)
            return np.concatenate([(b[:3] + b[3:]) / 2, d.xquat[self.body_id]]).astype(np.float64)
        return np.concatenate([d.xpos[self.body_id], d.xquat[self.body_id]]).astype(np.float64)

    def box(self, data: Any) -> np.ndarray:
        """World-frame axis-aligned bounding box, xmin ymin zmin xmax ymax zmax."""
        model, d = self.model, self._data(data)
        if self.site_id is not None:
            centers, halves, mats = (
                d.site_xpos[[self.site_id]],
                model.site_size[[self.site_id]],
                d.site_xmat[[self.site_id]],
            )
            offsets = np.zeros_like(centers)
        elif not self.geoms:
            p = d.xpos[self.body_id]
            return np.concatenate([p, p]).astype(np.float64)
        else:
            aabb = model.geom_aabb[self.geoms]  # per geom: centre and half sizes in the geom's frame
            centers, mats = d.geom_xpos[self.geoms], d.geom_xmat[self.geoms]
            offsets, halves = aabb[:, :3], aabb[:, 3:]
        rot = mats.reshape(-1, 3, 3)
        mid = centers + np.einsum("nij,nj->ni", rot, offsets)
        extent = np.einsum("nij,nj->ni", np.abs(rot), halves)
        return np.concatenate([(mid - extent).min(axis=0), (mid + extent).max(axis=0)]).astype(np.float64)


class LiberoBackend(Backend):
    """LIBERO tasks through hf-libero's OffScreenRenderEnv. Options (-B): `gl` (egl or osmesa: MuJoCo's offscreen GL;
    default $MUJOCO_GL or egl), `wrist` (false: do not render the wrist camera, for policies that read only the
    main one; a camera costs about as much as five physics steps)."""

    name = "libero"

    def __init__(self, gl: str | None = None, wrist: bool = True) -> None:
        if not isinstance(wrist, bool):
            raise ValueError(f"-B wrist must be true or false, not {wrist!r}")
        self.gl = gl_backend(gl)
        self.wrist = wrist
        self._envs: dict[str, Any] = {}
        self._inits: dict[str, np.ndarray] = {}
        self._env: Any = None
        self._task: TaskSpec | None = None
        self._settings: dict[str, Any] = dict(SETTINGS)
        self._roles: dict[str, _Role] = {}
        self._checked = False
        self._step = 0

    def describe(self) -> dict[str, Any]:
        return {"gl": self.gl, "wrist": self.wrist}

    # -- building -------------------------------------------------------------------------------------------------
    def _preflight(self) -> None:
        """Packages, assets and the renderer, once per backend, before any scene is built."""
        if self._checked:
            return
        problem = missing_setup() or render_problem(self.gl)
        if problem:
            raise BackendError(problem)
        self._checked = True

    def settings(self, task: TaskSpec) -> dict[str, Any]:
        unknown = sorted(set(task.env_kwargs) - set(SETTINGS))
        if unknown:
            raise BackendError(
                f"task {task.id!r}: unknown LIBERO setting(s) {', '.join(unknown)} in env_kwargs; "
                f"known: {', '.join(SETTINGS)}"
            )
        if task.control_mode != CONTROL_MODE:
            raise BackendError(f"task {task.id!r}: LIBERO's controller is {CONTROL_MODE}, not {task.control_mode!r}")
        if task.sim_freq not in (None, SIM_FREQ):
            raise BackendError(f"task {task.id!r}: LIBERO's physics runs at {SIM_FREQ} Hz, not {task.sim_freq}")
        return {**SETTINGS, **task.env_kwargs}

    def files(self, task: TaskSpec) -> tuple[Path, Path]:
        """The task's BDDL file and initial-state file, inside the installed hf-libero."""
        root = package_root()
        assert root is not None
        bddl = root / "bddl_files" / f"{task.env_id}.bddl"
        init = root / "init_files" / f"{task.env_id}.pruned_init"
        for path in (bddl, init):
            if not path.resolve().is_relative_to(root.resolve()) or not path.is_file():
                raise BackendError(
                    f"task {task.id!r}: no LIBERO file {path.name} for env_id {task.env_id!r} in hf-libero "
                    f"{HF_LIBERO_VERSION} ({root}); env_id is a path under bddl_files/ without .bddl, e.g. "
                    "libero_object/pick_up_the_ketchup_and_place_it_in_the_basket"
                )
        return bddl, init

    def make(self, task: TaskSpec) -> None:
        self._preflight()
        settings = self.settings(task)
        if task.id not in self._envs:
            bddl, init = self.files(task)
            self._close_envs()  # runs take the tasks in turn: one scene (and its renderer, ~0.5 GB) at a time
            envs = import_libero(self.gl)
            width, height = task.resolution or (128, 128)
            # Both cameras render through robosuite's observables, which sample them during the control step's
            # physics substeps, as LIBERO's training data and published evaluations saw them.
            cameras = [task.camera] + ([settings["wrist_camera"]] if self.wrist and settings["wrist_camera"] else [])
            try:
                env = envs.OffScreenRenderEnv(
                    bddl_file_name=str(bddl),
                    camera_names=list(dict.fromkeys(cameras)),
                    camera_heights=height,
                    camera_widths=width,
                    control_freq=task.control_freq or 20,
                    ignore_done=True,  # the runner ends episodes; robosuite's own horizon would refuse more steps
                )
            except Exception as exc:  # noqa: BLE001 - any build failure becomes one actionable error
                raise BackendError(
                    f"cannot build LIBERO task {task.env_id!r}: {type(exc).__name__}: {str(exc)[:300]}. "
                    "Run `vlascore doctor -s <suite>` to check the assets and the renderer"
                ) from exc
            self._inits[task.id] = load_init_states(init)
            self._envs[task.id] = env
        self._env = self._envs[task.id]
        self._task = task
        self._settings = settings
        self._roles = self._resolve_roles(task)

    def _resolve_roles(self, task: TaskSpec) -> dict[str, _Role]:
        """The task's roles in the current scene; a hard reset builds a new MuJoCo model, so again after each."""
        inner = self._env.env
        roles = {}
        for role, name in task.objects.items():
            try:
                roles[role] = _Role(inner, name)
            except KeyError:
                raise BackendError(
                    f"task {task.id!r}: role {role}: {name.partition('@')[0]!r} is neither a LIBERO object, fixture or "
                    f"region of the scene ({', '.join(inner.object_states_dict)}) nor a MuJoCo body or site"
                ) from None
        return roles

    # -- episodes -------------------------------------------------------------------------------------------------
    def reset(self, seed: int) -> Observation:
        if self._task is None:
            raise RuntimeError("call make(task) before reset()")
        inits = self._inits[self._task.id]
        if not 0 <= seed < len(inits):
            raise ValueError(
                f"task {self._task.id!r} has {len(inits)} fixed initial states (episodes 0-{len(inits) - 1}); "
                f"episode {seed} does not exist"
            )
        s = self._settings
        self._env.seed(int(s["placement_seed"]) + seed)
        self._env.reset()
        obs = self._env.set_init_state(inits[seed])
        self._roles = self._resolve_roles(self._task)
        for _ in range(int(s["settle_steps"])):
            obs, _reward, _done, _info = self._env.step(list(SETTLE_ACTION))
        self._step = 0
        return self._observation(obs, 0)

    def step(self, action: np.ndarray) -> StepResult:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        obs, reward, _done, _info = self._env.step(a.tolist())
        self._step += 1
        return StepResult(
            observation=self._observation(obs, self._step),
            reward=float(reward),
            success=bool(self._env.check_success()),
            terminated=False,
        )

    def _turned(self, img: np.ndarray) -> np.ndarray:
        img = np.asarray(img, dtype=np.uint8)
        return np.ascontiguousarray(img[::-1, ::-1] if self._settings["rotate_images"] else img)

    def _observation(self, obs: dict[str, Any], step: int) -> Observation:
        assert self._task is not None
        inner = self._env.env
        data = inner.sim.data._data
        eef_pos = np.asarray(obs["robot0_eef_pos"], dtype=np.float64)
        eef_quat = np.asarray(obs["robot0_eef_quat"], dtype=np.float64)  # x y z w
        fingers = np.asarray(obs["robot0_gripper_qpos"], dtype=np.float64)
        ee_pose = np.concatenate([eef_pos, _quat_xyzw_to_wxyz(eef_quat)])
        gripper = float(np.clip((fingers[0] - fingers[1]) / FINGER_SPAN, 0.0, 1.0))
        objects = {role: r.pose(data) for role, r in self._roles.items()}
        boxes = {role: r.box(data) for role, r in self._roles.items()}
        grasped = False
        first = next(iter(self._task.objects.values()), None)
        if first is not None and first in inner.objects_dict:
            grasped = bool(inner._check_grasp(inner.robots[0].gripper, inner.objects_dict[first]))
        wrist = self._settings["wrist_camera"]
        return Observation(
            image=self._turned(obs[f"{self._task.camera}_image"]),
            proprio={
                "qpos": np.concatenate([obs["robot0_joint_pos"], fingers]).astype(np.float64),
                "qvel": np.concatenate([obs["robot0_joint_vel"], obs["robot0_gripper_qvel"]]).astype(np.float64),
                "ee_pose": ee_pose,
                "eef_pos": eef_pos,
                "eef_axis_angle": axis_angle_of(eef_quat),
                "gripper_qpos": fingers,
            },
            privileged=PrivilegedState(
                ee_pose=ee_pose, gripper=gripper, objects=objects, is_grasped=grasped, boxes=boxes
            ),
            step=step,
            extra_images={wrist: self._turned(obs[f"{wrist}_image"])} if wrist and self.wrist else {},
        )

    def _close_envs(self) -> None:
        for env in self._envs.values():
            try:
                env.close()
            except Exception:  # noqa: BLE001, S110 - closing a renderer that is already gone
                pass
        self._envs.clear()
        self._inits.clear()
        self._env = None

    def close(self) -> None:
        self._close_envs()
