"""A run's rollouts as a LeRobot-format dataset (codebase v3.0), written from the format's documented layout (the
same one vlascore.data.lerobot reads; LeRobot's own package pins an older torch than vlascore's):

    meta/info.json                               features, fps, path templates, totals
    meta/stats.json                              per-feature statistics over the dataset
    meta/tasks.parquet                           task text -> task_index
    meta/episodes/chunk-000/file-000.parquet     one row per episode: tasks, length, its rows and video segment
    data/chunk-000/file-000.parquet              one row per control step
    videos/observation.images.CAMERA/chunk-000/file-000.mp4    every episode's frames, one after another

Each step becomes a frame: observation.state (the end-effector pose x, y, z, qw, qx, qy, qz and the gripper
opening), action (the action the simulator received), reasoning and intention (text), next.reward, next.success
and next.done; the camera frames go in as a video when the run stored one per step (`--frame-stride 1`). The
instruction is the episode's task. Errored episodes are left out (the dataset's episodes are complete rollouts).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlascore.export.base import Exporter, ExportError, Progress

if TYPE_CHECKING:
    from vlascore.rundata import RunData

CODEBASE_VERSION = "v3.0"
STATE_NAMES = ["x", "y", "z", "qw", "qx", "qy", "qz", "gripper"]
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
_PATHS = {
    "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
    "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
}


def _stats(values: np.ndarray) -> dict[str, Any]:
    """LeRobot's per-feature statistics of (N, ...) values: min, max, mean, std, count and quantiles per column."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    out: dict[str, Any] = {
        "min": values.min(axis=0).tolist(),
        "max": values.max(axis=0).tolist(),
        "mean": values.mean(axis=0).tolist(),
        "std": values.std(axis=0).tolist(),
        "count": [len(values)],
    }
    for q in QUANTILES:
        out[f"q{round(100 * q):02d}"] = np.quantile(values, q, axis=0).tolist()
    return out


def _image_stats(frames: np.ndarray) -> dict[str, Any]:
    """Per-channel statistics of frames scaled to [0, 1], shaped (3, 1, 1) as LeRobot keeps them."""
    pixels = frames.reshape(-1, 3).astype(np.float64) / 255.0
    flat = _stats(pixels)
    return {k: [[[v]] for v in flat[k]] if k != "count" else [len(frames)] for k in flat}


class LeRobotExporter(Exporter):
    name = "lerobot"
    extras = ("export",)

    def export(self, run: RunData, out: Path, episodes: list[str] | None, progress: Progress | None) -> list[Path]:
        from vlascore.extras import MissingExtraError, require
        from vlascore.suites import Suite

        try:
            pa = require("pyarrow", "export", "LeRobot export")
            pq = require("pyarrow.parquet", "export", "LeRobot export")
            av = require("av", "export", "LeRobot export")
        except MissingExtraError as exc:
            raise ExportError(str(exc)) from None
        if out.exists() and any(out.iterdir()):
            raise ExportError(f"{out} is not empty: a LeRobot dataset is written into a new folder")
        eps = run.episodes[run.episodes["status"] == "ok"]
        if episodes is not None:
            eps = eps[eps["episode_id"].isin(episodes)]
        if eps.empty:
            raise ExportError(f"{run.path} has no completed episode to export")
        suite = Suite.model_validate(run.run.suite_spec)
        fps = float(self.options.get("fps") or suite.task(str(eps["task"].iloc[0])).control_freq or 10.0)
        steps = run.store.steps_frame(list(eps["episode_id"]))
        by_episode = {eid: g for eid, g in steps.groupby("episode_id", sort=False)}
        camera = suite.task(str(eps["task"].iloc[0])).camera
        video_key = f"observation.images.{camera}"
        with_video = run.run.frame_stride == 1 and bool(eps["frames_file"].notna().all())
        tasks: dict[str, int] = {}
        rows: dict[str, list[Any]] = {
            k: []
            for k in (
                "observation.state",
                "action",
                "reasoning",
                "intention",
                "next.reward",
                "next.success",
                "next.done",
                "timestamp",
                "frame_index",
                "episode_index",
                "index",
                "task_index",
            )
        }
        episode_rows: list[dict[str, Any]] = []
        video_frames: list[np.ndarray] = []
        shape: tuple[int, ...] | None = None
        total = len(eps)
        for e, (eid, instruction) in enumerate(zip(eps["episode_id"], eps["instruction"], strict=True)):
            g = by_episode[eid].sort_values("step")
            n = len(g)
            if n == 0:
                continue
            task_index = tasks.setdefault(str(instruction), len(tasks))
            start = len(rows["index"])
            state = np.array([[*pose, grip] for pose, grip in zip(g["ee_pose"], g["gripper"], strict=True)])
            rows["observation.state"] += state.astype(np.float32).tolist()
            rows["action"] += np.array(g["action"].tolist(), dtype=np.float32).tolist()
            rows["reasoning"] += [r if isinstance(r, str) else "" for r in g["reasoning"]]
            rows["intention"] += [i if isinstance(i, str) else "" for i in g["intention"]]
            rows["next.reward"] += [float(r) for r in g["reward"]]
            rows["next.success"] += [bool(s) for s in g["success"]]
            rows["next.done"] += [False] * (n - 1) + [True]
            rows["timestamp"] += [k / fps for k in range(n)]
            rows["frame_index"] += list(range(n))
            rows["episode_index"] += [e] * n
            rows["index"] += list(range(start, start + n))
            rows["task_index"] += [task_index] * n
            record: dict[str, Any] = {
                "episode_index": e,
                "tasks": [str(instruction)],
                "length": n,
                "data/chunk_index": 0,
                "data/file_index": 0,
                "dataset_from_index": start,
                "dataset_to_index": start + n,
            }
            if with_video:
                frames, frame_steps = run.frames(eid)
                if frame_steps[:n].tolist() != list(range(n)):
                    raise ExportError(f"episode {eid}'s frames are not one per step: cannot align them as video")
                frames = frames[:n]  # the last frame shows the state after the last action: no row of its own
                shape = frames.shape[1:]
                offset = len(video_frames)
                video_frames += list(frames)
                record |= {
                    f"videos/{video_key}/chunk_index": 0,
                    f"videos/{video_key}/file_index": 0,
                    f"videos/{video_key}/from_timestamp": offset / fps,
                    f"videos/{video_key}/to_timestamp": (offset + n) / fps,
                }
            episode_rows.append(record)
            if progress:
                progress(e + 1, total, eid)
        if not episode_rows:
            raise ExportError(f"{run.path}'s completed episodes have no steps")
        dim = len(rows["action"][0])
        features: dict[str, Any] = {
            "observation.state": {"dtype": "float32", "shape": [len(STATE_NAMES)], "names": STATE_NAMES},
            "action": {"dtype": "float32", "shape": [dim], "names": None},
            "reasoning": {"dtype": "string", "shape": [1], "names": None},
            "intention": {"dtype": "string", "shape": [1], "names": None},
            "next.reward": {"dtype": "float32", "shape": [1], "names": None},
            "next.success": {"dtype": "bool", "shape": [1], "names": None},
            "next.done": {"dtype": "bool", "shape": [1], "names": None},
        }
        written: list[Path] = []
        if with_video and shape is not None:
            from vlascore.export.video import encode

            features[video_key] = {
                "dtype": "video",
                "shape": list(shape),
                "names": ["height", "width", "channels"],
                "info": {
                    "video.height": shape[0],
                    "video.width": shape[1],
                    "video.codec": "h264",
                    "video.pix_fmt": "yuv420p",
                    "video.is_depth_map": False,
                    "video.fps": fps,
                    "video.channels": 3,
                    "has_audio": False,
                },
            }
            video = out / "videos" / video_key / "chunk-000" / "file-000.mp4"
            video.parent.mkdir(parents=True)
            encode(av, np.stack(video_frames), video, fps)
            written.append(video)
        for name in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
            features[name] = {"dtype": "float32" if name == "timestamp" else "int64", "shape": [1], "names": None}
        table = pa.table(
            {
                "observation.state": pa.array(rows["observation.state"], pa.list_(pa.float32(), len(STATE_NAMES))),
                "action": pa.array(rows["action"], pa.list_(pa.float32(), dim)),
                "reasoning": pa.array(rows["reasoning"], pa.string()),
                "intention": pa.array(rows["intention"], pa.string()),
                "next.reward": pa.array(rows["next.reward"], pa.float32()),
                "next.success": pa.array(rows["next.success"], pa.bool_()),
                "next.done": pa.array(rows["next.done"], pa.bool_()),
                "timestamp": pa.array(rows["timestamp"], pa.float32()),
                **{k: pa.array(rows[k], pa.int64()) for k in ("frame_index", "episode_index", "index", "task_index")},
            }
        )
        data = out / "data" / "chunk-000" / "file-000.parquet"
        data.parent.mkdir(parents=True)
        pq.write_table(table, data)
        numeric = [
            "observation.state",
            "action",
            "next.reward",
            "timestamp",
            "frame_index",
            "episode_index",
            "index",
            "task_index",
        ]
        stats = {k: _stats(np.array(rows[k])) for k in numeric}
        if with_video:
            sample = np.stack(video_frames[:: max(1, len(video_frames) // 500)])  # a bounded sample of the pixels
            stats[video_key] = _image_stats(sample)
        for record in episode_rows:
            a, b = record["dataset_from_index"], record["dataset_to_index"]
            for k in numeric:
                for stat, value in _stats(np.array(rows[k][a:b])).items():
                    record[f"stats/{k}/{stat}"] = value
            record["meta/episodes/chunk_index"], record["meta/episodes/file_index"] = 0, 0
        meta = out / "meta"
        (meta / "episodes" / "chunk-000").mkdir(parents=True)
        episodes_file = meta / "episodes" / "chunk-000" / "file-000.parquet"
        pq.write_table(pa.Table.from_pylist(episode_rows), episodes_file)
        tasks_file = meta / "tasks.parquet"
        import pandas as pd

        pd.DataFrame({"task_index": list(tasks.values())}, index=pd.Index(list(tasks), name=None)).to_parquet(
            tasks_file
        )
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": None,
            "total_episodes": len(episode_rows),
            "total_frames": len(rows["index"]),
            "total_tasks": len(tasks),
            "chunks_size": 1000,
            "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200,
            "fps": fps,
            "splits": {"train": f"0:{len(episode_rows)}"},
            **_PATHS,
            "features": features,
        }
        (meta / "info.json").write_text(json.dumps(info, indent=4))
        (meta / "stats.json").write_text(json.dumps(stats, indent=4))
        written += [data, episodes_file, tasks_file, meta / "info.json", meta / "stats.json"]
        return written
