"""Policy adapters. One registry; third-party packages add adapters via the `vlascore.adapters` entry-point group."""

from __future__ import annotations

from typing import Any

from vlascore.adapters.base import (
    Adapter,
    ConventionError,
    EpisodeContext,
    InvalidActionError,
    NoVLMSideError,
    PolicyStep,
    Question,
)
from vlascore.adapters.conventions import adapt_to_tasks, check_conventions
from vlascore.registry import Registry, construct

ADAPTERS: Registry[type[Adapter]] = Registry("adapter", "vlascore.adapters", base=Adapter)
ADAPTERS.register("scripted", "vlascore.adapters.scripted:ScriptedAdapter")
ADAPTERS.register("random", "vlascore.adapters.random:RandomAdapter")
ADAPTERS.register("replay", "vlascore.adapters.replay:ReplayAdapter")
ADAPTERS.register("openvla", "vlascore.adapters.openvla:OpenVLAAdapter")
ADAPTERS.register("ecot", "vlascore.adapters.ecot:ECoTAdapter")
ADAPTERS.register("magma", "vlascore.adapters.magma:MagmaAdapter")
ADAPTERS.register("remote", "vlascore.serving.remote:RemoteAdapter")
ADAPTERS.register("vlm", "vlascore.adapters.vlm_policy:VLMPolicyAdapter")
ADAPTERS.register("spatialvla", "vlascore.adapters.spatialvla:SpatialVLAAdapter")
ADAPTERS.register("instructvla", "vlascore.adapters.instructvla:InstructVLAAdapter")
ADAPTERS.register("dualvla", "vlascore.adapters.instructvla:DualVLAAdapter")
ADAPTERS.register("scripted-qa", "vlascore.adapters.scripted_qa:ScriptedQAAdapter")


def make_adapter(name: str, config: dict[str, Any] | None = None, cls: type[Adapter] | None = None) -> Adapter:
    """An instance of adapter `name` (registered, or a `file.py:Class` / `module:Class` reference; or of `cls`,
    already resolved) with its options (`-M key=value`: text is converted to the types its constructor declares)."""
    cls = cls or ADAPTERS.get(name)
    try:
        return construct(cls, config or {}, f"adapter {name!r}")
    except TypeError as exc:
        raise ValueError(f"bad --model-arg for adapter {name!r}: {exc}") from exc


__all__ = [
    "ADAPTERS",
    "Adapter",
    "ConventionError",
    "EpisodeContext",
    "InvalidActionError",
    "NoVLMSideError",
    "PolicyStep",
    "Question",
    "adapt_to_tasks",
    "check_conventions",
    "make_adapter",
]
