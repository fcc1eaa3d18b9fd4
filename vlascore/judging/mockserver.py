"""A local OpenAI-compatible HTTP server with scripted replies, for tests, benchmarks and dry runs.

It speaks the real wire protocol (`POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`), so
the code under test uses the real `openai` client, its retries and its timeouts. Replies come from a
`responder(body) -> str | MockReply`; the default answers every judge request with a valid verdict.

    python -m vlascore.judging.mockserver --port 8000 --latency 0.2   # then --base-url http://127.0.0.1:8000/v1
    (port 0 picks a free port; the first line printed names the URL)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np


@dataclass
class MockReply:
    """One scripted answer: a chat reply text, or an HTTP error status (429, 500...) with `content` as the error's
    message; `raw` sends those bytes as the whole body instead (not JSON, a completion without choices, a huge
    body); `trickle_s` sends the body one byte at a time, that many seconds apart (an endpoint that never ends a
    reply, yet never lets a per-read timeout fire)."""

    content: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    trickle_s: float = 0.0


Responder = Callable[[dict[str, Any]], "str | MockReply"]


def default_verdict(body: dict[str, Any]) -> str:
    """A valid verdict for any judge request: 7 on every dimension the system prompt defines."""
    system = json.dumps(body.get("messages", [])[:1])
    result = {"Action": 7, "Intention": 7}
    if "Alignment" in system:
        result |= {"Reasoning": 7, "Alignment": 7}
    return json.dumps({"Thought": "mock verdict", "Result": result})


def script(*replies: str | MockReply) -> Responder:
    """A responder that plays `replies` in order (thread-safe), then repeats the last one."""
    queue, lock = list(replies), threading.Lock()

    def respond(body: dict[str, Any]) -> str | MockReply:
        with lock:
            return queue.pop(0) if len(queue) > 1 else queue[0]

    return respond


def _completion(reply: MockReply, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A chat completion carrying `reply.content`, with token counts estimated from the request's size."""
    body = body or {}
    prompt_tokens = len(json.dumps(body.get("messages", []))) // 4
    completion_tokens = max(1, len(reply.content) // 4)
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "mock"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _embedding(text: str, dim: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return (v / np.linalg.norm(v)).tolist()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up mid-reply (a deadline, a reply too large) is expected here, not a server fault."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class MockOpenAI:
    """`with MockOpenAI(responder, latency_s=0.2) as server: OpenAI(base_url=server.url, api_key="x")`."""

    def __init__(
        self, responder: Responder | None = None, latency_s: float = 0.0, embed_dim: int = 16, port: int = 0
    ) -> None:
        self.responder = responder or default_verdict
        self.latency_s = latency_s
        self.embed_dim = embed_dim
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server = _QuietServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def chat_calls(self) -> int:
        return sum(1 for r in self.requests if r["_path"].endswith("/chat/completions"))

    def start(self) -> MockOpenAI:
        self._thread = threading.Thread(target=self._server.serve_forever, name="mock-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:  # end the threads still waiting on kept-alive connections
            open_connections, self._connections = list(self._connections), set()
        for sock in open_connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> MockOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any] | MockReply]:
        with self._lock:
            self.requests.append({**body, "_path": path})
        if self.latency_s:
            time.sleep(self.latency_s)
        if path.endswith("/embeddings"):
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"object": "embedding", "index": i, "embedding": _embedding(t, self.embed_dim)}
                for i, t in enumerate(texts)
            ]
            usage = {"prompt_tokens": sum(len(t.split()) for t in texts), "total_tokens": 0}
            return 200, {}, {"object": "list", "data": data, "model": body.get("model", "mock"), "usage": usage}
        reply = self.responder(body)
        if isinstance(reply, str):
            reply = MockReply(reply)
        if reply.raw is not None or reply.trickle_s:
            return reply.status, reply.headers, reply
        if reply.status != 200:
            error = {"error": {"message": reply.content or f"mock error {reply.status}", "type": "mock", "code": None}}
            return reply.status, {"retry-after-ms": "10", **reply.headers}, error
        return 200, reply.headers, _completion(reply, body)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: don't stall on delayed ACKs

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._lock:
                    server._connections.discard(self.connection)
                super().finish()

            def _send(self, status: int, headers: dict[str, str], payload: dict[str, Any] | MockReply) -> None:
                if isinstance(payload, MockReply):
                    data = payload.raw if payload.raw is not None else json.dumps(_completion(payload)).encode()
                else:
                    data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if isinstance(payload, MockReply) and payload.trickle_s:
                    try:
                        for k in range(len(data)):
                            self.wfile.write(data[k : k + 1])
                            self.wfile.flush()
                            time.sleep(payload.trickle_s)
                    except OSError:  # the client gave up: that is the point
                        self.close_connection = True
                    return
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.endswith("/mock/stats"):  # for benchmarks that run the server in another process
                    self._send(200, {}, {"chat_calls": server.chat_calls, "requests": len(server.requests)})
                    return
                self._send(200, {}, {"object": "list", "data": [{"id": "mock", "object": "model", "owned_by": "mock"}]})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._send(400, {}, {"error": {"message": "body is not JSON", "type": "invalid_request"}})
                    return
                self._send(*server._answer(self.path, body))

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="A local OpenAI-compatible server that answers judge requests.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every reply")
    args = parser.parse_args()
    with MockOpenAI(latency_s=args.latency, port=args.port) as server:
        print(
            f"mock OpenAI-compatible server at {server.url} (Ctrl-C to stop; GET {server.url}/mock/stats counts "
            "requests)",
            flush=True,
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
