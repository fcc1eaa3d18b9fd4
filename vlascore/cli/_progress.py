"""Progress of `vlascore run`: a rich bar on a terminal (throughput and busy workers included); anywhere else (SLURM,
CI, nohup, a pipe) one line per finished episode and a summary line every `summary_every` seconds, so a batch log
shows the run going and its ETA long before the end."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


def clock(seconds: float) -> str:
    """1h02m03s / 4m05s / 6s."""
    s = int(max(seconds, 0))
    h, m, s = s // 3600, s % 3600 // 60, s % 60
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class _Live(ProgressColumn):
    """A column computed at each refresh (throughput, busy workers), not only when an episode ends."""

    def __init__(self, render: Callable[[], str]) -> None:
        super().__init__()
        self._render = render

    def render(self, task: Any) -> Text:
        return Text(self._render(), style="cyan")


class RunProgress:
    """What `vlascore run` shows while it runs (see the module docstring)."""

    def __init__(
        self,
        title: str,
        console: Console,
        enabled: bool = True,
        workers: int = 1,
        busy: Callable[[], int] | None = None,
        summary_every: float = 60.0,
    ) -> None:
        self.title, self.console, self.enabled = title, console, enabled
        self.workers, self.busy, self.summary_every = workers, busy, summary_every
        self.lines = enabled and not console.is_terminal
        self.todo = self.done = self.errored = self.successes = 0
        self._t0 = time.perf_counter()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        columns: list[ProgressColumn] = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ok {task.fields[ok]}  errored {task.fields[errored]}  success {task.fields[succ]}"),
            _Live(self._live),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ]
        self.bar = Progress(*columns, console=console, disable=not enabled or self.lines)
        self._bar_id = self.bar.add_task(title, total=None, ok=0, errored=0, succ=0)

    def _rate(self) -> float:
        """Episodes per minute so far."""
        elapsed = time.perf_counter() - self._t0
        return 60.0 * self.done / elapsed if elapsed > 0 else 0.0

    def _live(self) -> str:
        text = f"{self._rate():.1f} ep/min"
        if self.busy is not None:
            text += f"  busy {self.busy()}/{self.workers}"
        return text

    def start(self, todo: int, skipped: int) -> None:
        """Shown once setup (suite, adapter, conventions, first envs) has succeeded."""
        self.todo, self._t0 = todo, time.perf_counter()
        if skipped:
            self.console.print(f"resuming: {skipped} finished episode(s) skipped, {todo} to run", highlight=False)
        if self.lines:
            self.console.print(f"{escape(self.title)}: {todo} episode(s) to run", highlight=False, soft_wrap=True)
            self._ticker = threading.Thread(target=self._tick, name="vlascore-progress", daemon=True)
            self._ticker.start()
        else:
            self.bar.update(self._bar_id, total=todo)
            self.bar.start()

    def episode(self, ep: Any) -> None:
        """One finished episode (an EpisodeRecord)."""
        self.done += 1
        self.errored += ep.status == "errored"
        self.successes += int(ep.success)
        if self.lines:
            status = "errored" if ep.status == "errored" else ("success" if ep.success else "failure")
            line = (
                f"[{self.done}/{self.todo}] {ep.episode_id} task={ep.task} seed={ep.seed} {status} "
                f"steps={ep.num_steps} {ep.duration_s:.1f}s worker={ep.worker or 'driver'}"
            )
            if ep.status == "errored":
                line += f" reason={ep.failure_reason}"
            self.console.print(escape(line), highlight=False, soft_wrap=True)
            return
        if ep.status == "errored":
            self.bar.console.print(
                f"[red]errored[/] {escape(ep.episode_id)}: {escape(str(ep.failure_reason))}", highlight=False
            )
        self.bar.update(
            self._bar_id,
            advance=1,
            description=f"{self.title.split(' on ')[0]} {ep.task}",
            ok=self.done - self.errored,
            errored=self.errored,
            succ=self.successes,
        )

    def summary(self) -> str:
        elapsed = time.perf_counter() - self._t0
        rate = self._rate()
        left = self.todo - self.done
        eta = clock(60.0 * left / rate) if rate > 0 else "unknown"
        busy = f"; busy workers {self.busy()}/{self.workers}" if self.busy is not None else ""
        return (
            f"progress {self.done}/{self.todo} episodes: {self.successes} success, {self.errored} errored; "
            f"{rate:.1f} episodes/min{busy}; elapsed {clock(elapsed)}, ETA {eta}"
        )

    def _tick(self) -> None:
        while not self._stop.wait(self.summary_every):
            self.console.print(escape(self.summary()), highlight=False, soft_wrap=True)

    def stop(self) -> None:
        """End the display (idempotent): the last summary line, or the bar's final state."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(5)
            self._ticker = None
            if self.todo:
                self.console.print(escape(self.summary()), highlight=False, soft_wrap=True)
        self.bar.stop()
