"""Reasoning / intention timelines: per episode, consecutive repeats collapsed into step ranges."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

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


def collapse(steps: pd.DataFrame, column: str) -> dict[str, list[Segment]]:
    """episode_id -> segments of `column` (consecutive equal values merged; steps without text dropped).

    Vectorised over the whole run: `steps` needs columns episode_id, step and `column`.
    """
    if steps.empty or column not in steps:
        return {}
    df = steps[["episode_id", "step", column]].sort_values(["episode_id", "step"], kind="stable")
    text = df[column].fillna("").astype(str)
    eid = df["episode_id"]
    segment_id = ((text != text.shift()) | (eid != eid.shift())).cumsum()
    grouped = (
        pd.DataFrame({"episode_id": eid, "step": df["step"], "text": text, "seg": segment_id})
        .groupby("seg", sort=True)
        .agg(
            episode_id=("episode_id", "first"),
            start=("step", "min"),
            end=("step", "max"),
            text=("text", "first"),
        )
    )
    grouped = grouped[grouped["text"] != ""]
    out: dict[str, list[Segment]] = defaultdict(list)
    for e, start, end, t in grouped[["episode_id", "start", "end", "text"]].itertuples(index=False):
        out[e].append(Segment(int(start), int(end), t))
    return dict(out)


def timelines(steps: pd.DataFrame) -> dict[str, dict[str, list[Segment]]]:
    """column ("intention", "reasoning") -> episode_id -> segments."""
    return {col: collapse(steps, col) for col in TEXT_COLUMNS}
