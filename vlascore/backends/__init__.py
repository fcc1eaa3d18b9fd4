"""Simulator backends, registered lazily (importing this package imports no simulator)."""

from __future__ import annotations

from typing import Any

from vlascore.backends.base import Backend, BackendError, Observation, PrivilegedState, StepResult
from vlascore.registry import Registry, construct

BACKENDS: Registry[type[Backend]] = Registry("backend", "vlascore.backends", base=Backend)
BACKENDS.register("libero", "vlascore.backends.libero:LiberoBackend")
BACKENDS.register("maniskill", "vlascore.backends.maniskill:ManiSkillBackend")
BACKENDS.register("simpler", "vlascore.backends.simpler:SimplerBackend")
BACKENDS.register("toy", "vlascore.backends.toy:ToyBackend")


def make_backend(name: str, **options: Any) -> Backend:
    """An instance of the registered backend `name` with its options (`-B key=value`)."""
    return build_backend(BACKENDS.get(name), name, options)


def build_backend(cls: type[Backend], name: str, options: dict[str, Any]) -> Backend:
    """An instance of the backend class `cls` (registered as `name`) with its options."""
    try:
        return construct(cls, options, f"backend {name!r}")
    except TypeError as exc:
        raise ValueError(f"bad --backend-arg for backend {name!r}: {exc}") from exc


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "Observation",
    "PrivilegedState",
    "StepResult",
    "build_backend",
    "make_backend",
]
