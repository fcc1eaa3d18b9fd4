"""`vlascore serve --protocol vla-eval`: the model-server side of vla-eval's protocol (vla_eval.py), so vla-eval's
benchmark clients (`vla-eval run`, `vla_eval.api.run`) can drive any adapter.

The client speaks first (`hello`); the answer declares the adapter's convention as a vla-eval action spec. Then, per
episode, `episode_start` (the adapter is reset at the episode's first observation, when the instruction is known),
`observation` -> `action` carrying the observation's `seq`, and `episode_end`. vla-eval's benchmarks apply one action
per observation, so a policy that returns a chunk has it played out here: the first `execute_steps` actions (the whole
chunk by default) answer that many observations before the policy is called again, as `vlascore run` executes
chunks. A failure is answered with an `error` (the connection stays open, as vla-eval's model servers do).

Observations are read by vla-eval's convention: the first image of `images` (or an `image` array), the instruction at
`task_description`, the state at `state` or `states` (proprio `state` for the adapter).

vlascore and openpi clients wait for the server to speak: a connection silent for GRACE_S is sent an error that both
can read (vlascore's client probes with vla-eval's hello before that and learns what it reached).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from vlascore.adapters.base import Adapter
from vlascore.serving.detect import client_hint, client_speaks
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
from vlascore.serving.vla_eval import (
    ACTION,
    EPISODE_END,
    EPISODE_START,
    ERROR,
    HELLO,
    OBSERVATION,
    VERSION,
    Message,
    hello_payload,
    pack,
    spec_from_action_space,
    unpack,
)
from vlascore.serving.wire import Error, ProtocolError, encode, packb

GRACE_S = 2.0
"""How long a new connection may stay silent before it is told that this server waits for vla-eval's hello."""
POLICY_VIOLATION = 1008


class VlaEvalSpeaker(Speaker):
    protocol = "vla-eval"

    def __init__(self, model: str, adapter: Adapter) -> None:
        self.space = adapter.action_space
        self.execute = adapter.execute_steps
        self.hello = hello_payload(
            model_server=f"vlascore:{model}",
            capabilities={},
            action_spec=spec_from_action_space(adapter.action_space),
            observation_spec={
                "image": {"name": "image", "dims": 0, "format": "rgb_hwc_uint8"},
                "language": {"name": "language", "dims": 0, "format": "language"},
            },
            vlascore={"adapter": model, "config": dict(adapter.config), "info": adapter.info()},
        )
        pack(Message(HELLO, self.hello))  # fails at start-up, not per connection, if it cannot travel

    def refuse(self, connection: Connection, error_type: str, message: str, code: int, traceback: str = "") -> None:
        close_with(connection, code, f"{error_type}: {message}")

    def converse(self, connection: Connection, adapter: Adapter) -> None:
        ws = connection.ws
        state = _State(ForeignEpisodes(adapter, "vla-eval", self.space))
        try:
            frame = ws.recv(timeout=GRACE_S)
        except TimeoutError:
            text = (
                "this server speaks vla-eval's protocol and waits for the client's hello: use -M protocol=vla-eval "
                "(a `vlascore serve` for openpi or vlascore clients needs --protocol openpi or no --protocol)"
            )
            connection.log(f"{connection.peer} sent nothing in {GRACE_S:g} s: an openpi or vlascore client? {text}")
            ws.send(_readable_by_all(text))
            frame = ws.recv()
        while True:
            if not self._answer(connection, frame, state):
                return
            frame = ws.recv()

    def _answer(self, connection: Connection, frame: bytes | str, state: _State) -> bool:
        """Handle one frame; False when the connection is over (a client of another protocol, told so)."""
        ws = connection.ws
        seen = client_speaks(frame)
        if seen in ("openpi", "vlascore"):
            hint = client_hint(connection.peer, "vla-eval", seen)
            connection.log(hint)
            ws.send(f"vlascore serve: {hint}" if seen == "openpi" else encode(Error(None, "ProtocolError", hint)))
            close_with(connection, POLICY_VIOLATION, f"another protocol: --protocol {seen}")
            return False
        try:
            message = unpack(frame)
        except ProtocolError as exc:
            connection.log(f"{connection.peer}: unreadable message: {exc}")
            ws.send(pack(Message(ERROR, {"error": f"unreadable message: {exc}"}, seq=0)))
            return True
        if message.type == HELLO:
            version = message.payload.get("protocol_version")
            if version != VERSION:
                text = f"this server speaks vla-eval protocol version {VERSION}, the client {version}"
                connection.log(f"{connection.peer}: {text}")
                ws.send(pack(Message(ERROR, {"error": text}, seq=message.seq)))
                return True
            ws.send(pack(Message(HELLO, self.hello, seq=message.seq)))
        elif message.type == EPISODE_START:
            task = message.payload.get("task")
            task = task if isinstance(task, dict) else {}
            state.episodes.begin(str(task.get("name", "")), task.get("seed", task.get("episode_idx")))
            state.queued = []
        elif message.type == EPISODE_END:
            state.episodes.begin()  # observations without a new episode_start still start a new episode
            state.queued = []
        elif message.type == OBSERVATION:
            ws.send(self._act(connection, message, state))
            connection.calls += 1
        elif message.type == ERROR:
            connection.log(f"{connection.peer}: the client reported an error: {str(message.payload)[:300]}")
        return True

    def _act(self, connection: Connection, message: Message, state: _State) -> bytes:
        try:
            if state.queued:
                action, extra = state.queued.pop(0), {}
            else:
                payload = message.payload
                images = payload.get("images")
                image = image_of(images) if isinstance(images, dict) else image_of(payload, ("image",))
                instruction = text_of(payload, "task_description", "instruction")
                step = state.episodes.act(image, state_of(payload, ("state", "states")), instruction)
                chunk = action_chunk(step)
                run = min(self.execute or len(chunk), len(chunk))
                action, state.queued = chunk[0], list(chunk[1:run])
                extra = {k: v for k, v in (("reasoning", step.reasoning), ("intention", step.intention)) if v}
            return pack(Message(ACTION, {"actions": np.asarray(action), **extra}, seq=message.seq))
        except Exception as exc:  # noqa: BLE001 - vla-eval's convention: an error message, the connection stays
            state.queued = []
            connection.log(f"{connection.peer}: observation raised {type(exc).__name__}: {exc}")
            error = f"observation_failed: {type(exc).__name__}: {exc}"
            return pack(Message(ERROR, {"error": error}, seq=message.seq))


class _State:
    """One connection's episodes and the rest of the current chunk."""

    def __init__(self, episodes: ForeignEpisodes) -> None:
        self.episodes = episodes
        self.queued: list[np.ndarray] = []


def _readable_by_all(text: str) -> bytes:
    """An error that a vla-eval client reads as an `error` message and a vlascore client as a vlascore `error`."""
    message: dict[str, Any] = {"type": ERROR, "payload": {"error": text}, "seq": 0, "timestamp": time.time()}
    message.update(Error(None, "ProtocolError", text, "connect").to_wire())  # its `type` is "error" as well
    return packb(message)
