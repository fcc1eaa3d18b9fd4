"""What the report's episode browser knows of each episode, as compact JSON-able dicts: the outcome, the
reasoning / intention timeline, the actions, every judge's verdict and rationale, and a filmstrip.

The browser renders rows and the drill-down client-side from this data (with DOM text nodes, never HTML), so a
report of 10,000 episodes stays one file that opens quickly. Actions are sent as base64 int16 samples with a
scale per dimension (at most MAX_ACTION_POINTS per episode); filmstrips, the heavy part, are embedded for at most
`filmstrips` episodes per run, spread over the tasks (the rest say how to get theirs).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pydantic_core

from vlascore.images import png_data_uri, sample_indices, thumbnail
from vlascore.judging.judgement import DIMENSIONS, JudgementFile
from vlascore.records import RunRecord
from vlascore.report.timeline import TEXT_COLUMNS, segments
from vlascore.store import LoadedRun
from vlascore.suites import ActionSpace, Suite

MAX_ACTION_POINTS = 200
"""Action samples per episode sent to the browser (longer episodes are strided; the last step is kept)."""
MAX_SEGMENTS = 200
"""Timeline segments shown per episode and kind; the rest are counted."""
MAX_SEGMENT_CHARS = 2000
"""A longer segment text is cut (and marked)."""
_ROTATION = {
    "euler_xyz": ["roll", "pitch", "yaw"],
    "axis_angle": ["ax", "ay", "az"],
    "quaternion": ["qw", "qx", "qy", "qz"],
    "rot6d": [f"r{i}" for i in range(1, 7)],
    "none": [],
}


def action_labels(space: ActionSpace) -> list[str]:
    """Names of the action dimensions under a task's convention (`a0`... when the layout is not the usual one)."""
    prefix = "d" if space.mode.endswith("_delta") else ""
    if space.mode.startswith("ee_"):
        names = [f"{prefix}{n}" for n in ("x", "y", "z", *_ROTATION[space.rotation])] + ["gripper"]
        if len(names) == space.dim:
            return names
    return [f"a{i}" for i in range(space.dim)]


def _scale(peaks: np.ndarray) -> np.ndarray:
    """Per-dimension scales: the peak |value| rounded *up* to 4 decimals (short in JSON, never below the peak, so
    the int16 samples never overflow); 1 for a dimension that is all zeros."""
    scale = np.ceil(peaks * 1e4) / 1e4
    scale[scale == 0] = 1.0
    return scale


def _quantise(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values / scale * 32767), -32767, 32767).astype("<i2")


def _b64(q: np.ndarray) -> str:
    return base64.b64encode(q.tobytes()).decode("ascii")


def encode_actions(values: np.ndarray, max_points: int = MAX_ACTION_POINTS) -> dict[str, Any]:
    """{n: steps, k: stride, d: dims, s: scale per dim, q: base64 little-endian int16 of the strided samples}.

    Sample i is step min(i * k, n - 1); its value in dimension j is q[i * d + j] / 32767 * s[j]."""
    n, d = values.shape
    stride = max(1, math.ceil(n / max_points))
    idx = list(range(0, n, stride))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    sub = np.nan_to_num(values[idx], nan=0.0, posinf=0.0, neginf=0.0)
    scale = _scale(np.abs(sub).max(axis=0))
    return {"n": n, "k": stride, "d": d, "s": scale.tolist(), "q": _b64(_quantise(sub, scale))}


def encode_episodes(
    values: np.ndarray | list[Any], blocks: dict[str, slice], max_points: int = MAX_ACTION_POINTS
) -> dict[str, dict[str, Any]]:
    """encode_actions of every episode (`blocks`: episode -> its rows of `values`); one vectorised pass over all
    rows when the actions share a dimension and no episode needs striding (the usual case), else per episode."""
    lengths = np.array([b.stop - b.start for b in blocks.values()], dtype=np.intp)
    if isinstance(values, np.ndarray) and values.ndim == 2 and len(values) and lengths.max(initial=0) <= max_points:
        d = values.shape[1]
        clean = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        starts = np.array([b.start for b in blocks.values()], dtype=np.intp)
        scales = _scale(np.maximum.reduceat(np.abs(clean), starts, axis=0))
        raw = _quantise(clean, np.repeat(scales, lengths, axis=0)).tobytes()
        width = 2 * d
        return {
            eid: {
                "n": int(n),
                "k": 1,
                "d": d,
                "s": scales[k].tolist(),
                "q": base64.b64encode(raw[b.start * width : b.stop * width]).decode("ascii"),
            }
            for k, ((eid, b), n) in enumerate(zip(blocks.items(), lengths, strict=True))
        }
    out = {}
    for eid, block in blocks.items():
        chunk = values[block]
        if isinstance(chunk, list):  # ragged across episodes: this episode's rows may still agree
            try:
                chunk = np.asarray(chunk, dtype=float)
            except ValueError:
                continue
        if chunk.ndim == 2 and len(chunk):
            out[eid] = encode_actions(chunk, max_points)
    return out


def _actions(text: str) -> np.ndarray | list[Any]:
    """A JSON list of actions parsed in one call (pydantic-core's parser: several times faster than `json`): an
    (N, d) array, or the list of rows when they differ in length."""
    parsed = pydantic_core.from_json(text)
    try:
        return np.asarray(parsed, dtype=float).reshape(len(parsed), -1)
    except ValueError:
        return parsed


Timelines = dict[str, dict[str, list[list[Any]]]]
"""episode_id -> kind (intention, reasoning) -> [[first step, last step, text], ...]."""


def read_steps(run: LoadedRun) -> tuple[Timelines, dict[str, int], dict[str, Any]]:
    """(timelines, hidden segments per `episode\0kind`, encoded actions per episode) of every step of the run.

    The store commits each episode's steps in one transaction, in step order, so one scan in commit order serves;
    a run whose rows are not laid out that way (edited by hand) is read and sorted instead."""
    scan = run.store.step_scan()
    if scan is None:
        return _read_sorted(run)
    starts = np.array([b.start for b in scan.blocks.values()], dtype=np.intp)
    ids = list(scan.blocks)
    adder = _SegmentAdder()
    n, step = len(scan.step), scan.step.tolist()
    for kind in TEXT_COLUMNS:
        rows, texts = scan.changes[kind]
        idx = np.asarray(rows, dtype=np.intp)
        ends = np.r_[idx[1:], n] - 1  # every episode starts with a change, so a segment never spans two episodes
        owner = np.searchsorted(starts, idx, side="right") - 1
        per_episode: dict[int, list[list[Any]]] = {}
        for i, e, o, text in zip(rows, ends.tolist(), owner.tolist(), texts, strict=True):
            if text:  # the hot loop of a big report: plain appends, the caps applied after
                per_episode.setdefault(o, []).append([step[i], step[e], text])
        for o, segs in per_episode.items():
            adder.extend(ids[o], kind, segs)
    return adder.lines, adder.hidden, encode_episodes(_actions(scan.actions_json), scan.blocks)


class _SegmentAdder:
    """Collects timeline segments, keeping MAX_SEGMENTS per episode and kind and counting the rest."""

    def __init__(self) -> None:
        self.lines: Timelines = {}
        self.hidden: dict[str, int] = {}

    def extend(self, eid: str, kind: str, segments: list[list[Any]]) -> None:
        """Add an episode's [start, end, text] segments of one kind, in step order."""
        if len(segments) > MAX_SEGMENTS:
            self.hidden[f"{eid}\0{kind}"] = len(segments) - MAX_SEGMENTS
            segments = segments[:MAX_SEGMENTS]
        for seg in segments:
            if len(seg[2]) > MAX_SEGMENT_CHARS:
                seg[2] = _cut(seg[2])
        self.lines.setdefault(eid, {})[kind] = segments


def _read_sorted(run: LoadedRun) -> tuple[Timelines, dict[str, int], dict[str, Any]]:
    """read_steps for a run whose step rows are out of order: read them all, sort, collapse."""
    rows = sorted(
        run.store.step_rows(["episode_id", "step", "action", *TEXT_COLUMNS], empty_text=True),
        key=lambda r: (r[0], r[1]),
    )
    columns = list(zip(*rows, strict=True))
    adder = _SegmentAdder()
    for k, kind in enumerate(TEXT_COLUMNS):
        for eid, segs in segments(columns[0], columns[1], columns[3 + k], all_strings=True).items():
            adder.extend(eid, kind, [[seg.start, seg.end, seg.text] for seg in segs])
    ids = np.asarray(columns[0], dtype=object)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    blocks = {str(ids[a]): slice(int(a), int(b)) for a, b in zip(starts, ends, strict=True)}
    return adder.lines, adder.hidden, encode_episodes(_actions("[" + ",".join(columns[2]) + "]"), blocks)


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
    strip = [
        [png_data_uri(thumbnail(frames[i], thumb_side)), int(steps[i]), int(steps[i]) >= num_steps]
        for i in sample_indices(len(frames), max_frames)
    ]
    return {"f": strip} if strip else {"fn": "no frames stored"}


def _verdicts(judgements: list[tuple[JudgementFile, pd.DataFrame]]) -> dict[str, list[dict[str, Any]]]:
    """episode_id -> one entry per judgement file: label index, status, scores, Eq. 8 score, flags, rationale."""
    out: dict[str, list[dict[str, Any]]] = {}
    for index, (jf, table) in enumerate(judgements):
        scores = dict(zip(table["episode_id"], table["score"], strict=True))
        for j in jf.judgements:
            value = scores.get(j.episode_id)
            out.setdefault(j.episode_id, []).append(
                {
                    "l": index,
                    "s": j.status,
                    "d": {DIMENSIONS[k]: v for k, v in j.scores.items() if k in DIMENSIONS},
                    "v": None if value is None or value != value else round(100 * float(value), 2),
                    "m": list(j.failure_modes),
                    "th": j.thought,
                    "e": j.failure_reason,
                }
            )
    return out


def episode_rows(
    run: LoadedRun,
    run_index: int,
    episodes: pd.DataFrame,
    judgements: list[tuple[JudgementFile, pd.DataFrame]],
    *,
    filmstrips: int,
    max_frames: int,
    thumb_side: int,
    pool: ThreadPoolExecutor,
) -> list[dict[str, Any]]:
    """The browser's records of one run's episodes, in the order of `episodes`.

    Filmstrips are decoded in `pool` while this thread reads the steps (zlib releases the GIL)."""
    num_steps = dict(zip(episodes["episode_id"], episodes["num_steps"], strict=True))
    strips = {
        eid: pool.submit(filmstrip, run, eid, int(num_steps[eid]), max_frames, thumb_side)
        for eid in filmstrip_ids(episodes, filmstrips)
    }
    lines, hidden, actions = read_steps(run)
    verdicts = _verdicts(judgements)
    records = []
    for row in episodes.itertuples(index=False):
        eid = str(row.episode_id)
        errored = row.status == "errored"
        reason = row.failure_reason if isinstance(row.failure_reason, str) else ""
        rec: dict[str, Any] = {
            "r": run_index,
            "id": eid,
            "task": row.task,
            "seed": int(row.seed),
            "o": "errored" if errored else ("success" if bool(row.success) else "failure"),
            "n": int(row.num_steps),
            "t": row.termination,
            "fr": reason,
            "du": round(float(row.duration_s), 2),
            "in": row.instruction,
            "j": verdicts.get(eid, []),
            "tl": lines.get(eid, {}),
            "th": {k: hidden[f"{eid}\0{k}"] for k in TEXT_COLUMNS if f"{eid}\0{k}" in hidden},
            "a": actions.get(eid),
        }
        if not isinstance(row.frames_file, str):
            rec["fn"] = "no frames stored"
        elif eid in strips:
            rec.update(strips[eid].result())
        else:
            rec["fn"] = (
                f"filmstrip not embedded (this report embeds {filmstrips} per run): "
                f"vlascore report {run.path} --episode {eid}"
            )
        records.append(rec)
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
