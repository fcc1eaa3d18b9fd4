"""The server behind `vlascore serve`: one registered adapter over WebSocket, speaking one protocol: vlascore's own
(wire.py, the default), openpi's (openpi_server.py) or vla-eval's (vla_eval_server.py). The protocol's Speaker
converses with each client; the pool of adapter instances, the batching queue, the client limit and the API key
below are the same for all of them.

Each connected client gets an adapter instance of its own, so two clients never share episode state. Instances are
pooled: the first is built before the server listens (bad -M options and missing weights fail at start-up, and a
model is loaded once, not per connection); a client that disconnects hands its instance back, and the next client
starts with a `reset` like every episode in-process does. More instances are built only for concurrent clients, up
to `max_clients` (a second copy of a 7B model is a deliberate choice, hence the default of 1).

With `max_batch_size` > 1 there is one instance only: each client gets a session on a Batcher (its own fork of the
adapter: episode state apart, weights shared), and act requests from up to `max_clients` clients that arrive within
`max_wait_ms` are answered by one batched call. The batcher takes requests from any connection handler, so every
protocol a server speaks can share it.

An exception in the served adapter is sent back as an `error` message and the connection stays open: the client's
run marks that episode errored and goes on (openpi clients get openpi's text error, and the connection closes, as an
openpi server does). The blocking websockets API (a thread per connection) keeps a slow
`act()` from stalling other clients or keep-alive pings.
"""

from __future__ import annotations

import hmac
import threading
import traceback
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from vlascore._version import __version__
from vlascore.adapters.base import Adapter, PolicyStep
from vlascore.scale.batching import Batcher
from vlascore.serving.client import TRY_AGAIN_LATER, websockets_module
from vlascore.serving.detect import PROTOCOLS, client_hint, client_speaks
from vlascore.serving.speaker import Connection, Speaker, close_with
from vlascore.serving.vla_eval import is_probe
from vlascore.serving.wire import (
    MAX_MESSAGE_BYTES,
    PROTOCOL,
    PROTOCOL_VERSION,
    Act,
    Error,
    Hello,
    ProtocolError,
    Reset,
    ResetDone,
    Step,
    decode,
    encode,
)

INTERNAL_ERROR = 1011  # WebSocket close codes: a connection refused because no adapter instance could be built,
GOING_AWAY = 1001  # the server shutting down (a busy refusal is client.TRY_AGAIN_LATER),
POLICY_VIOLATION = 1008  # and a client speaking another protocol
RELEASE_WAIT_S = 2.0
"""How long a new client waits for an instance that a client which just disconnected is still handing back (an openpi
client reconnects for each episode) before it is refused as busy."""


class ServingError(RuntimeError):
    """The server cannot start (the port is taken, the address is not local); the message says how to fix it."""


class _Session:
    """Per-connection state: whether this connection has started an episode on its adapter instance."""

    def __init__(self) -> None:
        self.started = False
        self.calls = 0


def _peer(ws: Any) -> str:
    address = getattr(ws, "remote_address", None)
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address or "client")


class PolicyServer:
    """Serves the adapter `model` (built with `config`) at ws://host:port until `shutdown()`."""

    def __init__(
        self,
        model: str,
        config: dict[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        max_clients: int = 1,
        stateless: bool = False,
        max_batch_size: int = 1,
        max_wait_ms: float = 5.0,
        protocol: str = "vlascore",
        api_key: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        from vlascore.adapters import make_adapter

        if protocol not in PROTOCOLS:
            raise ValueError(f"--protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if max_clients < 1:
            raise ValueError(f"--max-clients must be >= 1, got {max_clients}")
        if max_batch_size < 1 or max_wait_ms < 0:
            raise ValueError(f"--max-batch-size must be >= 1 and --max-wait-ms >= 0 ({max_batch_size}, {max_wait_ms})")
        self.model = model
        self.max_clients = max_clients
        self._config = dict(config or {})
        self._make: Callable[[], Adapter] = lambda: make_adapter(model, self._config)
        self._log = log or (lambda message: None)
        ws_server = websockets_module("websockets.sync.server")
        self.protocol = protocol
        self._api_key = api_key or None
        first = self._make()  # options checked and weights loaded before anything listens
        try:
            self.hello = Hello(
                adapter=model,
                config=dict(first.config),
                info=first.info(),
                stateless=stateless,
                vlascore_version=__version__,
            )
            encode(self.hello)  # fail now, not per connection, if the declaration cannot travel
            self._speaker = _speaker(protocol, model, first, self.hello)
        except BaseException:
            first.close()
            raise
        self._lock = threading.Condition()
        self._batcher = Batcher(first, max_batch_size, max_wait_ms) if max_batch_size > 1 else None
        """With batching: the one instance's batcher, every client a session on it (the pool stays unused)."""
        self._first = first
        self._sessions = 0
        self._idle: list[Adapter] = [] if self._batcher else [first]
        self._built = 1
        self._connections: set[Any] = set()
        self._closed = False
        try:
            self._server = ws_server.serve(
                self._handle,
                host,
                port,
                compression=None,
                max_size=MAX_MESSAGE_BYTES,
                close_timeout=2,
                process_request=self._admit,
            )
        except OSError as exc:
            first.close()
            raise ServingError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}): pick another --port "
                "(0: any free one), or stop what is using it"
            ) from None
        bound, port = self._server.socket.getsockname()[:2]
        self.url = f"ws://[{bound}]:{port}" if ":" in bound else f"ws://{bound}:{port}"
        """ws://HOST:PORT the server listens on (with the real port when started with port 0)."""

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._connections)

    def serve_forever(self) -> None:
        """Accept connections until `shutdown()` (from another thread or a signal handler's exception)."""
        try:
            self._server.serve_forever()
        except (OSError, ValueError):
            if not self._closed:  # websockets < 13 raises when shutdown() closed the socket before the loop started
                raise

    def shutdown(self) -> None:
        """Stop accepting, close every connection (code 1001, going away), release the adapters. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify_all()
            connections = list(self._connections)
        for ws in connections:
            try:
                ws.close(GOING_AWAY, "server shutting down")
            except Exception:  # noqa: BLE001 - a broken connection is closed either way
                pass
        self._server.shutdown()
        with self._lock:
            idle, self._idle = self._idle, []
        for adapter in idle:
            adapter.close()
        if self._batcher is not None:
            stats = self._batcher.stats
            self._batcher.close()
            self._first.close()
            batches = sum(stats.batch_sizes.values())
            if batches:
                self._log(
                    f"answered {stats.calls} act request(s) in {batches} batch(es), {stats.calls / batches:.1f} each"
                )

    @property
    def batch_sizes(self) -> dict[int, int]:
        """With batching: batch size -> batched calls of that size so far."""
        return dict(self._batcher.stats.batch_sizes) if self._batcher is not None else {}

    def __enter__(self) -> PolicyServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _acquire(self) -> Adapter | None:
        if self._batcher is not None:
            with self._lock:
                if self._sessions >= self.max_clients:
                    self._lock.wait_for(lambda: self._sessions < self.max_clients or self._closed, RELEASE_WAIT_S)
                if self._sessions >= self.max_clients or self._closed:
                    return None
                self._sessions += 1
            try:
                return self._batcher.session()
            except BaseException:
                with self._lock:
                    self._sessions -= 1
                raise
        with self._lock:
            if not self._idle and self._built >= self.max_clients:
                self._lock.wait_for(lambda: bool(self._idle) or self._closed, RELEASE_WAIT_S)
            if self._idle:
                return self._idle.pop()
            if self._built >= self.max_clients:
                return None
            self._built += 1
        try:
            return self._make()
        except BaseException:
            with self._lock:
                self._built -= 1
            raise

    def _release(self, adapter: Adapter) -> None:
        if self._batcher is not None:  # a session: closing it drops its fork
            adapter.close()
            with self._lock:
                self._sessions -= 1
                self._lock.notify()
            return
        with self._lock:
            if not self._closed:
                self._idle.append(adapter)
                self._lock.notify()
                return
        adapter.close()

    def _admit(self, connection: Any, request: Any) -> Any:
        """Before the WebSocket handshake: health checks (openpi's /healthz, vla-eval's /health) and the API key."""
        if request.path in ("/healthz", "/health"):
            return connection.respond(HTTPStatus.OK, "OK\n")
        if self._api_key is None:
            return None
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Api-Key {self._api_key}".encode()):
            return None
        self._log(f"{_peer(connection)}: refused, {'wrong' if given else 'no'} API key")
        return connection.respond(HTTPStatus.UNAUTHORIZED, "wrong or missing API key (Authorization: Api-Key KEY)\n")

    def _handle(self, ws: Any) -> None:
        closed = websockets_module("websockets.exceptions").ConnectionClosed
        connection = Connection(ws, _peer(ws), self._log)
        peer, speaker = connection.peer, self._speaker
        try:
            adapter = self._acquire()
        except Exception as exc:  # noqa: BLE001 - a failed build refuses this client, the server stays up
            try:
                text = f"cannot build the adapter: {exc}"
                speaker.refuse(connection, type(exc).__name__, text, INTERNAL_ERROR, traceback.format_exc())
            except closed:
                pass
            self._log(f"{peer}: refused, building another {self.model} failed: {type(exc).__name__}: {exc}")
            return
        if adapter is None:
            each = "a session on one batched instance" if self._batcher else "its own adapter instance"
            text = (
                f"the server already serves {self.max_clients} client(s), its limit: try again later, or start "
                f"it with a larger --max-clients (each client gets {each})"
            )
            try:
                speaker.refuse(connection, "ServerBusy", text, TRY_AGAIN_LATER)
            except closed:
                pass
            self._log(f"{peer}: refused, busy ({self.max_clients} client(s), --max-clients {self.max_clients})")
            return
        with self._lock:
            self._connections.add(ws)
            count = len(self._connections)
        self._log(f"{peer}: connected ({count}/{self.max_clients} client(s))")
        try:
            speaker.converse(connection, adapter)
        except closed:
            pass
        finally:
            with self._lock:
                self._connections.discard(ws)
            self._release(adapter)
            self._log(f"{peer}: disconnected after {connection.calls} request(s)")


def _speaker(protocol: str, model: str, adapter: Adapter, hello: Hello) -> Speaker:
    """The Speaker of `protocol` for `adapter` (built once; its per-connection state lives in `converse`)."""
    if protocol == "vlascore":
        return VlascoreSpeaker(hello)
    if adapter.uses_privileged_state:
        raise ValueError(
            f"adapter {model!r} reads simulator ground truth (a scripted expert), which {protocol} clients do not "
            "send: serve it with the vlascore protocol (no --protocol)"
        )
    if protocol == "openpi":
        from vlascore.serving.openpi_server import OpenpiSpeaker

        return OpenpiSpeaker(model, adapter)
    from vlascore.serving.vla_eval_server import VlaEvalSpeaker

    return VlaEvalSpeaker(model, adapter)


class VlascoreSpeaker(Speaker):
    """vlascore's own protocol (wire.py): the server greets with `hello`, then answers `reset` and `act`."""

    protocol = "vlascore"

    def __init__(self, hello: Hello) -> None:
        self.hello = hello

    def refuse(self, connection: Connection, error_type: str, message: str, code: int, traceback: str = "") -> None:
        connection.ws.send(encode(Error(None, error_type, message, "connect", traceback)))
        # The close reason repeats the gist: a client may see the close before the message (websockets < 13).
        close_with(connection, code, f"{error_type}: {message}")

    def converse(self, connection: Connection, adapter: Adapter) -> None:
        ws, session = connection.ws, _Session()
        ws.send(encode(self.hello))
        for frame in ws:
            reply = self._answer(adapter, frame, session, connection)
            if reply is None:
                return
            ws.send(reply)
            connection.calls += 1

    def _answer(self, adapter: Adapter, frame: bytes | str, session: _Session, connection: Connection) -> bytes | None:
        """The encoded reply to one request frame; adapter exceptions become `error` replies. None: the client speaks
        another protocol and was told so (the connection is closed)."""
        peer, log = connection.peer, connection.log
        try:
            request = decode(frame)
        except ProtocolError as exc:
            seen = client_speaks(frame)
            if seen == "vla-eval" and is_probe(frame):  # a vlascore client that probed before our hello came
                return encode(Error(None, "ProtocolError", "this server speaks vlascore-policy", "decode"))
            if seen in ("openpi", "vla-eval"):
                hint = client_hint(peer, "vlascore", seen)
                log(hint)
                if seen == "openpi":  # openpi clients read a text frame as the server's error
                    connection.ws.send(f"vlascore serve: {hint}")
                else:
                    connection.ws.send(encode(Error(None, "ProtocolError", hint, "decode")))
                close_with(connection, POLICY_VIOLATION, f"another protocol: --protocol {seen}")
                return None
            log(f"{peer}: unreadable request: {exc}")
            return encode(Error(None, "ProtocolError", str(exc), "decode"))
        where = request.type
        request_id = getattr(request, "id", None)
        try:
            if isinstance(request, Reset):
                session.started = False
                adapter.reset(request.context)
                session.started = True
                return encode(ResetDone(request.id))
            if isinstance(request, Act):
                if not session.started:
                    raise ProtocolError(
                        "send `reset` before the first `act` of a connection (the adapter instance "
                        "may still hold another client's episode)"
                    )
                step = adapter.act(request.observation, request.instruction)
                if not isinstance(step, PolicyStep):
                    raise TypeError(f"act() must return a PolicyStep, got {type(step).__name__}")
                return encode(Step(request.id, step))
            raise ProtocolError(f"clients send `reset` or `act`, not {request.type!r} ({PROTOCOL} {PROTOCOL_VERSION})")
        except Exception as exc:  # noqa: BLE001 - the point: report to the client, keep serving
            log(f"{peer}: {where} raised {type(exc).__name__}: {exc}")
            return encode(Error(request_id, type(exc).__name__, str(exc), where, traceback.format_exc()))
