"""The two ways the board's commands fail: a board folder that cannot be used, and a bundle that is refused.

Both are StoreErrors, so a caller that already reports store problems (`error: ...`, no traceback) reports
these the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from vlascore.store import StoreError
from vlascore.versioned import NewerRecordError, RecordError, read_record

M = TypeVar("M", bound=BaseModel)
_SHOWN = 5
"""Items a message lists before `(+N more)`."""
BUNDLE_FIX = "re-create the bundle with `vlascore submit RUN -o bundle.zip`"


class BoardError(StoreError):
    """A board folder (or a built site) that is missing, unreadable or not what the command expects."""


class Rejected(BoardError):
    """A submission bundle the board refuses: `reason` names the problem, `fix` (when there is one) what to do.

    A rejection leaves the board exactly as it was (only the add's own staging folder is created and removed).
    """

    def __init__(self, reason: str, fix: str | None = None) -> None:
        self.reason = " ".join(reason.split())  # one line, whatever a quoted error message held
        self.fix = fix
        super().__init__(f"{self.reason}; {fix}" if fix else self.reason)


def read_bundled(path: Path, model: type[M], what: str) -> M:
    """A versioned file of an untrusted bundle, through the record reader; any problem is a Rejected."""
    try:
        return read_record(path, model, what)
    except NewerRecordError as exc:
        raise Rejected(str(exc), "upgrade vlascore on the board") from None
    except RecordError as exc:
        raise Rejected(str(exc), BUNDLE_FIX) from None


def shown(items: list[str]) -> str:
    """Up to five items, comma-separated, and how many more there are."""
    return ", ".join(items[:_SHOWN]) + (f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")
