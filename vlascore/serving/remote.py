"""`remote`: a policy that runs in another process or on another machine, behind `vlascore serve` or an
openpi-style policy server.

    vlascore run --model remote -M url=ws://127.0.0.1:8765 ...
    vlascore run --model remote -M url=ws://gpu-box:8000 -M protocol=openpi -M chunk_size=10 -M execute=5 ...

It connects in __init__ and adopts the served policy's declaration (action space, chunk size, reasons, privileged
state), so the runner's convention check and the run record describe the served policy, not this proxy.

Connection loss (docs/serving.md, "Timeouts and reconnection"): a dropped connection is re-opened (1 + retries
attempts with a doubling backoff) and the call replayed (the episode's reset, then the act) as long as no action of
the episode has come back, which covers a server restarted between episodes. Later in an episode, a lost connection
fails that act() with ConnectionLostError, so the runner records the episode as errored: the served adapter's
episode state is gone with its instance. Only a server started with `--stateless` has such calls replayed too.
A timed-out call is never replayed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import ValidationError

from vlascore.adapters.base import Adapter, EpisodeContext, PolicyStep
from vlascore.backends.base import Observation
from vlascore.serving.client import (
    ConnectionLostError,
    Link,
    RemotePolicyError,
    ServerRefusedError,
)
from vlascore.serving.openpi import OpenpiOptions
from vlascore.serving.wire import (
    PROTOCOL,
    PROTOCOL_VERSION,
    Act,
    Error,
    Hello,
    Message,
    ProtocolError,
    Reset,
    ResetDone,
    Step,
    decode,
    encode,
    packb,
    unpackb,
)
from vlascore.suites import ActionSpace

PROTOCOLS = ("vlascore", "openpi")
_DECLARED = ("action_space", "chunk_size", "reasons", "uses_privileged_state")


def _jsonable(value: Any) -> Any:
    """openpi metadata made fit for the JSON run record (arrays as lists, bytes as text)."""
    if isinstance(value, dict):
        return {str(k.decode() if isinstance(k, bytes) else k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


class RemoteAdapter(Adapter):
    """Proxy for a policy served over WebSocket; options: url, protocol, timeout, retries (+ openpi mapping)."""

    name = "remote"
    extras = ("serve",)
    needs = "a running policy server at -M url (`vlascore serve`, or openpi's serve_policy.py with -M protocol=openpi)"

    def __init__(
        self,
        url: str = "ws://127.0.0.1:8765",
        protocol: str = "vlascore",
        timeout: float = 30.0,
        retries: int = 3,
        **options: Any,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"-M protocol={protocol!r} is not one of {', '.join(PROTOCOLS)}")
        self._options = dict(url=url, protocol=protocol, timeout=timeout, retries=retries, **options)
        self.url = str(url)
        self.protocol = str(protocol)
        self.stateless = False
        """Whether the server declared that calls may be repeated on a new connection (`vlascore serve --stateless`)."""
        self._link = Link(self.url, float(timeout), int(retries))
        self._context: EpisodeContext | None = None
        self._acted = False  # whether the current episode has had an action back (after that, state may matter)
        self._next_id = 0
        self._hello: Hello | None = None
        self._openpi: OpenpiOptions | None = None
        self._metadata: dict[str, Any] = {}
        if self.protocol == "vlascore":
            if options:
                raise TypeError(
                    f"unknown option(s) {', '.join(sorted(options))} for -M protocol=vlascore (it "
                    "takes url, timeout, retries; mapping options need -M protocol=openpi)"
                )
            hello = self._link.open(self._read_hello)
            try:
                self._adopt(hello.info)
            except BaseException:
                self._link.close()
                raise
            self._hello, self.stateless = hello, hello.stateless
            config: dict[str, Any] = {
                "url": self.url,
                "protocol": self.protocol,
                "served_adapter": hello.adapter,
                "served_config": hello.config,
            }
        else:
            self._openpi = OpenpiOptions.parse(options)
            self.action_space = self._openpi.action_space
            self.chunk_size = self._openpi.chunk_size
            self.execute_steps = self._openpi.execute
            self._metadata = self._link.open(self._read_metadata)
            config = {"url": self.url, "protocol": self.protocol, **self._openpi.config()}
        super().__init__(**config)

    @property
    def reconnects(self) -> int:
        """How many times the connection was re-opened (diagnostics and tests)."""
        return max(self._link.connects - 1, 0)

    # -- handshakes -------------------------------------------------------------------------------------------------

    def _read_hello(self, frame: bytes | str) -> Hello:
        try:
            message = decode(frame)
        except ProtocolError as exc:
            raise ProtocolError(
                f"the server at {self.url} does not speak {PROTOCOL} ({exc}); an openpi-style "
                "server? add -M protocol=openpi"
            ) from None
        if isinstance(message, Error):
            if message.error_type == "ServerBusy":  # Link.open retries, then names the URL
                raise ServerRefusedError(message.message, retryable=True)
            raise ServerRefusedError(f"the policy server at {self.url} refused the connection: {message.message}")
        if not isinstance(message, Hello):
            raise ProtocolError(f"the server at {self.url} opened with {message.type!r}, not a hello")
        if self._hello is not None:
            old, new = self._hello, message
            if (old.adapter, old.config, old.info) != (new.adapter, new.config, new.info):
                raise ProtocolError(
                    f"the server at {self.url} now serves {new.adapter!r} {new.config} declaring "
                    f"{new.info}, but this run started with {old.adapter!r} {old.config} declaring "
                    f"{old.info}: refusing to mix two policies in one run"
                )
        return message

    def _read_metadata(self, frame: bytes | str) -> dict[str, Any]:
        if isinstance(frame, str):
            raise RemotePolicyError(f"the openpi server at {self.url} sent an error on connect: {frame[-500:]}")
        metadata = unpackb(frame)
        if not isinstance(metadata, dict):
            raise ProtocolError(
                f"the server at {self.url} opened with a {type(metadata).__name__}, not openpi's metadata map"
            )
        if metadata.get("type") == "hello" and metadata.get("protocol") == PROTOCOL:
            raise ProtocolError(f"the server at {self.url} is a `vlascore serve` server: drop -M protocol=openpi")
        return metadata

    def _adopt(self, info: dict[str, Any]) -> None:
        """Take the served policy's declaration as ours, so convention checks and the run record see it."""
        try:
            self.action_space = ActionSpace.model_validate(info["action_space"])
            self.chunk_size = int(info["chunk_size"])
            self.reasons = bool(info["reasons"])
            self.uses_privileged_state = bool(info["uses_privileged_state"])
        except (KeyError, TypeError, ValidationError) as exc:
            raise ProtocolError(
                f"this vlascore does not understand the declaration of the policy at {self.url} "
                f"({type(exc).__name__}: {exc}): install the same vlascore version on both "
                "sides"
            ) from None
        for key, value in info.items():  # declaration fields added to the Adapter contract later (execute_steps...)
            if key not in _DECLARED and hasattr(Adapter, key) and not callable(getattr(Adapter, key)):
                setattr(self, key, value)

    def _reconnect(self) -> None:
        self._link.open(self._read_hello if self.protocol == "vlascore" else self._read_metadata)

    # -- the Adapter contract ---------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        if self._hello is not None:
            h = self._hello
            remote = {
                "url": self.url,
                "protocol": PROTOCOL,
                "protocol_version": PROTOCOL_VERSION,
                "adapter": h.adapter,
                "config": h.config,
                "stateless": h.stateless,
                "server_vlascore_version": h.vlascore_version,
            }
            return {**h.info, "remote": remote}
        return {
            **super().info(),
            "remote": {"url": self.url, "protocol": "openpi", "metadata": _jsonable(self._metadata)},
        }

    def reset(self, context: EpisodeContext) -> None:
        self._context, self._acted = context, False
        if not self._link.connected:
            self._reconnect()
        if self.protocol != "vlascore":
            return  # openpi servers have no episode start (their client's reset() sends nothing)
        try:
            self._reset_remote(context)
        except ConnectionLostError:  # e.g. the server restarted since the last episode; nothing is lost yet
            self._reconnect()
            self._reset_remote(context)

    def act(self, obs: Observation, instruction: str) -> PolicyStep:
        context = self._context
        if context is None:
            raise RuntimeError("reset() must be called before act()")
        try:
            if not self._link.connected:
                raise ConnectionLostError(
                    f"the connection to the policy server at {self.url} was closed earlier in this episode"
                )
            step = self._act_remote(obs, instruction)
        except ConnectionLostError as exc:
            # Replaying on a fresh connection (reset again, then this act) is exact when no action of the episode
            # came back yet (e.g. the server restarted since the last episode), or when the server declared the
            # policy stateless; otherwise the served instance's episode state is gone with the connection.
            if self._acted and not self.stateless:
                raise ConnectionLostError(
                    f"{exc}. The served policy may keep per-episode state, so episode {context.episode_id} cannot go "
                    "on (the next episode reconnects); a server started with --stateless has such calls replayed"
                ) from None
            self._reconnect()
            if self.protocol == "vlascore":
                self._reset_remote(context)
            step = self._act_remote(obs, instruction)
        self._acted = True
        return step

    def fork(self) -> Adapter:
        """A connection of its own: the server keeps each connection's episode state in its own adapter instance
        (or fork), so it needs --max-clients for every concurrent stream."""
        return RemoteAdapter(**self._options)

    def close(self) -> None:
        self._link.close()

    # -- requests ---------------------------------------------------------------------------------------------------

    def _reset_remote(self, context: EpisodeContext) -> None:
        self._next_id += 1
        self._expect(self._call(Reset(self._next_id, context), "reset"), ResetDone)

    def _act_remote(self, obs: Observation, instruction: str) -> PolicyStep:
        if self._openpi is not None:
            frame = self._link.request(packb(self._openpi.observation(obs, instruction)), "infer")
            if isinstance(frame, str):  # openpi servers report a failure as a text traceback, then close
                self._link.close()
                last = frame.strip().splitlines()[-1] if frame.strip() else "(no traceback)"
                raise RemotePolicyError(f"the openpi server at {self.url} failed: {last}", "", frame)
            return PolicyStep(action=self._openpi.actions(unpackb(frame), self.url))
        self._next_id += 1
        request = Act(self._next_id, obs, instruction, privileged=self.uses_privileged_state)
        reply = self._expect(self._call(request, "act"), Step)
        assert isinstance(reply, Step)
        return reply.step

    def _call(self, request: Reset | Act, what: str) -> Message:
        frame = self._link.request(encode(request), f"{what} (request {request.id})")
        try:
            reply = decode(frame)
        except ProtocolError as exc:
            self._link.close()
            raise ProtocolError(f"unreadable reply from the policy server at {self.url}: {exc}") from None
        if isinstance(reply, Error):
            served = self._hello.adapter if self._hello else "?"
            raise RemotePolicyError(
                f"{reply.error_type}: {reply.message} (in {reply.where or what} of {served!r} served at {self.url})",
                reply.error_type,
                reply.traceback,
            )
        if getattr(reply, "id", None) != request.id:
            self._link.close()
            raise ProtocolError(
                f"the policy server at {self.url} answered request {getattr(reply, 'id', None)} to request {request.id}"
            )
        return reply

    def _expect(self, reply: Message, kind: type[ResetDone] | type[Step]) -> Message:
        if not isinstance(reply, kind):
            self._link.close()
            raise ProtocolError(f"the policy server at {self.url} answered {reply.type!r} where {kind.type!r} was due")
        return reply
