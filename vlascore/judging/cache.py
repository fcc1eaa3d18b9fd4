"""Content-addressed judgement cache: key = sha256(judge version, judge model, request hash).

One small JSON file per verdict under <cache dir>/<key[:2]>/<key>.json, written atomically, so concurrent
threads and processes can share a cache and an interrupted pass resumes where it stopped. Only valid
verdicts are cached; failed judgements are retried on the next pass.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from vlascore.store import atomic_write_text

CACHE_ENV = "VLASCORE_CACHE_DIR"


def default_cache_dir() -> Path:
    """$VLASCORE_CACHE_DIR, else $XDG_CACHE_HOME/vlascore/judgements, else ~/.cache/vlascore/judgements."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "vlascore" / "judgements"


def cache_key(judge_version: str, judge_model: str, request_hash: str) -> str:
    return hashlib.sha256(f"{judge_version}\0{judge_model}\0{request_hash}".encode()).hexdigest()


class JudgeCache:
    """Verdict payloads by key; `None` directory disables it."""

    def __init__(self, directory: str | Path | None) -> None:
        self.dir = Path(directory) if directory is not None else None
        self._root = os.fspath(self.dir) if self.dir is not None else ""

    def _path(self, key: str) -> str:
        return os.path.join(self._root, key[:2], f"{key}.json")  # str paths: a re-judge makes thousands

    def get(self, key: str) -> dict[str, Any] | None:
        if self.dir is None:
            return None
        try:
            with open(self._path(key)) as fh:
                return json.loads(fh.read())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            return None  # a damaged entry is a miss; the next valid verdict overwrites it

    def put(self, key: str, payload: dict[str, Any]) -> None:
        if self.dir is not None:
            atomic_write_text(Path(self._path(key)), json.dumps(payload))
