"""What the report's episode browser knows of each episode, as compact JSON-able dicts: the outcome, the
reasoning / intention timeline, the actions, every judge's verdict and rationale, and a filmstrip.

The browser renders rows and the drill-down client-side from this data (with DOM text nodes, never HTML), so a
report of 10,000 episodes stays one file that opens quickly. Actions are sent as base64 int16 samples with a
scale per dimension (at most MAX_ACTION_POINTS per episode); filmstrips, the heavy part, are embedded for at most
`filmstrips` episodes per run, spread over the tasks (the rest say how to get theirs).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from vlascore.images import png_data_uri, sample_indices, thumbnail
from vlascore.judging.judgement import DIMENSIONS, JudgementFile
from vlascore.records import RunRecord
from vlascore.report.timeline import TEXT_COLUMNS, timelines
from vlascore.store import LoadedRun
from vlascore.suites import ActionSpace, Suite

MAX_ACTION_POINTS = 200
"""Action samples per episode sent to the browser (longer episodes are strided; the last step is kept)."""
MAX_SEGMENTS = 200
"""Timeline segments shown per episode and kind; the rest are counted."""
MAX_SEGMENT_CHARS = 2000
"""A longer segment text is cut (and marked)."""
_ROTATION = {"euler_xyz": ["roll", "pitch", "yaw"], "axis_angle": ["ax", "ay", "az"],
             "quaternion": ["qw", "qx", "qy", "qz"], "rot6d": [f"r{i}" for i in range(1, 7)], "none": []}  # fmt: skip


def action_labels(space: ActionSpace) -> list[str]:
    """Names of the action dimensions under a task's convention (`a0`... when the layout is not the usual one)."""
    prefix = "d" if space.mode.endswith("_delta") else ""
    if space.mode.startswith("ee_"):
        names = [f"{prefix}{n}" for n in ("x", "y", "z", *_ROTATION[space.rotation])] + ["gripper"]
        if len(names) == space.dim:
            return names
    return [f"a{i}" for i in range(space.dim)]


def encode_actions(values: np.ndarray, max_points: int = MAX_ACTION_POINTS) -> dict[str, Any]:
    """{n: steps, k: stride, d: dims, s: scale per dim, q: base64 little-endian int16 of the strided samples}.

    Sample i is step min(i * k, n - 1); its value in dimension j is q[i * d + j] / 32767 * s[j]."""
    n, d = values.shape
    stride = max(1, math.ceil(n / max_points))
    idx = list(range(0, n, stride))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    sub = np.nan_to_num(values[idx], nan=0.0, posinf=0.0, neginf=0.0)
    scale = np.abs(sub).max(axis=0)
    scale[scale == 0] = 1.0
    q = np.rint(sub / scale * 32767).astype("<i2")
    return {"n": n, "k": stride, "d": d, "s": [float(f"{x:.6g}") for x in scale],
            "q": base64.b64encode(q.tobytes()).decode("ascii")}  # fmt: skip


def _split(df: pd.DataFrame) -> dict[str, slice]:
    """episode_id -> row slice of `df`, which holds each episode's steps contiguously (the store's commit order)."""
    if df.empty:
        return {}
    eid = df["episode_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, eid[1:] != eid[:-1]])
    ends = np.r_[starts[1:], len(eid)]
    return {str(eid[s]): slice(int(s), int(e)) for s, e in zip(starts, ends, strict=True)}


def _actions(column: pd.Series) -> np.ndarray | list[list[float]]:
    """The stored JSON action texts parsed in one call (an (N, d) array); a list when rows differ in length."""
    parsed = json.loads("[" + ",".join(column) + "]") if len(column) else []
    try:
        return np.asarray(parsed, dtype=float).reshape(len(parsed), -1)
    except ValueError:
        return parsed


def read_steps(run: LoadedRun) -> tuple[dict[str, dict[str, list[list[Any]]]], dict[str, int], dict[str, Any]]:
    """(timeline per episode, hidden segments per episode and kind, encoded actions per episode), one query."""
    df = run.store.steps_frame(columns=["episode_id", "step", "action", *TEXT_COLUMNS], parse_json=False)
    if not _contiguous(df["episode_id"]):
        df = df.sort_values(["episode_id", "step"], kind="stable").reset_index(drop=True)
    texts = timelines(df[["episode_id", "step", *TEXT_COLUMNS]])
    lines: dict[str, dict[str, list[list[Any]]]] = {}
    hidden: dict[str, int] = {}
    for kind, by_episode in texts.items():
        for eid, segments in by_episode.items():
            lines.setdefault(eid, {})[kind] = [[s.start, s.end, _cut(s.text)] for s in segments[:MAX_SEGMENTS]]
            if len(segments) > MAX_SEGMENTS:
                hidden[f"{eid}\0{kind}"] = len(segments) - MAX_SEGMENTS
    values = _actions(df["action"])
    actions = {}
    for eid, rows in _split(df).items():
        block = values[rows]
        if isinstance(block, list):  # ragged: the episode's own rows may still agree
            try:
                block = np.asarray(block, dtype=float)
            except ValueError:
                continue
        if block.ndim == 2 and len(block):
            actions[eid] = encode_actions(block)
    return lines, hidden, actions


def _contiguous(ids: pd.Series) -> bool:
    """Whether each id's rows form one block (the store writes an episode's steps in one transaction)."""
    arr = ids.to_numpy()
    changes = int((arr[1:] != arr[:-1]).sum()) if len(arr) else 0
    return changes + 1 == ids.nunique() if len(arr) else True


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SEGMENT_CHARS else text[:MAX_SEGMENT_CHARS] + " [... cut]"


def filmstrip_ids(episodes: pd.DataFrame, limit: int) -> list[str]:
    """At most `limit` episode ids, round-robin over tasks in row order, so every task gets filmstrips."""
    if limit <= 0:
        return []
    with_frames = episodes[episodes["frames_file"].notna()]
    if len(with_frames) <= limit:
        return list(with_frames["episode_id"])
    queues = [list(g["episode_id"]) for _, g in with_frames.groupby("task", sort=False)]
    chosen: list[str] = []
    depth = 0
    while len(chosen) < limit:
        for q in queues:
            if depth < len(q) and len(chosen) < limit:
                chosen.append(q[depth])
        depth += 1
    return chosen


def filmstrip(run: LoadedRun, episode_id: str, num_steps: int, max_frames: int, thumb_side: int) -> dict[str, Any]:
    """{f: [[data uri, step, is final]...]} or {fn: why there are none}; one unreadable file never sinks a report."""
    try:
        frames, steps = run.frames(episode_id)
    except Exception as exc:  # noqa: BLE001 - reported on the episode instead
        return {"fn": f"frames unreadable: {type(exc).__name__}: {exc}"}
    strip = [[png_data_uri(thumbnail(frames[i], thumb_side)), int(steps[i]), int(steps[i]) >= num_steps]
             for i in sample_indices(len(frames), max_frames)]  # fmt: skip
    return {"f": strip} if strip else {"fn": "no frames stored"}


def _verdicts(judgements: list[tuple[JudgementFile, pd.DataFrame]]) -> dict[str, list[dict[str, Any]]]:
    """episode_id -> one entry per judgement file: label index, status, scores, Eq. 8 score, flags, rationale."""
    out: dict[str, list[dict[str, Any]]] = {}
    for index, (jf, table) in enumerate(judgements):
        scores = dict(zip(table["episode_id"], table["score"], strict=True))
        for j in jf.judgements:
            value = scores.get(j.episode_id)
            out.setdefault(j.episode_id, []).append({
                "l": index, "s": j.status, "d": {DIMENSIONS[k]: v for k, v in j.scores.items() if k in DIMENSIONS},
                "v": None if value is None or value != value else round(100 * float(value), 2),
                "m": list(j.failure_modes), "th": j.thought, "e": j.failure_reason,
            })  # fmt: skip
    return out


def episode_rows(run: LoadedRun, run_index: int, episodes: pd.DataFrame,
                 judgements: list[tuple[JudgementFile, pd.DataFrame]], *, filmstrips: int, max_frames: int,
                 thumb_side: int, pool: ThreadPoolExecutor) -> list[dict[str, Any]]:  # fmt: skip
    """The browser's records of one run's episodes, in the order of `episodes`."""
    lines, hidden, actions = read_steps(run)
    verdicts = _verdicts(judgements)
    strips_for = set(filmstrip_ids(episodes, filmstrips))
    records = []
    for row in episodes.itertuples(index=False):
        eid = str(row.episode_id)
        errored = row.status == "errored"
        reason = row.failure_reason if isinstance(row.failure_reason, str) else ""
        rec: dict[str, Any] = {
            "r": run_index, "id": eid, "task": row.task, "seed": int(row.seed),
            "o": "errored" if errored else ("success" if bool(row.success) else "failure"),
            "n": int(row.num_steps), "t": row.termination, "fr": reason, "du": round(float(row.duration_s), 2),
            "in": row.instruction, "j": verdicts.get(eid, []), "tl": lines.get(eid, {}),
            "th": {k: hidden[f"{eid}\0{k}"] for k in TEXT_COLUMNS if f"{eid}\0{k}" in hidden},
            "a": actions.get(eid),
        }  # fmt: skip
        if not isinstance(row.frames_file, str):
            rec["fn"] = "no frames stored"
        elif eid not in strips_for:
            rec["fn"] = (f"filmstrip not embedded (this report embeds {filmstrips} per run): "
                         f"vlascore report {run.path} --episode {eid}")  # fmt: skip
        records.append(rec)
    todo = [r for r in records if r["id"] in strips_for]
    for rec, strip in zip(todo, pool.map(lambda r: filmstrip(run, r["id"], r["n"], max_frames, thumb_side), todo),
                          strict=True):  # fmt: skip
        rec.update(strip)
    return records


def ordered_episodes(run: LoadedRun, only: Iterable[str] | None = None) -> pd.DataFrame:
    """The run's episodes in suite task order, then by seed (`only`: just these episode ids)."""
    eps = run.episodes
    if only is not None:
        eps = eps[eps["episode_id"].isin(set(only))]
    order = {t: i for i, t in enumerate(run.run.tasks)}
    eps = eps.assign(_order=eps["task"].map(order).fillna(len(order)))
    return eps.sort_values(["_order", "seed"], kind="stable").drop(columns="_order").reset_index(drop=True)


def labels_by_task(record: RunRecord) -> dict[str, list[str]]:
    """Task id -> names of its action dimensions, from the run's frozen suite spec."""
    suite = Suite.model_validate(record.suite_spec)
    return {t.id: action_labels(t.action_space) for t in suite.tasks}
