"""Findings of the conformance checkers (`vlascore adapter check`, the backend checker): small named checks, each
ok, warn, fail or skip with a detail, as Gymnasium's env checker reports them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass
class Check:
    name: str
    status: Status
    detail: str


class Findings:
    """The named checks of one report (an adapter's or a backend's on one task); `problems` are the failed ones."""

    checks: list[Check]

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def add(self, name: str, status: Status, detail: str) -> None:
        self.checks.append(Check(name, status, detail))
