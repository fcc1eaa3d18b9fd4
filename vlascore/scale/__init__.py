"""Scaling a run out: worker processes (`--workers`), one batched policy shared by them (`--policy shared`), Ray
actors on a cluster (`--executor ray`). `runner.run` takes an Executor; `make_executor` builds one from the command
line's choices. See docs/scaling.md."""

from __future__ import annotations

from vlascore.scale.executor import POLICY_MODES, Declared, Executor, WorkerFailed

EXECUTORS = ("local", "ray")


def make_executor(
    kind: str = "local",
    *,
    workers: int = 1,
    policy: str = "per-worker",
    max_batch_size: int = 8,
    max_wait_ms: float = 5.0,
    ray_address: str | None = None,
    policy_gpus: float = 0.0,
) -> Executor:
    """The executor named `kind` (local or ray) with its settings; ray is imported only for `ray`."""
    if kind == "local":
        if ray_address is not None or policy_gpus:
            raise ValueError("--ray-address and --policy-gpus need --executor ray")
        from vlascore.scale.local import LocalExecutor

        return LocalExecutor(workers, policy, max_batch_size, max_wait_ms)
    if kind == "ray":
        from vlascore.scale.ray_actors import RayExecutor

        return RayExecutor(
            workers, policy, max_batch_size, max_wait_ms, ray_address=ray_address, policy_gpus=policy_gpus
        )
    raise ValueError(f"--executor must be one of {', '.join(EXECUTORS)}, not {kind!r}")


__all__ = ["EXECUTORS", "POLICY_MODES", "Declared", "Executor", "WorkerFailed", "make_executor"]
