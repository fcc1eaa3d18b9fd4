"""Policies over the network: `vlascore serve` exposes any adapter over WebSocket + msgpack, and the `remote`
adapter (vlascore/serving/remote.py) drives such a server from `vlascore run`. Both ends also speak openpi's and
vla-eval's protocols (`--protocol`, `-M protocol=`), so models served by those projects are scored as they are,
and their clients drive any adapter.

The point is dependency isolation: a model that needs its own transformers, torch or CUDA runs in its own
environment, and the evaluation environment only needs the `serve` extra. Wire format: docs/serving.md.

The submodules import websockets and msgpack only when they are used, so `import vlascore` works without them.
"""

from __future__ import annotations

from vlascore.serving.wire import PROTOCOL, PROTOCOL_VERSION, ProtocolError

__all__ = ["PROTOCOL", "PROTOCOL_VERSION", "ProtocolError"]
