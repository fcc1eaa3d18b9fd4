"""The exporter contract and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vlascore.registry import Registry

if TYPE_CHECKING:
    from vlascore.rundata import RunData

Progress = Callable[[int, int, str], None]
"""(done, total, what): called as an exporter works through a run."""


class ExportError(RuntimeError):
    """An export that cannot be done (a missing extra, an unusable output folder); the message says what to do."""


class Exporter(ABC):
    """Writes one run in one format into an output folder."""

    name: ClassVar[str] = ""
    extras: ClassVar[tuple[str, ...]] = ()
    """pip extras of vlascore it needs (shown in errors)."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def export(self, run: RunData, out: Path, episodes: list[str] | None, progress: Progress | None) -> list[Path]:
        """Write `run` (only `episodes` when given) under `out`; return the files written."""


EXPORTERS: Registry[type[Exporter]] = Registry("export format", "vlascore.exporters", base=Exporter)
