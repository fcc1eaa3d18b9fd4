"""The client end of a policy connection, shared by the remote adapter's protocols (vlascore, openpi, vla-eval).

One request in flight at a time, each with a timeout; connecting retries with a doubling backoff; every error
names the URL and says what to do. After a timeout the connection is dropped, not kept: a late reply would
otherwise be read as the answer to the next request.

Who speaks first differs: vlascore and openpi servers greet the client, a vla-eval server waits for the client's
hello. A client that expects a greeting and hears nothing for PROBE_AFTER_S sends vla-eval's hello, so that a
vla-eval server identifies itself (and the error can name the option to use) instead of both sides waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, TypeVar

from vlascore.extras import require
from vlascore.serving.wire import MAX_MESSAGE_BYTES

T = TypeVar("T")
TRY_AGAIN_LATER = 1013  # the close code of a server that refuses a connection because it is busy
PROBE_AFTER_S = 1.0
"""How long a client that expects the server to speak first waits before probing it with vla-eval's hello."""
START_HINT = "start one with `vlascore serve --model NAME --port PORT` (in the model's environment), or fix -M url="


class ServerUnreachableError(ConnectionError, ValueError):
    """No policy server answered at the URL, even after the retries.

    Also a ValueError: `vlascore run` reports set-up ValueErrors as a one-line message, and at start-up a URL where
    nothing listens is a bad `-M url`.
    """


class ServerRefusedError(ConnectionError, ValueError):
    """The server answered but refused this client: busy (as many clients as --max-clients), or unable to build an
    adapter instance for it. A ValueError for the same reason as ServerUnreachableError."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        """Whether trying again later may succeed (a busy server)."""


class ConnectionLostError(ConnectionError):
    """The connection dropped while a request was in flight (server stopped or killed, network gone)."""


class CallTimeoutError(TimeoutError):
    """The server did not answer a request within the timeout."""


class RemotePolicyError(RuntimeError):
    """The served policy raised; the message carries the server-side exception type and text."""

    def __init__(self, message: str, remote_type: str = "", remote_traceback: str = "") -> None:
        super().__init__(message)
        self.remote_type = remote_type
        """Exception class name on the server."""
        self.remote_traceback = remote_traceback
        """Server-side traceback (for debugging; not part of the message)."""


def websockets_module(name: str = "websockets") -> Any:
    return require(name, "serve", "`vlascore serve` and the remote adapter")


def describe(exc: BaseException) -> str:
    """A short human reason for a connection failure."""
    closed = websockets_module("websockets.exceptions").ConnectionClosed
    if isinstance(exc, closed):
        frame = exc.rcvd
        if frame is None:
            return "the connection closed without a closing handshake (server stopped or killed?)"
        return f"the server closed the connection (code {frame.code}{': ' + frame.reason if frame.reason else ''})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    text = getattr(exc, "strerror", None) or str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Link:
    """A WebSocket to one policy server, opened and re-opened on demand."""

    def __init__(
        self, url: str, timeout: float, retries: int, backoff: float = 0.5, api_key: str | None = None
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"-M timeout must be > 0 seconds, got {timeout}")
        if retries < 0:
            raise ValueError(f"-M retries must be >= 0, got {retries}")
        self.url = url
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.connects = 0
        """Successful connections so far (1 + reconnections)."""
        self._headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None  # openpi-client's header
        self._ws: Any = None
        self._stack = ExitStack()
        self._stale = 0  # replies still due to a probe the server answered after its greeting

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def open(
        self, handshake: Callable[[bytes | str], T], greeting: bytes | None = None, probe: bytes | None = None
    ) -> T:
        """Connect (1 + retries attempts, the wait doubling from `backoff`), send `greeting` if the protocol has the
        client speak first, read the server's first message and return `handshake(first_message)`. With `probe`, a
        server silent for PROBE_AFTER_S is sent that frame (see the module docstring). A retryable
        ServerRefusedError from `handshake` (busy) counts as a failed attempt; any other exception gives up at once
        (the server answered, but wrongly)."""
        ws_client = websockets_module("websockets.sync.client")
        ws_errors = websockets_module("websockets.exceptions")
        if not self.url.startswith(("ws://", "wss://")):
            raise ValueError(
                f"-M url={self.url!r} is not a WebSocket URL: use ws://HOST:PORT (the address `vlascore serve` prints)"
            )
        self.close()
        last: BaseException | None = None
        busy = False
        for attempt in range(1 + self.retries):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            ws, stack = None, ExitStack()
            try:
                # Entered as a context manager (closed by the stack): websockets >= 17.1 deprecates a bare connect()
                # and later versions return a context manager from it, which this works with as well.
                ws = stack.enter_context(
                    ws_client.connect(
                        self.url,
                        open_timeout=self.timeout,
                        close_timeout=1,
                        compression=None,
                        max_size=MAX_MESSAGE_BYTES,
                        additional_headers=self._headers,
                    )
                )
                if greeting is not None:
                    ws.send(greeting)
                first, probed = self._first(ws, probe, greeting is not None)
                kept = handshake(first)
            except ws_errors.InvalidURI as exc:
                raise ValueError(f"-M url={self.url!r} is not a valid WebSocket URL: {exc}") from None
            except ws_errors.InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    _quietly_close(stack)
                    fix = (
                        "wrong API key: fix -M api_key="
                        if self._headers
                        else "it wants an API key: pass -M api_key=KEY"
                    )
                    raise ServerRefusedError(
                        f"the policy server at {self.url} refused the connection with HTTP {status}: {fix}"
                    ) from None
                last, busy = exc, False
            except ServerRefusedError as exc:
                if not exc.retryable:
                    _quietly_close(stack)
                    raise
                last, busy = exc, True
            except ws_errors.ConnectionClosed as exc:
                frame = exc.rcvd
                busy = frame is not None and frame.code == TRY_AGAIN_LATER  # refused before we read why
                last = ServerRefusedError(frame.reason, retryable=True) if busy and frame is not None else exc
            except (OSError, ws_errors.InvalidHandshake) as exc:  # TimeoutError is an OSError
                last, busy = exc, False
            except BaseException:
                _quietly_close(stack)
                raise
            else:
                self._ws, self._stack = ws, stack
                self._stale = int(probed)
                self.connects += 1
                return kept
            _quietly_close(stack)
        tries = f"{1 + self.retries} attempt(s)"
        if busy:
            raise ServerRefusedError(
                f"the policy server at {self.url} is still busy after {tries}: {last}", retryable=True
            )
        raise ServerUnreachableError(
            f"cannot reach a policy server at {self.url} after {tries}: "
            f"{describe(last) if last else 'no attempt made'}; {START_HINT}"
        )

    def _first(self, ws: Any, probe: bytes | None, greeted: bool) -> tuple[bytes | str, bool]:
        """The server's first frame, and whether a probe was sent to get it. A server that says nothing within the
        timeout fails the handshake at once (a ProtocolError, not retried): it is up, but not what -M protocol says."""
        start = time.monotonic()
        if probe is not None:
            try:
                return ws.recv(timeout=min(PROBE_AFTER_S, self.timeout)), False
            except TimeoutError:
                ws.send(probe)
        try:
            return ws.recv(timeout=max(self.timeout - (time.monotonic() - start), 0.01)), probe is not None
        except TimeoutError:
            pass
        from vlascore.serving.wire import ProtocolError

        if greeted:
            raise ProtocolError(
                f"the server at {self.url} accepted the connection but did not answer vla-eval's hello within "
                f"{self.timeout:g} s: is it a vla-eval model server? (a slow one: raise -M timeout=SECONDS)"
            ) from None
        raise ProtocolError(
            f"the server at {self.url} accepted the connection but sent nothing within {self.timeout:g} s, nor "
            "answered vla-eval's hello: is it a policy server? (a `vlascore serve` still loading another copy of "
            "its model for this client: raise -M timeout=SECONDS)"
        ) from None

    def request(self, frame: bytes, what: str) -> bytes | str:
        """Send one frame and return the reply frame (bytes, or text from servers that report errors as text)."""
        ws_errors = websockets_module("websockets.exceptions")
        if self._ws is None:
            raise ConnectionLostError(f"not connected to the policy server at {self.url}")
        try:
            self._ws.send(frame)
            while self._stale:  # the answer to a probe, sent before the server greeted us: not ours
                self._ws.recv(timeout=self.timeout)
                self._stale -= 1
            reply: bytes | str = self._ws.recv(timeout=self.timeout)
            return reply
        except TimeoutError:
            self.close()
            raise CallTimeoutError(
                f"the policy server at {self.url} did not answer {what} within {self.timeout:g} s, so the "
                "connection was closed (a slow model or a busy GPU? raise -M timeout=SECONDS)"
            ) from None
        except (ws_errors.ConnectionClosed, OSError) as exc:
            self.close()
            raise ConnectionLostError(
                f"lost the connection to the policy server at {self.url} during {what}: {describe(exc)}"
            ) from None

    def send(self, frame: bytes, what: str) -> None:
        """Send one frame that has no reply (vla-eval's episode_start and episode_end)."""
        ws_errors = websockets_module("websockets.exceptions")
        if self._ws is None:
            raise ConnectionLostError(f"not connected to the policy server at {self.url}")
        try:
            self._ws.send(frame)
        except (ws_errors.ConnectionClosed, OSError) as exc:
            self.close()
            raise ConnectionLostError(
                f"lost the connection to the policy server at {self.url} during {what}: {describe(exc)}"
            ) from None

    def close(self) -> None:
        self._ws = None
        self._stale = 0
        _quietly_close(self._stack)


def _quietly_close(stack: ExitStack) -> None:
    try:
        stack.close()
    except Exception:  # noqa: BLE001 - closing a broken socket may fail in many ways; it is gone either way
        pass
