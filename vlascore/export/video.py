"""One mp4 per episode (H.264 through PyAV, a maintained FFmpeg binding), with the words beside it: a WebVTT
caption file (the instruction over the whole video; the policy's stated intention and reasoning while they hold)
that players load next to the video, and a JSON sidecar mapping every video frame to its control step and text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlascore.export.base import Exporter, ExportError, Progress

if TYPE_CHECKING:
    from vlascore.rundata import RunData

DEFAULT_FPS = 10.0
"""Frames per second when the task states no control frequency."""
_CAPTION_CHARS = 300
"""Longest caption text; reasoning beyond it is cut (the sidecar keeps it whole)."""


class VideoExporter(Exporter):
    name = "mp4"
    extras = ("export",)

    def export(self, run: RunData, out: Path, episodes: list[str] | None, progress: Progress | None) -> list[Path]:
        from vlascore.extras import MissingExtraError, require
        from vlascore.suites import Suite

        try:
            av = require("av", "export", "mp4 export")
        except MissingExtraError as exc:
            raise ExportError(str(exc)) from None
        eps = run.episodes
        eps = eps[eps["frames_file"].notna()]
        if episodes is not None:
            eps = eps[eps["episode_id"].isin(episodes)]
        suite = Suite.model_validate(run.run.suite_spec)
        out.mkdir(parents=True, exist_ok=True)
        texts = run.store.steps_frame(list(eps["episode_id"]), ["episode_id", "step", "reasoning", "intention"])
        by_episode = {eid: g for eid, g in texts.groupby("episode_id", sort=False)}
        written: list[Path] = []
        total = len(eps)
        for k, (eid, task, instruction, success) in enumerate(
            zip(eps["episode_id"], eps["task"], eps["instruction"], eps["success"], strict=True), 1
        ):
            frames, frame_steps = run.frames(eid)
            fps = float(self.options.get("fps") or _fps(suite.task(task).control_freq, run.run.frame_stride))
            video = out / f"{eid}.mp4"
            encode(av, frames, video, fps)
            rows = _frame_rows(frame_steps, by_episode.get(eid), fps)
            captions = out / f"{eid}.vtt"
            captions.write_text(_webvtt(str(instruction), rows, fps))
            sidecar = out / f"{eid}.json"
            sidecar.write_text(
                json.dumps(
                    {
                        "episode_id": eid,
                        "task": task,
                        "instruction": instruction,
                        "success": bool(success),
                        "fps": fps,
                        "frames": rows,
                    },
                    indent=1,
                )
            )
            written += [video, captions, sidecar]
            if progress:
                progress(k, total, eid)
        return written


def _fps(control_freq: float | None, frame_stride: int) -> float:
    return (control_freq or DEFAULT_FPS) / max(1, frame_stride)


def encode(av: Any, frames: np.ndarray, path: Path, fps: float) -> None:
    """Frames (N, H, W, 3) uint8 to an H.264 mp4 (MPEG-4 part 2 where this FFmpeg has no H.264 encoder); odd sizes
    are padded by one edge pixel (the YUV 4:2:0 format players expect needs even sizes)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ExportError(f"cannot encode frames of shape {frames.shape} and type {frames.dtype} as video")
    h, w = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    from fractions import Fraction

    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


def _frame_rows(frame_steps: np.ndarray, texts: Any, fps: float) -> list[dict[str, Any]]:
    """Per video frame: its index, control step, time and the policy's words at that step."""
    by_step: dict[int, tuple[Any, Any]] = {}
    if texts is not None:
        by_step = {
            int(s): (r, i) for s, r, i in zip(texts["step"], texts["reasoning"], texts["intention"], strict=True)
        }
    rows = []
    for index, step in enumerate(frame_steps.tolist()):
        reasoning, intention = by_step.get(int(step), (None, None))
        rows.append(
            {
                "frame": index,
                "step": int(step),
                "time_s": round(index / fps, 6),
                "reasoning": reasoning,
                "intention": intention,
            }
        )
    return rows


def _stamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _clean(text: str) -> str:
    """Caption text: one line, no cue terminators or markup, bounded."""
    text = " ".join(str(text).replace("-->", "->").replace("<", "‹").replace(">", "›").split())
    return text if len(text) <= _CAPTION_CHARS else text[: _CAPTION_CHARS - 1] + "…"


def _webvtt(instruction: str, rows: list[dict[str, Any]], fps: float) -> str:
    """The instruction over the whole video (top line), and each stretch of frames with the same words."""
    cues = [f"{_stamp(0)} --> {_stamp(len(rows) / fps)} line:0\n{_clean(instruction)}"]
    start, current = 0, None
    for k, row in enumerate([*rows, None]):
        words = None
        if row is not None:
            parts = [p for p in (row["intention"], row["reasoning"]) if isinstance(p, str) and p.strip()]
            words = " | ".join(parts) if parts else None
        if row is None or words != current:
            if current:
                cues.append(f"{_stamp(start / fps)} --> {_stamp(k / fps)}\n{_clean(current)}")
            start, current = k, words
    return "WEBVTT\n\n" + "\n\n".join(cues) + "\n"
