"""Typed trace records: what a run writes and every later stage (judge, score, report) reads.

Bump a record's SCHEMA_VERSION when a field changes meaning or is removed; readers check it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vlascore.paths import SAFE_NAME

RUN_SCHEMA_VERSION = 1
EPISODE_SCHEMA_VERSION = 1
STEP_SCHEMA_VERSION = 1

FRAMES_DIR = "frames"
"""The folder of a run holding each episode's frames, as frames/<episode id>.npz (no other path is read or packed)."""
Termination = Literal["success", "max_steps", "terminated", "error"]
EpisodeStatus = Literal["ok", "errored"]


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunSession(BaseModel):
    """How one `vlascore run` invocation executed its episodes (part of RunRecord, versioned with it)."""

    model_config = ConfigDict(extra="forbid")
    started_at: str = Field(default_factory=utcnow)
    """UTC time the invocation started."""
    executor: str = "inline"
    """`inline` (episodes in the driver process), `local` (worker processes) or `ray` (Ray actors)."""
    workers: int = 1
    """Episode workers, each owning one backend."""
    num_envs: int = 1
    """Environments each worker steps at once (vectorised backends)."""
    policy: str = "per-worker"
    """`per-worker`: every worker holds its own copy of the adapter; `shared`: one copy serves all workers."""
    max_batch_size: int = 1
    """Shared policy: most requests answered by one batched call."""
    max_wait_ms: float = 0.0
    """Shared policy: how long the first request of a batch waits for more."""
    ray_address: str | None = None
    """Ray cluster address the driver connected to (None: a local Ray instance, or no Ray)."""
    episodes: int = 0
    """Episodes this invocation committed."""
    wall_s: float = 0.0
    """Wall time from the first worker's start to the last commit."""
    policy_busy_s: float = 0.0
    """Shared policy: time it spent computing (resets and batched calls); per worker: the sum of the episodes'
    policy time."""
    policy_share: float | None = None
    """Shared policy: policy_busy_s / wall_s, its utilisation; per worker: the fraction of the episodes' wall time
    spent in the policy. None before any episode ran."""
    policy_calls: int = 0
    """Shared policy: act requests answered."""
    batch_sizes: dict[int, int] = {}
    """Shared policy or vectorised envs: batch size -> how many batched calls had that many requests."""
    worker_restarts: int = 0
    """Workers that died and were replaced."""


class RunRecord(BaseModel):
    """How a run was made: enough to reproduce it and to refuse mixing incompatible results."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = RUN_SCHEMA_VERSION
    """Version of this record's format."""
    run_id: str
    """Name of the run (its directory name)."""
    created_at: str = Field(default_factory=utcnow)
    """UTC time the run was started (ISO 8601)."""
    adapter: str
    """Registered adapter name (`--model`)."""
    adapter_config: dict[str, Any] = {}
    """Options passed to the adapter."""
    adapter_info: dict[str, Any] = {}
    """What the adapter declared: action convention, whether it reasons, chunk size."""
    suite: str
    """Suite name."""
    suite_fingerprint: str
    """Fingerprint of the normalised suite spec the run used."""
    protocol_version: str
    """Protocol version of the suite."""
    suite_spec: dict[str, Any]
    """The full normalised suite spec, frozen next to the results."""
    tasks: list[str]
    """Task ids this run covers."""
    seeds: dict[str, list[int]]
    """Task id -> seeds run, in order."""
    backend: str
    """Simulator backend name."""
    backend_config: dict[str, Any] = {}
    """Backend options (sim device, render device, number of parallel envs)."""
    vlascore_version: str
    """Installed vlascore version."""
    git_revision: str | None = None
    """Git commit of the vlascore source tree, when run from a checkout."""
    package_versions: dict[str, str] = {}
    """Versions of the packages that influence results (numpy, torch, mani-skill, sapien...)."""
    hardware: dict[str, Any] = {}
    """Platform, CPU, GPU and Vulkan device."""
    frame_stride: int = 1
    """A frame is stored every `frame_stride` steps (plus the last one)."""
    sessions: list[RunSession] = []
    """Each `vlascore run` invocation that wrote to this run (the first, then every `--resume`), in order: how it
    was executed and what it measured. Results do not depend on these settings, so a resume may change them."""


class EpisodeRecord(BaseModel):
    """One episode's outcome."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = EPISODE_SCHEMA_VERSION
    """Version of this record's format."""
    episode_id: str
    """`<task>-<seed>`, unique in a run."""
    task: str
    """Task id."""
    seed: int
    """Reset seed."""
    instruction: str
    """Instruction given to the policy."""
    success: bool
    """Simulator success flag (per the task's success_mode); False for errored episodes."""
    num_steps: int
    """Control steps executed."""
    termination: Termination
    """Why the episode ended."""
    status: EpisodeStatus
    """`errored`: the policy or simulator failed; the episode is excluded from success rates and counted."""
    failure_reason: str | None = None
    """Exception type and message (or the validation problem) for errored episodes."""
    started_at: str
    """UTC start time."""
    duration_s: float
    """Wall time of the whole episode (reset, policy, simulator, recording)."""
    policy_time_s: float
    """Time spent inside the policy's act()."""
    sim_time_s: float
    """Time spent in the simulator's reset() and step()."""
    frames_file: str | None = None
    """Frames file relative to the run directory: `frames/<episode id>.npz` (nothing else is read or packed)."""
    worker: str | None = None
    """Provenance: the worker that ran the episode (`w0`, `w1`... with its process id), None in the driver process
    or in runs made before workers existed. Not a result: equal runs may differ here."""
    node: str | None = None
    """Provenance: the machine that ran it, its host name (under Ray also the Ray node id). None in runs made
    before workers existed."""

    @model_validator(mode="after")
    def _own_frames_file(self) -> EpisodeRecord:
        if self.frames_file is not None and self.frames_file != f"{FRAMES_DIR}/{self.episode_id}.npz":
            raise ValueError(
                f"frames_file {self.frames_file[:120]!r} is not {FRAMES_DIR}/<episode id>.npz inside the run directory"
            )
        if not SAFE_NAME.fullmatch(self.episode_id.rpartition("-")[0] or "-"):
            raise ValueError(f"episode id {self.episode_id[:120]!r} is not <task id>-<seed> with a safe task id")
        return self


class StepRecord(BaseModel):
    """One control step: what the policy said and did and where the robot was."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = STEP_SCHEMA_VERSION
    """Version of this record's format."""
    episode_id: str
    """Episode this step belongs to."""
    step: int
    """0-based control-step index."""
    action: list[float]
    """Action sent to the simulator."""
    reasoning: str | None = None
    """Reasoning text the policy produced for this step (None for specialist policies)."""
    intention: str | None = None
    """The policy's stated intention / current subgoal, if any."""
    ee_pose: list[float]
    """End-effector (TCP) pose before the action: x, y, z, qw, qx, qy, qz in the world frame."""
    gripper: float
    """Gripper opening before the action, normalised to [0 closed, 1 open]."""
    privileged: dict[str, list[float]] = {}
    """Object and goal poses before the action (role -> x, y, z, qw, qx, qy, qz, world frame), for grounded judging."""
    reward: float
    """Simulator reward after the action."""
    success: bool
    """Whether the task has succeeded at any step up to and including this one."""
    frame: int | None = None
    """Index into the episode's frames file of the observation the policy saw, if stored."""
