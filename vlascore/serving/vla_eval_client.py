"""The remote adapter's side of vla-eval's protocol (vla_eval.py): one connection's hello, and each episode's
episode_start, observation -> action exchanges and episode_end."""

from __future__ import annotations

from typing import Any

import numpy as np

from vlascore.adapters.base import EpisodeContext
from vlascore.backends.base import Observation
from vlascore.serving.client import ConnectionLostError, Link, RemotePolicyError, ServerRefusedError
from vlascore.serving.detect import server_hint, server_speaks
from vlascore.serving.vla_eval import (
    ACTION,
    EPISODE_END,
    EPISODE_START,
    ERROR,
    HELLO,
    NAME,
    OBSERVATION,
    Message,
    VlaEvalOptions,
    check_version,
    hello_payload,
    pack,
    unpack,
)
from vlascore.serving.wire import ProtocolError
from vlascore.suites import ActionSpace


class VlaEvalClient:
    """The remote adapter's side of vla-eval connections: the hello, episode_start and episode_end around each episode,
    and one observation -> action exchange per policy call (the reply must echo the observation's seq)."""

    def __init__(self, link: Link, options: VlaEvalOptions) -> None:
        self.link, self.options, self.url = link, options, link.url
        self.server_info: dict[str, Any] = {}
        """The server's hello payload (model server name, versions, specs)."""
        self.space = ActionSpace()
        self._seq = 0
        self._open_episode: int | None = None  # seq of the episode_start of the episode in progress on this connection

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def connect(self) -> dict[str, Any]:
        """Open the connection and shake hands; returns the server's hello payload. On a reconnection the server
        must still be the same model server declaring the same action spec."""
        self._open_episode = None
        hello = pack(Message(HELLO, hello_payload(), seq=self._next()))
        info = self.link.open(self._handshake, greeting=hello)
        if self.server_info:
            old, new = (
                (i.get("model_server"), i.get("action_spec"), i.get("vlascore")) for i in (self.server_info, info)
            )
            if old != new:
                self.link.close()
                raise ProtocolError(
                    f"the vla-eval server at {self.url} now serves {new[0]!r} declaring {new[1]}, but this run started "
                    f"with {old[0]!r} declaring {old[1]}: refusing to mix two policies in one run"
                )
        self.server_info = info
        return info

    def _handshake(self, frame: bytes | str) -> dict[str, Any]:
        try:
            message = unpack(frame)
        except ProtocolError as exc:
            raise ProtocolError(server_hint(self.url, NAME, server_speaks(frame), str(exc)[:200])) from None
        if message.type == ERROR:
            raise ServerRefusedError(f"the vla-eval server at {self.url} refused the hello: {_error_text(message)}")
        if message.type != HELLO:
            raise ProtocolError(f"the vla-eval server at {self.url} answered the hello with {message.type!r}")
        check_version(message.payload, f"the server at {self.url}")
        return message.payload

    def start(self, context: EpisodeContext) -> None:
        """End the episode in progress on this connection, if any, and start `context`'s."""
        self.end()
        task = context.task
        payload = {
            "task": {
                "name": task.id,
                "task_description": task.instruction,
                "env_id": task.env_id,
                "seed": context.seed,
                "episode_id": context.episode_id,
            }
        }
        seq = self._next()
        self.link.send(pack(Message(EPISODE_START, payload, seq=seq)), "episode_start")
        self._open_episode = seq

    def end(self) -> None:
        """Send episode_end for the episode in progress (its result is not known here: the payload is empty)."""
        if self._open_episode is not None and self.link.connected:
            self._open_episode = None
            self.link.send(pack(Message(EPISODE_END, {}, seq=self._next())), "episode_end")
        self._open_episode = None

    def act(self, obs: Observation, instruction: str) -> np.ndarray:
        seq = self._next()
        frame = self.link.request(pack(Message(OBSERVATION, self.options.observation(obs, instruction), seq)), "act")
        try:
            reply = unpack(frame)
        except ProtocolError as exc:
            self.link.close()
            raise ProtocolError(f"unreadable reply from the vla-eval server at {self.url}: {exc}") from None
        if reply.type == ERROR:
            if reply.seq != seq:  # the server answered a failed episode_start late; the observation's reply follows
                self.link.close()
            what = "episode_start" if reply.seq == self._open_episode else "act"
            raise RemotePolicyError(
                f"the vla-eval server at {self.url} failed in {what}: {_error_text(reply)}", "", str(reply.payload)
            )
        if reply.type != ACTION or reply.seq != seq:
            self.link.close()
            raise ProtocolError(
                f"the vla-eval server at {self.url} answered observation {seq} with {reply.type} {reply.seq}"
            )
        return self.options.actions(reply.payload, self.space, self.url)

    def close(self) -> None:
        try:
            self.end()
        except ConnectionLostError:
            pass
        self.link.close()


def _error_text(message: Message) -> str:
    error = message.payload.get("error", message.payload)
    return str(error)[:2000]
