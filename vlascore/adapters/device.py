"""Device and dtype selection for in-process models: `auto` picks the best available; an explicit choice that
the machine cannot honour fails with the reason instead of silently running somewhere else."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vlascore.extras import require

DTYPES = ("auto", "float32", "bfloat16", "float16")


def select_device(name: str = "auto") -> str:
    """`auto` -> cuda, then mps, then cpu. `cuda`, `cuda:N`, `mps` and `cpu` are checked against the machine."""
    torch = require("torch", "models", "in-process model adapters")
    name = (name or "auto").strip().lower()
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if name == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if name == "cpu":
        return "cpu"
    if name.startswith("cuda"):
        if not cuda:
            raise ValueError(
                f"device {name!r} requested but torch {torch.__version__} sees no CUDA device "
                "(a CPU build of torch, or no driver): use -M device=cpu, or install a CUDA build of torch"
            )
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return name
    if name == "mps":
        if not mps:
            raise ValueError("device 'mps' requested but Apple's Metal backend is not available: use -M device=cpu")
        return name
    raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")


def select_dtype(name: str, device: str) -> Any:
    """`auto` -> bfloat16 on CUDA GPUs that support it, float16 on other GPUs and mps, float32 on cpu."""
    torch = require("torch", "models", "in-process model adapters")
    name = (name or "auto").strip().lower()
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}: use {', '.join(DTYPES)}")
    if name != "auto":
        return getattr(torch, name)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if device == "mps" else torch.float32


class EpisodeRNG:
    """An episode's own torch random stream, for adapters that sample: seeded at reset and swapped in around each
    call, so an episode draws the same numbers whatever other episodes share the process (the forks of a shared
    policy take turns on one model)."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._state: tuple[Any, Any] | None = None

    def _get(self, torch: Any) -> tuple[Any, Any]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.startswith("cuda") else None
        return torch.get_rng_state(), cuda

    def _set(self, torch: Any, state: tuple[Any, Any]) -> None:
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], self.device)

    def seed(self, seed: int) -> None:
        torch = require("torch", "models", "in-process model adapters")
        saved = self._get(torch)
        torch.manual_seed(seed)
        self._state = self._get(torch)
        self._set(torch, saved)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Run the block on this episode's stream (as it is left by the previous call), then keep where it got to."""
        if self._state is None:
            yield
            return
        torch = require("torch", "models", "in-process model adapters")
        saved = self._get(torch)
        self._set(torch, self._state)
        try:
            yield
        finally:
            self._state = self._get(torch)
            self._set(torch, saved)
