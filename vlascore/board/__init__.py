"""Submissions and the HTML leaderboard (docs/leaderboard.md).

- bundle.py: `vlascore submit` packs a run, its results and a manifest into a zip (the Submission record).
- qa.py: the QA results (run/qa/) a bundle carries, and the board's checks of their figures.
- archive.py: safe extraction of an untrusted zip (names, links, limits, lying headers).
- validate.py: the checks a bundle passes on its way onto a board (manifest, schemas, suite, judges,
  coverage, honesty).
- board.py: a board folder (config, add, list, rejudge, verify).
- site.py / serve.py: the static site built from the board's JSON data, and a small HTTP server for it.
"""

from vlascore.board.archive import Limits
from vlascore.board.board import Board, BoardConfig, BoardRecord, RejudgeOutcome
from vlascore.board.bundle import Manifest, Submission, pack
from vlascore.board.errors import BoardError, Rejected
from vlascore.board.site import SiteData, build_site

__all__ = [
    "Board",
    "BoardConfig",
    "BoardError",
    "BoardRecord",
    "Limits",
    "Manifest",
    "Rejected",
    "RejudgeOutcome",
    "SiteData",
    "Submission",
    "build_site",
    "pack",
]
