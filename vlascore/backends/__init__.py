"""Simulator backends, registered lazily (importing this package imports no simulator)."""

from __future__ import annotations

from typing import Any

from vlascore.backends.base import Backend, BackendError, Observation, PrivilegedState, StepResult
from vlascore.registry import Registry

BACKENDS: Registry[type[Backend]] = Registry("backend", "vlascore.backends", base=Backend)
BACKENDS.register("libero", "vlascore.backends.libero:LiberoBackend")
BACKENDS.register("maniskill", "vlascore.backends.maniskill:ManiSkillBackend")
BACKENDS.register("simpler", "vlascore.backends.simpler:SimplerBackend")
BACKENDS.register("toy", "vlascore.backends.toy:ToyBackend")


def make_backend(name: str, **options: Any) -> Backend:
    """An instance of the registered backend `name` with its options (`-B key=value`)."""
    cls = BACKENDS.get(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ValueError(f"bad --backend-arg for backend {name!r}: {exc}") from exc


__all__ = ["BACKENDS", "Backend", "BackendError", "Observation", "PrivilegedState", "StepResult", "make_backend"]
