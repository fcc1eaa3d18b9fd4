"""`vlascore leaderboard serve SITE`: the built site over HTTP (the standard library's file server).

The site also works from file://; serving it is for sharing on a network or viewing it from another machine.
Only files under SITE are served (http.server resolves paths below its directory).
"""

from __future__ import annotations

from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from vlascore.board.errors import BoardError
from vlascore.board.site import INDEX_PAGE


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves the site; one short log line per request, on stderr."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        import sys

        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def make_server(site: str | Path, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server for the built site at `site` (port 0: any free port; read it from `server.server_address`)."""
    site = Path(site)
    if not (site / INDEX_PAGE).is_file():
        raise BoardError(
            f"{site} is not a built leaderboard site (no {INDEX_PAGE}): build one with "
            "`vlascore leaderboard build DIR -o SITE`"
        )
    handler = partial(QuietHandler, directory=str(site))
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise BoardError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): pick another --port, or stop what is using it"
        ) from None


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    shown = host if isinstance(host, str) else host.decode()
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"
