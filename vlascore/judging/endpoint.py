"""Where model calls go: the settings of an OpenAI-compatible endpoint, stated once, and its lazily built client.

The VLM judge, the MM-Vet grader and the board's rejudge all take one `Endpoint`, built once from the command line's
options (`vlascore.cli._common.endpoint`), so its defaults live here and nowhere else.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class JudgeAbort(RuntimeError):
    """A failure that would repeat on every request (no key, bad key, unknown model, unreachable): stop the pass."""


class RequestTimeout(RuntimeError):
    """A request that did not complete (connect, send, wait, read the whole reply) within the endpoint's timeout."""


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible chat endpoint and how to call it. (A dataclass, not a pydantic model: the command line
    builds one for its option defaults, and `vlascore --help` should not pay for importing pydantic.)"""

    base_url: str | None = None
    """Endpoint URL (vLLM, llama.cpp, Ollama, transformers serve...); None: OpenAI's API."""
    model: str | None = None
    """Model name the endpoint serves (`--judge-model`)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (local servers need none)."""
    timeout_s: float = 120.0
    """Seconds a request may take in all (connecting, sending, waiting, reading the whole reply; not per read)
    before it is abandoned and retried."""
    max_retries: int = 5
    """Retries on 408, 409, 429, 5xx, timeouts and dropped connections (exponential backoff, honouring the server's
    Retry-After); other 4xx replies are not retried."""
    concurrency: int = 8
    """Requests in flight at once."""

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"the request timeout must be positive, got {self.timeout_s}")
        if self.max_retries < 0 or self.concurrency < 1:
            raise ValueError(f"need max_retries >= 0 and concurrency >= 1, got {self.max_retries}, {self.concurrency}")

    @property
    def where(self) -> str:
        """The endpoint, for messages."""
        return self.base_url or "the OpenAI API"


class LazyClient:
    """`openai` clients for an endpoint, built on first use; thread-safe. Without an API key the endpoint needs a
    base URL (local servers ignore the key, but the client requires one).

    `get()` is one shared client that retries by itself; `call(fn)` runs one request on a client of its own (no
    retries: the caller decides) under a total deadline, which a per-read timeout is not: an endpoint that trickles
    a byte at a time would never time out."""

    def __init__(self, endpoint: Endpoint, needs: str) -> None:
        key = os.environ.get(endpoint.api_key_env)
        if not key:
            if endpoint.base_url is None:
                raise JudgeAbort(
                    f"{needs}: set ${endpoint.api_key_env} (or --api-key-env NAME), or point --base-url at a local "
                    "OpenAI-compatible server (vLLM, llama.cpp, Ollama), which needs none"
                )
            key = "not-needed"
        self.endpoint = endpoint
        self._args: dict[str, Any] = {
            "api_key": key,
            "base_url": endpoint.base_url,
            "timeout": endpoint.timeout_s,
            "max_retries": endpoint.max_retries,
        }
        self._client: Any = None
        self._idle: list[Any] = []
        """Clients of `call` that finished their last request in time (reused: building one takes ~20 ms)."""
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._client is None:
                from openai import OpenAI

                self._client = OpenAI(**self._args)
        return self._client

    def close(self) -> None:
        """Close the clients (and their kept-alive connections); a later request builds new ones."""
        with self._lock:
            clients, self._idle = [*self._idle, *([self._client] if self._client is not None else [])], []
            self._client = None
        for client in clients:
            client.close()

    def call(self, fn: Callable[[Any], T]) -> T:
        """`fn(client)` within the endpoint's timeout, or RequestTimeout. A request past its deadline is abandoned
        and its client closed (its connection with it, which ends the abandoned read)."""
        with self._lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            from openai import OpenAI

            client = OpenAI(**{**self._args, "max_retries": 0})
        outcome: dict[str, Any] = {}
        finished = threading.Event()

        def attempt() -> None:
            try:
                outcome["value"] = fn(client)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                outcome["error"] = exc
            finally:
                finished.set()

        threading.Thread(target=attempt, name="endpoint-request", daemon=True).start()
        if not finished.wait(self.endpoint.timeout_s):
            client.close()
            raise RequestTimeout(f"no complete reply within {self.endpoint.timeout_s:g} s")
        with self._lock:
            self._idle.append(client)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]
