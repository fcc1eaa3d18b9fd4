"""Un-normalisation statistics: map a model's normalised actions back to the units its data was recorded in.

VLAs predict actions in [-1, 1] normalised per dimension with statistics of their training mix (OpenVLA, ECoT,
SpatialVLA and Magma use the 1st/99th percentiles; others mean/std). Which dataset's statistics to use
(`unnorm_key`) decides the robot's scale, so a wrong or missing key is an error, never a guess.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from vlascore.registry import did_you_mean


class NormStats(BaseModel):
    """Per-dimension action statistics; `mask` False keeps a dimension as predicted (e.g. a binary gripper)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    kind: Literal["bounds_q99", "bounds", "normal"] = "bounds_q99"
    """bounds_q99: [-1, 1] -> [q01, q99]; bounds: [-1, 1] -> [min, max]; normal: x * std + mean."""
    q01: list[float] | None = None
    q99: list[float] | None = None
    min: list[float] | None = None
    max: list[float] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    mask: list[bool] | None = None

    @model_validator(mode="after")
    def _fields_for_kind(self) -> NormStats:
        need = {"bounds_q99": ("q01", "q99"), "bounds": ("min", "max"), "normal": ("mean", "std")}[self.kind]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"{self.kind} statistics need {', '.join(need)}; missing {', '.join(missing)}")
        lengths = {len(getattr(self, f)) for f in (*need, "mask") if getattr(self, f) is not None}
        if len(lengths) != 1:
            raise ValueError(f"statistics of different lengths: {sorted(lengths)}")
        return self

    @property
    def dim(self) -> int:
        first = {"bounds_q99": self.q01, "bounds": self.min, "normal": self.mean}[self.kind]
        assert first is not None
        return len(first)

    def unnormalize(self, actions: np.ndarray) -> np.ndarray:
        """(..., dim) normalised actions -> the dataset's units."""
        a = np.asarray(actions, dtype=np.float64)
        if a.shape[-1] != self.dim:
            raise ValueError(f"action has {a.shape[-1]} dims, statistics have {self.dim}")
        if self.kind == "normal":
            out = a * np.asarray(self.std) + np.asarray(self.mean)
        else:
            lo, hi = (self.q01, self.q99) if self.kind == "bounds_q99" else (self.min, self.max)
            low, high = np.asarray(lo), np.asarray(hi)
            out = 0.5 * (a + 1.0) * (high - low) + low
        mask = np.asarray(self.mask if self.mask is not None else [True] * self.dim, dtype=bool)
        return np.where(mask, out, a)

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        """The inverse of `unnormalize` (fixtures and scripted models use it to emit known actions)."""
        a = np.asarray(actions, dtype=np.float64)
        if self.kind == "normal":
            out = (a - np.asarray(self.mean)) / np.asarray(self.std)
        else:
            lo, hi = (self.q01, self.q99) if self.kind == "bounds_q99" else (self.min, self.max)
            low, high = np.asarray(lo), np.asarray(hi)
            out = 2.0 * (a - low) / np.where(high > low, high - low, 1.0) - 1.0
        mask = np.asarray(self.mask if self.mask is not None else [True] * self.dim, dtype=bool)
        return np.where(mask, out, a)


def pick_stats(table: dict[str, Any], key: str | None, where: str) -> tuple[str, NormStats]:
    """Choose `key` from a {dataset: {"action": {...}}} table (OpenVLA's `norm_stats` layout).

    With no key, a table of exactly one dataset is unambiguous; otherwise the error lists the keys.
    """
    if not table:
        raise ValueError(f"{where} has no action statistics; pass them with -M norm_stats=FILE.json")
    if key is None:
        if len(table) != 1:
            raise ValueError(
                f"{where} has statistics for {len(table)} datasets; choose one with -M unnorm_key=KEY "
                f"(e.g. bridge_orig for WidowX, fractal20220817_data for Google Robot). "
                f"Keys: {', '.join(sorted(table))}"
            )
        key = next(iter(table))
    if key not in table and f"{key}_no_noops" in table:
        # OpenVLA's LIBERO fine-tunes name their statistics after the no-op-filtered datasets (libero_spatial_no_noops);
        # its evaluation script takes them for the suite's name, and so does vlascore
        key = f"{key}_no_noops"
    if key not in table:
        raise ValueError(
            f"unnorm_key {key!r} is not in {where}.{did_you_mean(key, table)} Keys: {', '.join(sorted(table))}"
        )
    entry = table[key]
    entry = entry.get("action", entry) if isinstance(entry, dict) else entry
    return key, NormStats.model_validate(entry)
