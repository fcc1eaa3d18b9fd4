"""Helpers for the serving tests: an in-process server on an ephemeral port, and `vlascore serve` child processes
(optionally with the test adapters of tests/conftest.py registered) whose URL is read from their first line."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vlascore.serving.server import PolicyServer

TESTS = Path(__file__).resolve().parents[1]
TIMING_COLUMNS = ["started_at", "duration_s", "policy_time_s", "sim_time_s"]
URL = re.compile(r" at (ws://127\.0\.0\.1:(\d+)) ")
# `vlascore` with tests/conftest.py imported first, so the child can serve toy-expert, flaky, ...
WITH_TEST_ADAPTERS = (
    f"import sys; sys.path.insert(0, {str(TESTS)!r}); import conftest; from vlascore.cli import main; main()"
)


@contextmanager
def served(model: str, config: dict[str, Any] | None = None, **options: Any) -> Iterator[PolicyServer]:
    """A PolicyServer on a free port, serving from a thread for the duration of the block."""
    server = PolicyServer(model, config, port=options.pop("port", 0), **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(10)


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """`vlascore serve ARGS` in a child process; `url` and `port` parsed from the line it prints first."""

    def __init__(
        self, *args: str, test_adapters: bool = False, ignore_sigint: bool = False, env: dict[str, str] | None = None
    ) -> None:
        launcher = ["-c", WITH_TEST_ADAPTERS] if test_adapters else ["-m", "vlascore.cli"]
        self.proc = subprocess.Popen(
            [sys.executable, *launcher, "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "250", **(env or {})},
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the server listens (or dies)
        match = URL.search(line)
        if not match:
            self.proc.kill()
            _, errors = self.proc.communicate(timeout=10)
            raise AssertionError(f"vlascore serve printed {line!r}; stderr: {errors}")
        self.url, self.port = match.group(1), int(match.group(2))

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no closing handshake."""
        self.proc.kill()
        self.proc.communicate(timeout=10)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, errors = self.proc.communicate(timeout=20)
        return self.proc.returncode, out, errors

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.kill()
