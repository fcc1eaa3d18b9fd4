"""A run for analysis in Python: what `vlascore.load_run` returns. Episodes, steps and frames come from the run
store; judgements (every judgement file of the run, one row per judged episode) and the scores come from the
judging and scoring stages, so this sits above them (the run store itself stays a core module)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from vlascore.judging.judgement import DIMENSIONS, JudgementFile
from vlascore.scoring import RunResults, read_judgement_files, score_run
from vlascore.scoring.vla import trajectory_scores
from vlascore.store import LoadedRun

JUDGEMENT_COLUMNS = [
    "label",
    "judge",
    "judge_version",
    "judge_model",
    "mode",
    "episode_id",
    "task",
    "status",
    "success",
    "reasoning",
    "action",
    "intention",
    "alignment",
    "vla_score",
    "thought",
    "failure_modes",
    "failure_reason",
    "cached",
]
"""Columns of `RunData.judgements` (documented in docs/export.md)."""


class RunData(LoadedRun):
    """A run directory opened for reading: `.run` (RunRecord), `.episodes`, `.steps`, `.judgements` (pandas),
    `.frames(episode_id)`, `.results` (the score tables' numbers, computed, not written)."""

    @cached_property
    def judgement_files(self) -> list[JudgementFile]:
        """Every judgement file of the run (judgements/*.json), sorted by label."""
        return read_judgement_files(self.path)

    @cached_property
    def judgements(self) -> pd.DataFrame:
        """One row per episode of the run and judgement file: its status (ok, failed, unjudged, errored), the
        scores 0-10 (missing where not asked or not judged), the per-trajectory VLA Score of Eq. 8 x 100, the
        rationale and failure modes. Empty (with the columns) when the run has not been judged."""
        frames = [self._judgement_rows(jf) for jf in self.judgement_files]
        if not frames:
            return pd.DataFrame(columns=JUDGEMENT_COLUMNS)
        return pd.concat(frames, ignore_index=True)[JUDGEMENT_COLUMNS]

    def _judgement_rows(self, jf: JudgementFile) -> pd.DataFrame:
        table = trajectory_scores(self, jf)
        verdicts = {j.episode_id: j for j in jf.judgements}
        mode = next((j.mode for j in jf.judgements), None)
        rows = []
        for eid, task, status, b, score in zip(
            table["episode_id"], table["task"], table["judgement"], table["B"], table["score"], strict=True
        ):
            j = verdicts.get(eid)
            scores = j.scores if j is not None and status == "ok" else {}
            rows.append(
                {
                    "label": jf.label,
                    "judge": jf.judge,
                    "judge_version": jf.judge_version,
                    "judge_model": jf.judge_model,
                    "mode": mode,
                    "episode_id": eid,
                    "task": task,
                    "status": status,
                    "success": bool(b),
                    **{name.lower(): scores.get(name) for name in DIMENSIONS},
                    "vla_score": None if np.isnan(score) else 100 * float(score),
                    "thought": j.thought if j is not None else None,
                    "failure_modes": list(j.failure_modes) if j is not None else [],
                    "failure_reason": j.failure_reason if j is not None else None,
                    "cached": bool(j.cached) if j is not None else False,
                }
            )
        frame = pd.DataFrame(rows, columns=JUDGEMENT_COLUMNS)
        for name in DIMENSIONS:
            frame[name.lower()] = frame[name.lower()].astype("Int64")
        return frame

    @cached_property
    def results(self) -> RunResults:
        """Success rates with intervals and the VLA Score of every judgement file (what `vlascore score` writes to
        results.json; computed here without writing it)."""
        return score_run(self, judgements=self.judgement_files)


def load_run_data(path: str | Path) -> RunData:
    return RunData(path)
