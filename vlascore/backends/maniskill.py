"""ManiSkill3 backend: the embedded default. Runs on CPU (PhysX CPU sim + Vulkan lavapipe rendering).

One gymnasium env is built per task and reused for every episode of that task: building costs seconds,
reset(seed) costs milliseconds.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import numpy as np

from vlascore.backends.assets import missing_assets
from vlascore.backends.base import Backend, BackendError, Observation, PrivilegedState, StepResult, normalise_quat_pose
from vlascore.episode_grid import EpisodeCell, env_key
from vlascore.extras import require
from vlascore.suites import TaskSpec

VULKAN_HINT = (
    "SAPIEN could not find a Vulkan rendering device: run `vlascore doctor`; on Debian 12 install "
    "mesa-vulkan-drivers (Mesa >= 24.3) from bookworm-backports, e.g. `bash scripts/setup.sh`."
)


def _np(x: Any) -> np.ndarray:
    return np.asarray(x.cpu().numpy() if hasattr(x, "cpu") else x)


# End-effector links of robots without ManiSkill's `tcp` attribute (WidowX 250s of the Bridge twins).
EE_LINKS = ("ee_gripper_link",)


def ee_link(agent: Any) -> Any:
    """The link whose pose is the end-effector pose: the agent's TCP, else a known end-effector link."""
    if getattr(agent, "tcp", None) is not None:
        return agent.tcp
    links = agent.robot.links_map
    for name in EE_LINKS:
        if name in links:
            return links[name]
    raise BackendError(f"robot {getattr(agent, 'uid', '?')!r} has no `tcp` and none of the links {EE_LINKS}")


def lookup(env: Any, path: str) -> Any:
    """An object of the env by attribute path: `cube`, or `objs.bridge_carrot_generated_modified` (dict keys too)."""
    out = env
    for part in path.split("."):
        out = out[part] if isinstance(out, dict) else getattr(out, part)
    return out


def _fresh_greenscreen_list() -> None:
    """ManiSkill 3's digital twins collect the objects kept out of the green screen in a class-level list that the
    first instance appends to, so a second twin built in the same process inherits the first one's objects (seen:
    the spoon scene's ids kept in the eggplant scene). Give each new env an empty list."""
    twin = sys.modules.get("mani_skill.envs.tasks.digital_twins.base_env")
    cls = getattr(twin, "BaseDigitalTwinEnv", None)
    if cls is not None and isinstance(cls.__dict__.get("_objects_to_remove_from_greenscreen"), list):
        cls._objects_to_remove_from_greenscreen = []


def env_instruction(env: Any) -> str | None:
    """The env's own instruction (the digital twins state one per episode), if it has one."""
    get = getattr(env, "get_language_instruction", None)
    if get is None:
        return None
    text = get()
    if isinstance(text, list | tuple):
        text = text[0] if text else None
    return str(text) if text else None


class ManiSkillBackend(Backend):
    """ManiSkill3 environments. With `num_envs > 1` (GPU simulation only) one env holds num_envs parallel scenes of
    the current task, stepped by one batched call (ManiSkill's documented batched API: `gym.make(..., num_envs=N,
    sim_backend="gpu")`, batched tensors in and out, partial resets through `options={"env_idx": ...}`)."""

    name = "maniskill"
    vectorised = True

    def __init__(
        self,
        sim_backend: str = "cpu",
        render_backend: str | None = None,
        num_envs: int = 1,
        fresh_scene: bool | None = None,
        images: bool = True,
    ) -> None:
        """`images=False` (`-B images=false`): no camera images (ManiSkill's obs_mode "none"), so no frames are
        recorded; physics, privileged state and success are the same as with images, at a fraction of the step time
        (rendering on CPU is most of it). For policies that do not look, such as `scripted` and `random`."""
        if sim_backend not in ("cpu", "gpu"):
            raise ValueError(f"--sim-backend must be cpu or gpu, not {sim_backend!r}")
        if not isinstance(images, bool):
            raise ValueError(f"images must be true or false, not {images!r}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if fresh_scene is None:  # the default: every episode from its seed alone, where a scene can be rebuilt
            fresh_scene = num_envs == 1
        if fresh_scene and num_envs > 1:
            raise ValueError("-B fresh_scene=true rebuilds a whole scene; it cannot go with --num-envs")
        if num_envs > 1 and sim_backend != "gpu":
            raise ValueError(
                f"--num-envs {num_envs} needs ManiSkill's GPU simulation (--sim-backend gpu, a CUDA device); its CPU "
                "simulation runs one environment per process: use --workers N for parallel episodes on the CPU"
            )
        self.sim_backend = sim_backend
        self.render_backend = render_backend or ("gpu" if sim_backend == "gpu" else "cpu")
        self.num_envs = num_envs
        self.images = images
        self.fresh_scene = bool(fresh_scene)
        """Rebuild the scene at every episode start (ManiSkill's reconfigure), on by default: a reused scene keeps
        contact state from earlier episodes (seen on PushCube and PullCube, whose cube rests on the table from one
        episode into the next), so an episode's physics would depend on the episodes played before it on that env
        (and on how episodes were spread over workers, or split by --resume). About 0.2 s per episode on the CPU;
        every episode then depends on its seed alone. `-B fresh_scene=false` reuses the scene (and resumes runs
        recorded before this was the default)."""
        self._envs: dict[str, Any] = {}
        self._env: Any = None
        self._task: TaskSpec | None = None
        self._gripper_limits: tuple[float, ...] | None = None
        self._ee_link: Any = None
        self._instruction: str | None = None
        self._instructions: list[str | None] = [None] * num_envs
        self._steps = [0] * num_envs
        self._started: set[str] = set()
        os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
        os.makedirs(os.environ["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)

    def describe(self) -> dict[str, Any]:
        config = {"sim_backend": self.sim_backend, "render_backend": self.render_backend, "num_envs": self.num_envs}
        # each option stated only when it differs from its default: runs recorded before it keep the same backend
        # config (and stay resumable)
        if not self.images:
            config["images"] = False
        # recorded when on, so a run made when scenes were reused (no key) refuses to resume into rebuilt ones
        return {**config, "fresh_scene": True} if self.fresh_scene else config

    def env_kwargs(self, task: TaskSpec, cell: EpisodeCell | None = None) -> dict[str, Any]:
        """Keyword arguments for ManiSkill's gym.make() of `task` (of grid cell `cell`, when it has a grid)."""
        kwargs: dict[str, Any] = dict(
            obs_mode="rgb" if self.images else "none",
            control_mode=task.control_mode,
            sim_backend=self.sim_backend,
            render_backend=self.render_backend,
            num_envs=self.num_envs,
            max_episode_steps=task.max_steps,
        )
        if task.resolution is not None:
            kwargs["sensor_configs"] = {"width": task.resolution[0], "height": task.resolution[1]}
        freqs = {k: v for k, v in (("sim_freq", task.sim_freq), ("control_freq", task.control_freq)) if v is not None}
        if freqs:
            kwargs["sim_config"] = freqs
        return {**kwargs, **(cell.make if cell is not None else task.env_kwargs)}

    def make(self, task: TaskSpec) -> None:
        self._task = task
        missing = missing_assets(task.env_id)
        if missing:  # say what to download before ManiSkill fails somewhere inside its loaders
            raise BackendError(missing)
        # a grid task's other cells build their envs when an episode first needs them; the first fails early here
        self._use_env(task, task.cell(task.seeds[0]) if task.grid else None)

    def _use_env(self, task: TaskSpec, cell: EpisodeCell | None) -> None:
        env_id = cell.env_id if cell is not None else task.env_id
        kwargs = self.env_kwargs(task, cell)
        key = env_key(env_id, kwargs)
        if key not in self._envs:
            gym = require("gymnasium", purpose="the ManiSkill backend")
            require("mani_skill.envs", purpose="the ManiSkill backend")
            # ManiSkill warns on every env build about actor poses it then sets itself; keep run output readable.
            require("mani_skill.utils.logging_utils").logger.setLevel(logging.ERROR)
            try:
                _fresh_greenscreen_list()
                self._envs[key] = gym.make(env_id, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any build failure becomes one actionable error
                raise BackendError(
                    f"cannot build ManiSkill env {env_id!r}: {type(exc).__name__}: {exc}. "
                    f"{self._hint(env_id, exc)}".strip()
                ) from exc
        if self._envs[key] is not self._env:
            self._env = self._envs[key]
            self._gripper_limits = None  # per env: re-read after switching
            self._ee_link = None
            if self.num_envs > 1 and key not in self._started:
                # Every scene needs a first (full) reset before partial ones; reset_envs then seeds each alone.
                self._env.reset(seed=list(range(self.num_envs)))
                self._started.add(key)

    def _hint(self, env_id: str, exc: Exception) -> str:
        text = str(exc)
        if "rendering device" in text or "vulkan" in text.lower():
            return VULKAN_HINT
        missing = missing_assets(env_id)
        if missing:
            return missing
        if self.sim_backend == "gpu":
            return "the GPU sim backend needs a CUDA device and a CUDA build of torch; use --sim-backend cpu"
        return ""

    def _observation(
        self, obs: dict[str, Any], step: int, info: dict[str, Any] | None = None, index: int = 0
    ) -> Observation:
        """The Observation of parallel scene `index` (0 for a single env) from ManiSkill's batched tensors."""
        assert self._task is not None
        env = self._env.unwrapped
        agent = env.agent
        image = None
        sensors = obs.get("sensor_data", {})
        if self._task.camera in sensors:
            image = _np(sensors[self._task.camera]["rgb"])[index].astype(np.uint8)
        qpos = _np(agent.robot.get_qpos())[index].astype(np.float64)
        qvel = _np(agent.robot.get_qvel())[index].astype(np.float64)
        if self._ee_link is None:
            self._ee_link = ee_link(agent)
        ee_pose = normalise_quat_pose(_np(self._ee_link.pose.raw_pose)[index])
        # Parallel-jaw grippers are the last joints; normalise the opening by that joint's (constant) limits.
        if self._gripper_limits is None:
            self._gripper_limits = tuple(float(v) for v in _np(agent.robot.get_qlimits())[0][-1])
        lo, hi = self._gripper_limits
        gripper = float(np.clip((qpos[-1] - lo) / (hi - lo), 0.0, 1.0)) if hi > lo else 0.0
        objects = {
            role: normalise_quat_pose(_np(lookup(env, path).pose.raw_pose)[index])
            for role, path in self._task.objects.items()
        }
        # Tasks name the flag differently (is_grasped, is_cubeA_grasped, is_obj_grasped): take the first.
        key = next((k for k in (info or {}) if k.startswith("is_") and k.endswith("grasped")), None)
        grasped = bool(_np(info[key]).reshape(-1)[index]) if info and key else False
        return Observation(
            image=image,
            proprio={"qpos": qpos, "qvel": qvel, "ee_pose": ee_pose},
            privileged=PrivilegedState(ee_pose=ee_pose, gripper=gripper, objects=objects, is_grasped=grasped),
            step=step,
            instruction=self._instruction if self.num_envs == 1 else self._instructions[index],
        )

    def reset(self, seed: int) -> Observation:
        if self._task is None:
            raise RuntimeError("call make(task) before reset()")
        cell = self._task.cell(seed)
        options: dict[str, Any] = {}
        if cell is not None:
            self._use_env(self._task, cell)
            options = cell.reset
        if self.fresh_scene:
            options = {**options, "reconfigure": True}
            self._ee_link, self._gripper_limits = None, None  # the rebuilt scene has new link objects
            _fresh_greenscreen_list()  # a digital twin rebuilt in place would inherit its own earlier list
        obs, info = self._env.reset(seed=seed, options=dict(options))
        self._step = 0
        self._instruction = env_instruction(self._env.unwrapped)
        return self._observation(obs, 0, info)

    def step(self, action: np.ndarray) -> StepResult:
        obs, reward, terminated, _truncated, info = self._env.step(np.asarray(action, dtype=np.float32))
        self._step += 1
        success = bool(_np(info.get("success", False)).reshape(-1)[0])
        return StepResult(
            observation=self._observation(obs, self._step, info),
            reward=float(_np(reward).reshape(-1)[0]),
            success=success,
            terminated=bool(_np(terminated).reshape(-1)[0]),
        )

    def reset_envs(self, seeds: dict[int, int]) -> dict[int, Observation]:
        """Each slot alone, with its own seed: ManiSkill seeds a batched reset from its first seed (torch's generator,
        then one draw for the whole batch), so resetting slots together would make a slot's initial state depend on
        the others; alone, it is the state a one-env reset with that seed gives on the same device."""
        if self._task is None:
            raise RuntimeError("call make(task) before reset_envs()")
        torch = require("torch", purpose="the ManiSkill backend")
        out = {}
        for slot, seed in seeds.items():
            cell = self._task.cell(seed)
            if cell is not None:
                before = self._env
                self._use_env(self._task, cell)
                if self._env is not before:
                    raise BackendError(
                        f"task {self._task.id}: grid cell {seed} needs another environment than the cells running "
                        "beside it; run grid tasks whose cells differ in their environment without --num-envs"
                    )
            options = {**(cell.reset if cell is not None else {}), "env_idx": torch.tensor([slot])}
            obs, info = self._env.reset(seed=[seed], options=options)
            self._steps[slot] = 0
            text = getattr(self._env.unwrapped, "get_language_instruction", None)
            texts = text() if text is not None else None
            self._instructions[slot] = str(texts[slot]) if isinstance(texts, list | tuple) and texts else None
            out[slot] = self._observation(obs, 0, info, slot)
        return out

    def step_envs(self, actions: np.ndarray) -> list[StepResult]:
        torch = require("torch", purpose="the ManiSkill backend")
        batch = torch.as_tensor(np.asarray(actions, dtype=np.float32).reshape(self.num_envs, -1))
        obs, reward, terminated, _truncated, info = self._env.step(batch)
        success, rewards, ended = (
            _np(info.get("success", np.zeros(self.num_envs))).reshape(-1),
            _np(reward).reshape(-1),
            _np(terminated).reshape(-1),
        )
        results = []
        for slot in range(self.num_envs):
            self._steps[slot] += 1
            results.append(
                StepResult(
                    observation=self._observation(obs, self._steps[slot], info, slot),
                    reward=float(rewards[slot]),
                    success=bool(success[slot]),
                    terminated=bool(ended[slot]),
                )
            )
        return results

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()
        self._env = None
