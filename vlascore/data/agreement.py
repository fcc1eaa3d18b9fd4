"""How well kept steps line up with phase changes a policy narrates (the scripted experts state their phase as
intention text): a check of a trigger or rule on data whose phases are known."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlascore.data.trajectory import Trajectory
from vlascore.data.triggers import band


@dataclass(frozen=True)
class PhaseAgreement:
    """Kept steps against the narrated phase changes, with a tolerance of `tolerance` steps."""

    tolerance: int
    kept: int
    """Steps kept."""
    kept_near: int
    """Kept steps within the tolerance of a phase change."""
    candidates: int
    """Steps that had reasoning (what any rule chooses from)."""
    candidates_near: int
    """Of those, the steps within the tolerance of a phase change."""
    changes: int
    """Phase changes narrated."""
    changes_hit: int
    """Phase changes with a kept step within the tolerance."""

    @property
    def precision(self) -> float:
        """Share of kept steps near a phase change."""
        return self.kept_near / self.kept if self.kept else float("nan")

    @property
    def chance(self) -> float:
        """The precision a rule choosing steps at random would have: the share of candidates near a change."""
        return self.candidates_near / self.candidates if self.candidates else float("nan")

    @property
    def recall(self) -> float:
        """Share of phase changes with a kept step near them."""
        return self.changes_hit / self.changes if self.changes else float("nan")


def phase_changes(traj: Trajectory) -> np.ndarray:
    """Row indices where the stated intention differs from the previous step's."""
    texts = [" ".join(t.split()).casefold() for t in traj.intention]
    return np.asarray([i for i in range(1, len(texts)) if texts[i] != texts[i - 1]], dtype=np.int64)


def phase_agreement(pairs: list[tuple[Trajectory, np.ndarray, np.ndarray]], tolerance: int = 1) -> PhaseAgreement:
    """Agreement over (trajectory, kept, had-reasoning) triples (bool arrays per step)."""
    kept = kept_near = cand = cand_near = changes = hit = 0
    for traj, keep, has in pairs:
        events = phase_changes(traj)
        near = band(events, len(traj), tolerance)
        kept += int(keep.sum())
        kept_near += int((keep & near).sum())
        cand += int(has.sum())
        cand_near += int((has & near).sum())
        changes += len(events)
        hit += sum(bool(keep[max(0, e - tolerance) : e + tolerance + 1].any()) for e in events.tolist())
    return PhaseAgreement(tolerance, kept, kept_near, cand, cand_near, changes, hit)
