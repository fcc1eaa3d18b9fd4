"""The QA benchmarks (tasks/qa/benchmarks.yaml) and where their data comes from.

A benchmark's data is the Hugging Face dataset lmms-eval names (downloaded on first use, on a machine with
internet), or a local copy given with `vlascore qa --data NAME=PATH` / `--data-dir DIR`:

- a folder or file of parquet files (a `huggingface-cli download --repo-type dataset` snapshot, or files
  written with `Dataset.to_parquet`); with several configs or splits, files are picked by the config's
  folder name and the split's file-name prefix;
- a folder written by `DatasetDict.save_to_disk` (it holds dataset_dict.json);
- another hub id.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from vlascore.paths import data_dir, load_yaml
from vlascore.registry import did_you_mean

BENCHMARKS_FILE = "qa/benchmarks.yaml"
"""Relative to the tasks/ data folder."""
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FINGERPRINT_BYTES = 1 << 20


class Benchmark(BaseModel):
    """One QA benchmark: the lmms-eval task it reuses and how its score is read."""

    model_config = ConfigDict(extra="forbid")
    name: str
    title: str
    lmms_task: str
    """The lmms-eval task whose config vlascore's overlay includes."""
    metric: str
    """The lmms-eval metric that is the benchmark's headline score."""
    score: Literal["fraction", "percent", "per_1000"]
    """fraction: x100; percent: as it is; per_1000: correct answers per 1000 questions."""
    grader: Literal["lmms", "judge"] = "lmms"
    """judge: vlascore grades the answers with its OpenAI-compatible judge client."""
    aggregation: str | None = None
    """Replaces the metric's aggregation (a dotted function path)."""
    sample_field: str | None = None
    """The per-sample score inside the metric's per-sample dict."""
    sample_scalar: bool = False
    """The metric's per-sample value is the per-sample score."""
    pooled: bool = False
    """The score is the mean per-sample score (x 100, or x 1000 for per_1000): checked against lmms-eval's value."""
    mm_divisor: float = 1.0
    """Dividing the score by this puts it on MM's 0-100 scale."""
    hub: str
    config: str | None = None
    split: str
    columns: list[str] = []
    """Columns its scoring reads (checked on local copies before anything runs)."""
    kind: str = ""

    @property
    def unit(self) -> str:
        return "/1000" if self.score == "per_1000" else "%"

    def pooled_score(self, scores: list[float]) -> float:
        """The score from per-question scores (pooled benchmarks)."""
        return (1000.0 if self.score == "per_1000" else 100.0) * sum(scores) / len(scores)

    @property
    def task_name(self) -> str:
        """The overlay task's name in lmms-eval."""
        return f"vlascore_{self.name}"


class BenchmarkSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: int
    benchmarks: dict[str, Benchmark]


@lru_cache(maxsize=1)
def load_benchmarks() -> BenchmarkSet:
    raw = load_yaml((data_dir("tasks") / BENCHMARKS_FILE).read_text())
    raw["benchmarks"] = {k: {"name": k, **v} for k, v in raw["benchmarks"].items()}
    return BenchmarkSet.model_validate(raw)


def resolve(names: str | list[str] | None) -> list[Benchmark]:
    """`mmmu,textvqa` / `all` / None (all) -> benchmarks, in the file's order; unknown names raise ValueError."""
    known = load_benchmarks().benchmarks
    if names is None or names == "all" or names == ["all"]:
        return list(known.values())
    wanted = [n.strip().lower() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        hints = "".join(did_you_mean(n, known) for n in unknown)
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}.{hints} Known: {', '.join(known)} (or all)")
    return [known[n] for n in dict.fromkeys(wanted)]


class DataSource(BaseModel):
    """Where one benchmark's questions come from, as the overlay task gives it to lmms-eval."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["hub", "parquet", "disk"]
    path: str
    """Hub id, or the local folder/file given."""
    config: str | None = None
    split: str
    files: list[str] = []
    """parquet: the files read (absolute paths)."""
    fingerprint: str | None = None
    """Local data: sha256 over each file's relative path, size and first MiB (changes when the data does)."""

    def describe(self) -> str:
        if self.kind == "hub":
            return f"hub {self.path}" + (f" ({self.config})" if self.config else "") + f", split {self.split}"
        return f"{self.kind} {self.path} ({len(self.files) or 'all'} file(s)), split {self.split}"


def _fingerprint(root: Path, files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(root) if f != root else f.name}\0{f.stat().st_size}\0".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(_FINGERPRINT_BYTES))
    return h.hexdigest()


def _pick_parquet(root: Path, config: str | None, split: str) -> list[Path]:
    files = [root] if root.is_file() else sorted(root.rglob("*.parquet"))
    if config and (narrowed := [f for f in files if config in f.relative_to(root).parts[:-1]]):
        files = narrowed
    by_split = [
        f for f in files if f.name.startswith(f"{split}-") or f.name == f"{split}.parquet" or f.parent.name == split
    ]
    return by_split or files


def _columns(source: DataSource) -> list[str] | None:
    """Column names of a local copy (None when they cannot be read without loading it)."""
    if source.kind == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            return None
        return list(pq.read_schema(source.files[0]).names)
    info = Path(source.path) / source.split / "dataset_info.json"
    if source.kind == "disk" and info.is_file():
        return list(json.loads(info.read_text()).get("features", {}))
    return None


def check_columns(bench: Benchmark, source: DataSource) -> None:
    """ValueError naming the benchmark when a local copy lacks a column its scoring reads."""
    have = _columns(source)
    missing = [c for c in bench.columns if have is not None and c not in have]
    if missing:
        raise ValueError(
            f"{bench.name}: the data at {source.path} lacks the column(s) {', '.join(missing)} that "
            f"{bench.title}'s scoring reads (it has {', '.join(have or [])}); lmms-eval would score "
            "such questions as wrong instead of failing"
        )


def data_source(bench: Benchmark, where: str | Path | None) -> DataSource:
    """The DataSource for `bench` from a --data value (None: the hub dataset lmms-eval names)."""
    if where is None:
        return DataSource(kind="hub", path=bench.hub, config=bench.config, split=bench.split)
    path = Path(where).expanduser()
    if not path.exists():
        if _HUB_ID.match(str(where)) and not str(where).startswith("."):
            return DataSource(kind="hub", path=str(where), config=bench.config, split=bench.split)
        raise ValueError(
            f"{bench.name}: data path {where} does not exist (give a folder of parquet files, a "
            "save_to_disk folder, or a hub id)"
        )
    path = path.resolve()
    if path.is_dir() and (path / "dataset_dict.json").is_file():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        source = DataSource(kind="disk", path=str(path), split=bench.split, fingerprint=_fingerprint(path, files))
        check_columns(bench, source)
        return source
    parquet = _pick_parquet(path, bench.config, bench.split)
    if not parquet or any(p.suffix != ".parquet" for p in parquet):
        raise ValueError(
            f"{bench.name}: {path} holds no parquet files and no dataset_dict.json (expected a "
            "hub snapshot, files written by Dataset.to_parquet, or a save_to_disk folder)"
        )
    source = DataSource(
        kind="parquet",
        path=str(path),
        config=bench.config,
        split=bench.split,
        files=[str(p) for p in parquet],
        fingerprint=_fingerprint(path if path.is_dir() else path.parent, parquet),
    )
    check_columns(bench, source)
    return source
