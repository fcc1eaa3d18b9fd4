"""`vlascore serve --protocol openpi`: the server side of openpi's policy protocol, so openpi's own client
(`openpi_client.websocket_client_policy.WebsocketClientPolicy`) and anything built on it can drive any adapter.

The server greets with a metadata map (here: `vlascore_server` (its version), `adapter`, `config`, `info` (the
declaration) and `action_horizon`), then answers each observation map with `{"actions": (k, dim), "server_timing": ...}`
(plus `reasoning` and `intention` when the policy gives them). A failure is sent as a text frame, the traceback, and
the connection closes, as openpi's server does.

openpi's protocol has no episode start (its client's `reset()` sends nothing), so a connection is an episode: the
adapter is reset at the connection's first observation. A client that keeps one connection across episodes marks
each new one with the control map `{"__ctrl__": "episode_start"}` (answered `{"__ack__": "episode_start"}`), the
convention some openpi forks use.

Observation maps are read by openpi's naming: the image at `observation/image` (else the first HxWx3 uint8 array in
the map, nested maps included), the instruction at `prompt`, the state at `observation/state` or `state` (given to
the adapter as proprio `state`).
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from vlascore._version import __version__
from vlascore.adapters.base import Adapter
from vlascore.serving.detect import SERVER_MARK, client_hint, client_speaks
from vlascore.serving.speaker import (
    Connection,
    ForeignEpisodes,
    Speaker,
    action_chunk,
    close_with,
    image_of,
    state_of,
    text_of,
)
from vlascore.serving.vla_eval import is_probe
from vlascore.serving.wire import ProtocolError, packb, unpackb

INTERNAL_ERROR, POLICY_VIOLATION = 1011, 1008
IMAGE_KEYS = ("observation/image", "image")
STATE_KEYS = ("observation/state", "state")
PROMPT_KEY = "prompt"


class OpenpiSpeaker(Speaker):
    protocol = "openpi"

    def __init__(self, model: str, adapter: Adapter) -> None:
        info = adapter.info()
        self.space = adapter.action_space
        self.metadata = {
            SERVER_MARK: __version__,
            "adapter": model,
            "config": dict(adapter.config),
            "info": info,
            "action_horizon": adapter.chunk_size,
        }
        self._greeting = packb(self.metadata)  # fails at start-up, not per connection, if it cannot travel

    def refuse(self, connection: Connection, error_type: str, message: str, code: int, traceback: str = "") -> None:
        # No frame: openpi's client reads the first frame as metadata. The close code and reason say why (a busy
        # refusal, 1013, makes vlascore's client retry).
        close_with(connection, code, f"{error_type}: {message}")

    def converse(self, connection: Connection, adapter: Adapter) -> None:
        ws = connection.ws
        episodes = ForeignEpisodes(adapter, "openpi", self.space)
        ws.send(self._greeting)
        for frame in ws:
            started = time.monotonic()
            seen = client_speaks(frame)
            if seen == "vla-eval" and is_probe(frame):  # vlascore's client, probing because our greeting came late
                ws.send("this server speaks openpi's protocol")  # its one reply to the probe, which the client skips
                continue
            if seen in ("vlascore", "vla-eval"):
                connection.log(client_hint(connection.peer, "openpi", seen))
                close_with(connection, POLICY_VIOLATION, f"another protocol: --protocol {seen}")
                return
            try:
                request = _observation(frame)
                ctrl = request.get("__ctrl__")
                if ctrl is not None:
                    if ctrl == "episode_start":
                        episodes.begin(str(request.get("__task__", "")), request.get("__episode_id__"))
                    ws.send(packb({"__ack__": ctrl if ctrl in ("episode_start", "episode_end") else "ignored"}))
                    continue
                image = image_of(request, IMAGE_KEYS)
                step = episodes.act(image, state_of(request, STATE_KEYS), text_of(request, PROMPT_KEY, "prompt"))
                reply: dict[str, Any] = {"actions": action_chunk(step)}
                if step.reasoning is not None:
                    reply["reasoning"] = step.reasoning
                if step.intention is not None:
                    reply["intention"] = step.intention
                reply["server_timing"] = {"infer_ms": (time.monotonic() - started) * 1000}
                ws.send(packb(reply))
                connection.calls += 1
            except Exception as exc:  # noqa: BLE001 - openpi's convention: the traceback as text, then close
                connection.log(f"{connection.peer}: infer raised {type(exc).__name__}: {exc}")
                ws.send(traceback.format_exc())
                close_with(connection, INTERNAL_ERROR, "Internal server error. Traceback included in previous frame.")
                return


def _observation(frame: bytes | str) -> dict[str, Any]:
    if isinstance(frame, str):
        raise ProtocolError("openpi clients send binary msgpack frames, not text")
    request = unpackb(frame)
    if not isinstance(request, dict):
        raise ProtocolError(f"an openpi observation must be a map, got {type(request).__name__}")
    return request
