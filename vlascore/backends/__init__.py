"""Simulator backends, registered lazily (importing this package imports no simulator)."""

from __future__ import annotations

from vlascore.backends.base import Backend, BackendError, Observation, PrivilegedState, StepResult
from vlascore.registry import Registry

BACKENDS: Registry[type[Backend]] = Registry("backend", "vlascore.backends")
BACKENDS.register("maniskill", "vlascore.backends.maniskill:ManiSkillBackend")
BACKENDS.register("simpler", "vlascore.backends.simpler:SimplerBackend")
BACKENDS.register("toy", "vlascore.backends.toy:ToyBackend")

__all__ = ["BACKENDS", "Backend", "BackendError", "Observation", "PrivilegedState", "StepResult"]
