"""Real-browser fixtures: Debian's chromium driven by Playwright (no browser download).

`page` opens a fresh context that records console errors, uncaught page errors and dialogs (an `alert()` from
injected markup would show up there), and refuses every request that is not file:// or data: (so a page
that needs the network fails its test instead of passing on a machine that has one). Without chromium the
tests are skipped locally and fail under CI (`CI` set), where scripts/setup.sh must have installed it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return os.environ.get("VLASCORE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageLog:
    """What a page did that a test may assert on."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [
            *self.console_errors,
            *self.page_errors,
            *(f"dialog: {d}" for d in self.dialogs),
            *(f"network request: {u}" for u in self.blocked),
        ]


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must run the browser tests (bash scripts/setup.sh installs chromium)")
    pytest.skip(why)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    exe = chromium_path()
    if exe is None:
        _unavailable("no chromium on PATH (Debian: apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page whose `.log` (PageLog) records errors, dialogs and refused requests."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    log = PageLog()

    def route(r: Any) -> None:
        if r.request.url.startswith(("file:", "data:", "blob:")):
            r.continue_()
        else:
            log.blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    p = context.new_page()
    p.on("console", lambda m: log.console_errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: log.page_errors.append(str(e)))

    def on_dialog(d: Any) -> None:
        log.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    p.on("dialog", on_dialog)
    p.log = log
    try:
        yield p
    finally:
        context.close()
