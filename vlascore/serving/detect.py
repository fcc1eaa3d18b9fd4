"""Which protocol the other side of a connection seems to speak, from the first frame it sent, and the one-line hint
that names the option to use. Both ends use it: the remote adapter on the server's first frame (`-M protocol=`),
`vlascore serve` on a client's first request (`--protocol`).

The protocols (docs/serving.md): `vlascore` (the server greets with `{type: hello, protocol: vlascore-policy}`; the
client then sends `{type: reset|act, id}`), `openpi` (the server greets with a free-form metadata map; the client
then sends plain observation maps; errors travel as text frames) and `vla-eval` (the client speaks first; every
message is `{type, payload, seq, timestamp}`).
"""

from __future__ import annotations

from typing import Any

from vlascore.serving import vla_eval
from vlascore.serving.wire import PROTOCOL, ProtocolError, unpackb

PROTOCOLS = ("vlascore", "openpi", "vla-eval")
"""What `vlascore serve --protocol` and `-M protocol=` accept."""
SERVER_MARK = "vlascore_server"
"""Key of the openpi metadata that `vlascore serve --protocol openpi` sends (its version)."""
_SPOKEN = {
    "vlascore": f"vlascore's own protocol ({PROTOCOL})",
    "openpi": "openpi's protocol",
    "vla-eval": "vla-eval's protocol",
}


def _read(frame: bytes | str) -> Any:
    if isinstance(frame, str):
        return frame
    try:
        return unpackb(frame)
    except ProtocolError:
        return None


def server_speaks(frame: bytes | str) -> str | None:
    """The protocol of a server whose first frame (or answer to a probe) this is; None when it is not readable."""
    value = _read(frame)
    if isinstance(value, str):
        return "openpi"  # openpi servers send errors (also at connect) as text
    if not isinstance(value, dict):
        return None
    if vla_eval.is_message(value):
        return "vla-eval"
    if value.get("type") in ("hello", "error") and (value.get("protocol") == PROTOCOL or "error_type" in value):
        return "vlascore"
    return "openpi"  # openpi metadata is any map


def client_speaks(frame: bytes | str) -> str | None:
    """The protocol of a client whose first request this is; None when it is not readable."""
    value = _read(frame)
    if not isinstance(value, dict):
        return None
    if vla_eval.is_message(value):
        return "vla-eval"
    if value.get("type") in ("reset", "act") and "id" in value:
        return "vlascore"
    if "type" not in value:
        return "openpi"  # an observation map
    return None


_GIVEAWAY = {
    "openpi": "it greeted with a metadata map",
    "vla-eval": "it answered vla-eval's hello",
    "vlascore": "it greeted with a vlascore-policy hello",
}


def server_hint(url: str, expected: str, seen: str | None, detail: str = "") -> str:
    """One line for a client (`-M protocol=expected`) whose server speaks `seen` (`detail`: why, if `seen` is None)."""
    detail = _GIVEAWAY.get(seen or "", detail)
    what = f" ({detail})" if detail else ""
    if seen == "vlascore":
        fix = f"drop -M protocol={expected} (vlascore is the default), or start it with --protocol {expected}"
        return f"the server at {url} is a `vlascore serve` server speaking {_SPOKEN[seen]}{what}: {fix}"
    if seen in PROTOCOLS:
        return f"the server at {url} speaks {_SPOKEN[seen]}{what}, not {_SPOKEN[expected]}: use -M protocol={seen}"
    return f"the server at {url} does not speak {_SPOKEN[expected]}{what}"


def client_hint(peer: str, expected: str, seen: str | None) -> str:
    """One line for the server log (and, where the client can read it, the client) about a client speaking `seen`."""
    if seen in PROTOCOLS and seen != expected:
        return (
            f"{peer} speaks {_SPOKEN[seen]}, this server {_SPOKEN[expected]}: start `vlascore serve` with "
            f"--protocol {seen} for such clients"
        )
    return f"{peer} sent a request that is not {_SPOKEN[expected]}"
