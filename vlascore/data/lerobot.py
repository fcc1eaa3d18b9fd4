"""LeRobot-format datasets (codebase v3.0), read from their documented layout, and pruned copies of them.

    meta/info.json                      codebase_version, fps, features (name -> dtype, shape), path templates
    meta/episodes/chunk-*/file-*.parquet  one row per episode: episode_index, tasks, length, its data and video
                                        file indices and its video segment (videos/KEY/from_timestamp, to_timestamp)
    data/chunk-*/file-*.parquet         one row per frame: the features, episode_index, frame_index, index
    videos/KEY/chunk-*/file-*.mp4       the camera streams, several episodes per file (decoded with PyAV)

vlascore reads the files itself (pyarrow, PyAV, Pillow) rather than through the `lerobot` package, which pins an
older torch than vlascore's; the tests check the reader against datasets written by LeRobot's own writer, and
LeRobot's reader against the pruned copies. The module is the project's one reader of the format: reuse it.

LeRobot datasets name their columns freely, so `--field` says where the pose, gripper and texts are:
pose=COLUMN[a:b] (x, y, z then a rotation: 3 more values read as roll, pitch, yaw (`euler_rpy`) unless
rotation=... says otherwise, 4 as a w, x, y, z quaternion), gripper=COLUMN[i]<0.5 (closed where the comparison
holds), reasoning=COLUMN [default: reasoning], intention=COLUMN, image=CAMERA [default: the first camera].
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlascore.adapters.conventions import to_matrix
from vlascore.data.sources import EpisodeFailure, Source, link_or_copy
from vlascore.data.trajectory import Trajectory, TrajectoryError
from vlascore.extras import require

INFO = Path("meta") / "info.json"
MAX_INFO_BYTES = 4 << 20
ROTATIONS = {"euler_xyz": 3, "euler_rpy": 3, "axis_angle": 3, "quaternion": 4}
FIELD_KEYS = ("pose", "rotation", "gripper", "reasoning", "intention", "image")
_COLUMN = re.compile(r"^(?P<col>[^\[\]<>]+?)(?:\[(?P<a>-?\d+)?(?P<colon>:)?(?P<b>-?\d+)?\])?$")
_GRIPPER = re.compile(r"^(?P<ref>[^<>]+?)\s*(?P<op><|>)\s*(?P<thr>-?[\d.eE+-]+)$")


@dataclass(frozen=True)
class ColumnRef:
    """A column, and the slice of its vector the field takes."""

    column: str
    index: slice

    @classmethod
    def parse(cls, text: str, what: str) -> ColumnRef:
        m = _COLUMN.match(text.strip())
        if not m:
            raise TrajectoryError(f"--field {what}={text!r}: expected COLUMN or COLUMN[i] or COLUMN[a:b]")
        a, b = m["a"], m["b"]
        if m["colon"]:
            index = slice(int(a) if a else None, int(b) if b else None)
        elif a is not None:
            i = int(a)
            index = slice(i, i + 1 if i != -1 else None)
        else:
            index = slice(None)
        return cls(m["col"].strip(), index)

    def take(self, values: np.ndarray) -> np.ndarray:
        return values[:, self.index]


@dataclass(frozen=True)
class Fields:
    pose: ColumnRef
    rotation: str
    gripper: ColumnRef
    closed_below: bool
    threshold: float
    reasoning: str
    intention: str | None
    image: str | None


def parse_fields(raw: dict[str, str], features: dict[str, Any]) -> Fields:
    """The --field settings checked against the dataset's features; each problem says what to pass."""
    unknown = sorted(set(raw) - set(FIELD_KEYS))
    if unknown:
        raise TrajectoryError(f"unknown --field {', '.join(unknown)} (known: {', '.join(FIELD_KEYS)})")
    numeric = [k for k, v in features.items() if v.get("dtype") in ("float32", "float64")]
    if "pose" not in raw or "gripper" not in raw:
        raise TrajectoryError(
            "a LeRobot dataset needs --field pose=COLUMN[a:b] and --field 'gripper=COLUMN[i]<THRESHOLD' (say where "
            f"the end-effector pose and the gripper are; numeric columns: {', '.join(numeric) or 'none'})"
        )
    pose = ColumnRef.parse(raw["pose"], "pose")
    g = _GRIPPER.match(raw["gripper"].strip())
    if not g:
        raise TrajectoryError(
            f"--field gripper={raw['gripper']!r}: expected COLUMN[i]<THRESHOLD or COLUMN[i]>THRESHOLD"
        )
    gripper = ColumnRef.parse(g["ref"], "gripper")
    for ref, what in ((pose, "pose"), (gripper, "gripper")):
        if ref.column not in features:
            raise TrajectoryError(f"--field {what}: no column {ref.column!r} (numeric columns: {', '.join(numeric)})")
    width = len(range(*pose.index.indices(int(np.prod(features[pose.column].get("shape") or [1])))))
    rotation = raw.get("rotation") or {6: "euler_rpy", 7: "quaternion"}.get(width, "")
    if rotation not in ROTATIONS or ROTATIONS[rotation] + 3 != width:
        raise TrajectoryError(
            f"--field pose={raw['pose']} takes {width} values: it must be x, y, z and a rotation; say which with "
            f"--field rotation={'|'.join(ROTATIONS)} (3 or 4 values after x, y, z)"
        )
    texts = [k for k, v in features.items() if v.get("dtype") == "string"]
    reasoning = raw.get("reasoning", "reasoning")
    for key in ("reasoning", "intention"):
        name = raw.get(key, reasoning if key == "reasoning" else None)
        if name is not None and name not in texts:
            raise TrajectoryError(
                f"--field {key}: no text column {name!r} in the dataset (text columns: {', '.join(texts) or 'none'})"
            )
    cameras = [k for k, v in features.items() if v.get("dtype") in ("video", "image")]
    image = raw.get("image") or (cameras[0] if cameras else None)
    if image is not None and image not in cameras:
        raise TrajectoryError(f"--field image: no camera {image!r} (cameras: {', '.join(cameras) or 'none'})")
    return Fields(
        pose=pose,
        rotation=rotation,
        gripper=gripper,
        closed_below=g["op"] == "<",
        threshold=float(g["thr"]),
        reasoning=reasoning,
        intention=raw.get("intention"),
        image=image,
    )


def read_info(root: Path) -> dict[str, Any]:
    path = root / INFO
    try:
        if path.stat().st_size > MAX_INFO_BYTES:
            raise TrajectoryError(f"{path} is larger than {MAX_INFO_BYTES} bytes: not a LeRobot info file")
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TrajectoryError(f"cannot read {path}: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("features"), dict):
        raise TrajectoryError(f"{path} has no features mapping: not a LeRobot dataset")
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        raise TrajectoryError(
            f"{root} is a LeRobot {version or 'unversioned'} dataset; vlascore reads v3.x: convert it with "
            "LeRobot's convert_dataset_v21_to_v30"
        )
    return info


class LeRobotSource(Source):
    """A LeRobot v3 dataset folder."""

    kind = "lerobot"

    def __init__(self, path: Path, fields: dict[str, str]) -> None:
        super().__init__(path)
        self.pq = require("pyarrow.parquet", "data", purpose="reading LeRobot datasets")
        self.info = read_info(path)
        self.features: dict[str, Any] = self.info["features"]
        self.fields = parse_fields(fields, self.features)
        self.fps = float(self.info.get("fps") or 0) or 1.0
        episodes_dir = path / "meta" / "episodes"
        files = sorted(episodes_dir.glob("chunk-*/file-*.parquet"))
        if not files:
            raise TrajectoryError(f"{path} has no meta/episodes/chunk-*/file-*.parquet: not a LeRobot v3 dataset")
        rows: list[dict[str, Any]] = []
        for f in files:
            columns = [c for c in self.pq.read_schema(f).names if not c.startswith("stats/")]
            rows.extend(self.pq.read_table(f, columns=columns).to_pylist())
        self.episodes = sorted(rows, key=lambda r: int(r["episode_index"]))

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": str(self.path),
            "codebase_version": self.info.get("codebase_version"),
            "total_episodes": self.info.get("total_episodes"),
            "total_frames": self.info.get("total_frames"),
        }

    def holds(self) -> frozenset[str]:
        have = {"reasoning"}
        if self.fields.intention:
            have.add("intention")
        if self.fields.image:
            have.add("frames")
        return frozenset(have)

    def episode_count(self) -> int:
        return len(self.episodes)

    @staticmethod
    def episode_id(index: int) -> str:
        return f"episode_{index:06d}"

    def _data_files(self) -> list[Path]:
        return sorted((self.path / "data").glob("chunk-*/file-*.parquet"))

    def trajectories(self) -> Iterator[Trajectory | EpisodeFailure]:
        f = self.fields
        columns = sorted(
            {"episode_index", "frame_index", f.pose.column, f.gripper.column, f.reasoning}
            | ({f.intention} if f.intention else set())
        )
        by_episode: dict[int, list[Any]] = {}
        for path in self._data_files():
            table = self.pq.read_table(path, columns=columns)
            episode = np.asarray(table.column("episode_index").to_numpy())
            order = np.argsort(episode, kind="stable")
            split = np.flatnonzero(np.diff(episode[order])) + 1
            for rows in np.split(order, split):
                if len(rows):
                    by_episode.setdefault(int(episode[rows[0]]), []).append(table.take(rows))
        for ep in self.episodes:
            index = int(ep["episode_index"])
            eid = self.episode_id(index)
            task = str((ep.get("tasks") or [""])[0])
            try:
                yield self._trajectory(ep, eid, task, by_episode.pop(index, []))
            except (TrajectoryError, ValueError, TypeError, KeyError, IndexError) as exc:
                yield EpisodeFailure(eid, task, f"unreadable frames: {exc}")

    def _trajectory(self, ep: dict[str, Any], eid: str, task: str, parts: list[Any]) -> Trajectory:
        if not parts:
            raise TrajectoryError("the episode has no rows in data/")
        f = self.fields
        table = parts[0] if len(parts) == 1 else __import__("pyarrow").concat_tables(parts)
        frame_index = np.asarray(table.column("frame_index").to_numpy())
        order = np.argsort(frame_index, kind="stable")

        def vectors(column: str) -> np.ndarray:
            values = table.column(column).to_pylist()
            return np.asarray([np.atleast_1d(np.asarray(values[i], dtype=np.float64)) for i in order])

        pose = f.pose.take(vectors(f.pose.column))
        grip = f.gripper.take(vectors(f.gripper.column))
        if grip.shape[1] != 1:
            raise TrajectoryError(f"--field gripper selects {grip.shape[1]} values; select one, e.g. action[6]")
        closed = grip[:, 0] < f.threshold if f.closed_below else grip[:, 0] > f.threshold

        def texts(column: str | None) -> list[str]:
            if column is None:
                return [""] * len(order)
            values = table.column(column).to_pylist()
            return [str(values[i]) if values[i] is not None else "" for i in order]

        frames = None
        if f.image is not None:
            frames = self._frames_loader(ep, f.image, len(order))
        return Trajectory(
            episode_id=eid,
            task=task,
            steps=frame_index[order].astype(np.int64),
            position=pose[:, :3],
            rotation=to_matrix(pose[:, 3:], f.rotation),
            gripper_closed=closed,
            reasoning=texts(f.reasoning),
            intention=texts(f.intention),
            frames=frames,
        )

    def _frames_loader(self, ep: dict[str, Any], camera: str, length: int) -> Any:
        def load() -> tuple[np.ndarray, np.ndarray]:
            if self.features[camera]["dtype"] == "video":
                frames = self._video_frames(ep, camera, length)
            else:
                frames = self._image_frames(ep, camera)
            return frames, np.arange(len(frames))

        return load

    def _video_frames(self, ep: dict[str, Any], camera: str, length: int) -> np.ndarray:
        av = require("av", "data", purpose="decoding LeRobot videos")
        template = str(
            self.info.get("video_path") or "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
        )
        rel = template.format(
            video_key=camera,
            chunk_index=int(ep[f"videos/{camera}/chunk_index"]),
            file_index=int(ep[f"videos/{camera}/file_index"]),
        )
        path = (self.path / rel).resolve()
        if self.path.resolve() not in path.parents:
            raise TrajectoryError(f"video path {rel!r} leaves the dataset folder")
        start = float(ep[f"videos/{camera}/from_timestamp"])
        end = float(ep[f"videos/{camera}/to_timestamp"])
        tol = 0.5 / self.fps
        out: list[np.ndarray] = []
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if start > 0 and stream.time_base:
                container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base) if frame.pts is not None else float(frame.time or 0)
                if t < start - tol:
                    continue
                if t >= end - tol or len(out) >= length:
                    break
                out.append(frame.to_ndarray(format="rgb24"))
        if not out:
            raise TrajectoryError(f"no frames decoded from {rel} between {start} s and {end} s")
        return np.stack(out)

    def _image_frames(self, ep: dict[str, Any], camera: str) -> np.ndarray:
        import io

        image = require("PIL.Image", "data", purpose="decoding LeRobot images")
        index = int(ep["episode_index"])
        out: list[tuple[int, np.ndarray]] = []
        for path in self._data_files():
            table = self.pq.read_table(path, columns=["episode_index", "frame_index", camera])
            mine = np.flatnonzero(np.asarray(table.column("episode_index").to_numpy()) == index)
            if not len(mine):
                continue
            cells = table.take(mine).to_pydict()
            for k, cell in zip(cells["frame_index"], cells[camera], strict=True):
                data = cell.get("bytes") if isinstance(cell, dict) else None
                if not data:
                    raise TrajectoryError(f"image {camera} of frame {k} has no embedded bytes")
                out.append((int(k), np.asarray(image.open(io.BytesIO(data)).convert("RGB"))))
        out.sort(key=lambda x: x[0])
        return np.stack([img for _, img in out])

    def write_pruned(self, out: Path, masked: dict[str, np.ndarray], dropped: set[str]) -> None:
        """A copy in the same layout: the data files rewritten with the reasoning column emptied ("") at the masked
        steps and in the episodes that failed (an episode cannot be removed without renumbering the dataset), every
        other file linked or copied."""
        pa = require("pyarrow", "data")
        pc = require("pyarrow.compute", "data")
        column = self.fields.reasoning
        by_index = {int(e["episode_index"]): self.episode_id(int(e["episode_index"])) for e in self.episodes}
        data_files = set(self._data_files())
        for src in sorted(p for p in self.path.rglob("*") if p.is_file()):
            rel = src.relative_to(self.path)
            if rel.parts and rel.parts[0] == "pruning":
                continue
            dst = out / rel
            if src not in data_files:
                if rel.parts[0] == "meta":
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes(src.read_bytes())
                else:
                    link_or_copy(src, dst)
                continue
            table = self.pq.read_table(src)
            episode = table.column("episode_index").to_pylist()
            frame = table.column("frame_index").to_pylist()
            mask_sets = {eid: set(steps.tolist()) for eid, steps in masked.items()}
            hide = [
                by_index.get(int(e), "") in dropped or int(k) in mask_sets.get(by_index.get(int(e), ""), ())
                for e, k in zip(episode, frame, strict=True)
            ]
            i = table.schema.get_field_index(column)
            emptied = pc.if_else(pa.array(hide), pa.scalar("", table.schema.field(i).type), table.column(i))
            dst.parent.mkdir(parents=True, exist_ok=True)
            self.pq.write_table(table.set_column(i, table.schema.field(i), emptied), dst)
