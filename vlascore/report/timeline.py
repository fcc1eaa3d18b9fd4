"""Reasoning / intention timelines: per episode, consecutive repeats collapsed into step ranges."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

TEXT_COLUMNS = ("intention", "reasoning")


@dataclass(frozen=True)
class Segment:
    """One stretch of steps over which the policy said the same thing."""

    start: int
    end: int
    text: str

    @property
    def label(self) -> str:
        return f"step {self.start}" if self.start == self.end else f"steps {self.start}-{self.end}"


def segments(
    episode_ids: Sequence[Any], steps: Sequence[int], texts: Sequence[Any], all_strings: bool = False
) -> dict[str, list[Segment]]:
    """episode_id -> segments, from rows already grouped by episode and ordered by step (the store's commit order).

    Consecutive equal texts of an episode merge into one segment; steps without text (None, NaN, "") are dropped.
    `all_strings`: the caller guarantees every text is a str (missing ones ""), which skips a pass.
    Vectorised: the comparisons run in numpy, Python only builds the segments.
    """
    n = len(texts)
    if n == 0:
        return {}
    text = np.empty(n, dtype=object)
    text[:] = texts if all_strings else [t if isinstance(t, str) else "" for t in texts]
    eid = np.asarray(episode_ids, dtype=object)
    step = np.asarray(steps)
    new = np.ones(n, dtype=bool)
    new[1:] = (text[1:] != text[:-1]) | (eid[1:] != eid[:-1])
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], n] - 1
    out: dict[str, list[Segment]] = defaultdict(list)
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if text[s]:
            out[str(eid[s])].append(Segment(int(step[s]), int(step[e]), text[s]))
    return dict(out)


def collapse(steps: pd.DataFrame, column: str) -> dict[str, list[Segment]]:
    """episode_id -> segments of `column`, for steps in any row order (needs columns episode_id, step, `column`)."""
    if steps.empty or column not in steps:
        return {}
    df = steps[["episode_id", "step", column]].sort_values(["episode_id", "step"], kind="stable")
    return segments(df["episode_id"].tolist(), df["step"].tolist(), df[column].tolist())
