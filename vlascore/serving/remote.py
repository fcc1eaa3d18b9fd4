"""`remote`: a policy that runs in another process or on another machine, behind `vlascore serve`, an openpi-style
policy server or a vla-eval model server.

    vlascore run --model remote -M url=ws://127.0.0.1:8765 ...
    vlascore run --model remote -M url=ws://gpu-box:8000 -M protocol=openpi -M chunk_size=10 -M execute=5 ...
    vlascore run --model remote -M url=ws://gpu-box:8000 -M protocol=vla-eval ...

It connects in __init__ and adopts the served policy's declaration (action space, chunk size, reasons, privileged
state; from a vla-eval server, what its action spec states), so the runner's convention check and the run record
describe the served policy, not this proxy.

Episode boundaries: a `reset` message (vlascore), episode_start/episode_end (vla-eval), and for openpi, whose protocol
has none, a connection per episode (an openpi server sees each episode as a connection of its own).

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
from vlascore.serving.detect import PROTOCOLS, server_hint, server_speaks
from vlascore.serving.openpi import OpenpiOptions
from vlascore.serving.vla_eval import VlaEvalOptions, probe
from vlascore.serving.vla_eval_client import VlaEvalClient
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
    """Proxy for a policy served over WebSocket; options: url, protocol, timeout, retries, api_key (+ the openpi or
    vla-eval mapping)."""

    name = "remote"
    extras = ("serve",)
    needs = (
        "a running policy server at -M url (`vlascore serve`; openpi's serve_policy.py with -M protocol=openpi; a "
        "vla-eval model server with -M protocol=vla-eval)"
    )

    def __init__(
        self,
        url: str = "ws://127.0.0.1:8765",
        protocol: str = "vlascore",
        timeout: float = 30.0,
        retries: int = 3,
        api_key: str | None = None,
        **options: Any,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"-M protocol={protocol!r} is not one of {', '.join(PROTOCOLS)}")
        self._options = dict(url=url, protocol=protocol, timeout=timeout, retries=retries, api_key=api_key, **options)
        self.url = str(url)
        self.protocol = str(protocol)
        self.stateless = False
        """Whether the server declared that calls may be repeated on a new connection (`vlascore serve --stateless`)."""
        # The key goes in each connection's Authorization header (as openpi-client sends it), never in the run record.
        self._link = Link(self.url, float(timeout), int(retries), api_key=str(api_key) if api_key else None)
        self._context: EpisodeContext | None = None
        self._acted = False  # whether the current episode has had an action back (after that, state may matter)
        self._used = False  # whether the connection has carried an episode's calls (openpi: one connection each)
        self._next_id = 0
        self._hello: Hello | None = None
        self._openpi: OpenpiOptions | None = None
        self._vla_eval: VlaEvalClient | None = None
        self._metadata: dict[str, Any] = {}
        if self.protocol == "vlascore":
            if options:
                raise TypeError(
                    f"unknown option(s) {', '.join(sorted(options))} for -M protocol=vlascore (it "
                    "takes url, timeout, retries, api_key; mapping options need -M protocol=openpi or vla-eval)"
                )
            hello = self._link.open(self._read_hello, probe=probe())
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
        elif self.protocol == "openpi":
            self._openpi = OpenpiOptions.parse(options)
            self.action_space = self._openpi.action_space
            self.chunk_size = self._openpi.chunk_size
            self.execute_steps = self._openpi.execute
            self._metadata = self._link.open(self._read_metadata, probe=probe())
            config = {"url": self.url, "protocol": self.protocol, **self._openpi.config()}
        else:
            mapping = VlaEvalOptions.parse(options)
            self._vla_eval = client = VlaEvalClient(self._link, mapping)
            client.connect()
            try:
                client.space = self.action_space = mapping.action_space(client.server_info.get("action_spec"), self.url)
            except BaseException:
                client.close()
                raise
            self.chunk_size, self.execute_steps = mapping.chunk_size, mapping.execute
            config = {
                "url": self.url,
                "protocol": self.protocol,
                "model_server": str(client.server_info.get("model_server", "")),
                **mapping.config(),
                "action_space": self.action_space.model_dump(),
            }
        super().__init__(**config)

    @property
    def reconnects(self) -> int:
        """How many times the connection was re-opened (diagnostics and tests)."""
        return max(self._link.connects - 1, 0)

    # -- handshakes -------------------------------------------------------------------------------------------------

    def _read_hello(self, frame: bytes | str) -> Hello:
        seen = server_speaks(frame)
        if seen != "vlascore":
            raise ProtocolError(server_hint(self.url, "vlascore", seen))
        try:
            message = decode(frame)
        except ProtocolError as exc:
            raise ProtocolError(server_hint(self.url, "vlascore", None, str(exc)[:200])) from None
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
        seen = server_speaks(frame)
        if seen in ("vlascore", "vla-eval"):
            raise ProtocolError(server_hint(self.url, "openpi", seen))
        metadata = unpackb(frame)
        if not isinstance(metadata, dict):
            raise ProtocolError(
                f"the server at {self.url} opened with a {type(metadata).__name__}, not openpi's metadata map"
            )
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
        self._used = False
        if self._vla_eval is not None:
            self._vla_eval.connect()
        else:
            self._link.open(self._read_hello if self.protocol == "vlascore" else self._read_metadata, probe=probe())

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
        if self._vla_eval is not None:
            server = _jsonable(self._vla_eval.server_info)
            return {**super().info(), "remote": {"url": self.url, "protocol": "vla-eval", "server": server}}
        return {
            **super().info(),
            "remote": {"url": self.url, "protocol": "openpi", "metadata": _jsonable(self._metadata)},
        }

    def reset(self, context: EpisodeContext) -> None:
        self._context, self._acted = context, False
        if self.protocol == "openpi" and self._used:
            self._link.close()  # openpi has no episode start: each episode gets a connection of its own
        if not self._link.connected:
            self._reconnect()
        if self.protocol == "openpi":
            return
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
            if self.protocol != "openpi":
                self._reset_remote(context)
            step = self._act_remote(obs, instruction)
        self._acted = True
        return step

    def fork(self) -> Adapter:
        """A connection of its own: the server keeps each connection's episode state in its own adapter instance
        (or fork), so it needs --max-clients for every concurrent stream."""
        return RemoteAdapter(**self._options)

    def close(self) -> None:
        if self._vla_eval is not None:
            self._vla_eval.close()
        self._link.close()

    # -- requests ---------------------------------------------------------------------------------------------------

    def _reset_remote(self, context: EpisodeContext) -> None:
        if self._vla_eval is not None:
            self._vla_eval.start(context)
            return
        self._next_id += 1
        self._expect(self._call(Reset(self._next_id, context), "reset"), ResetDone)

    def _act_remote(self, obs: Observation, instruction: str) -> PolicyStep:
        self._used = True
        if self._vla_eval is not None:
            return PolicyStep(action=self._vla_eval.act(obs, instruction))
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
