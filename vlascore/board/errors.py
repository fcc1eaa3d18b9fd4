"""The two ways the board's commands fail: a board folder that cannot be used, and a bundle that is refused.

Both are StoreErrors, so a caller that already reports store problems (`error: ...`, no traceback) reports
these the same way.
"""

from __future__ import annotations

from vlascore.store import StoreError


class BoardError(StoreError):
    """A board folder (or a built site) that is missing, unreadable or not what the command expects."""


class Rejected(BoardError):
    """A submission bundle the board refuses: `reason` names the problem, `fix` (when there is one) what to do.

    A rejection leaves the board exactly as it was (only the add's own staging folder is created and removed).
    """

    def __init__(self, reason: str, fix: str | None = None) -> None:
        self.reason = reason
        self.fix = fix
        super().__init__(f"{reason}; {fix}" if fix else reason)
