"""`vlascore serve`: expose a registered adapter over WebSocket for `vlascore run --model remote` (docs/serving.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from vlascore.cli._common import (
    DEFAULT_MAX_WAIT_MS,
    MaxBatchSizeOpt,
    MaxWaitMsOpt,
    ModelArgOpt,
    console,
    err,
    fail,
    parse_model_args,
)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)


def serve_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Adapter to serve (see `vlascore models list`).")],
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port (0: any free one).")] = 8765,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface; there is no authentication).")
    ] = "127.0.0.1",
    model_arg: ModelArgOpt = None,
    max_clients: Annotated[
        int, typer.Option("--max-clients", min=1, help="Clients served at once, each with its own adapter instance.")
    ] = 1,
    stateless: Annotated[
        bool,
        typer.Option(
            "--stateless",
            help="Declare that act() keeps no state between calls, so a client may replay a "
            "call on a new connection after a drop (single-frame VLAs; not scripted experts).",
        ),
    ] = False,
    max_batch_size: MaxBatchSizeOpt = None,
    max_wait_ms: MaxWaitMsOpt = None,
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            help="What clients speak: vlascore (`vlascore run -m remote`), openpi (openpi-client's "
            "WebsocketClientPolicy) or vla-eval (vla-eval's benchmark clients).",
        ),
    ] = "vlascore",
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="VLASCORE_SERVE_API_KEY",
            help="Accept only clients that send `Authorization: Api-Key KEY` (openpi-client's api_key, "
            "-M api_key= of the remote adapter). Prefer the environment variable to the flag.",
            show_envvar=True,
        ),
    ] = None,
) -> None:
    """Serve a policy adapter over WebSocket (msgpack) until Ctrl-C or SIGTERM, e.g. a model that needs its own
    environment (an old transformers, another CUDA) while `vlascore run` evaluates it from this one.

    Builds the adapter (loading its weights) before listening, then prints the ws:// URL. Each connected client gets
    its own adapter instance; exceptions in the adapter are reported to the client, whose run records that episode
    as errored, and the server keeps serving. With --max-batch-size B > 1 the server holds one instance only and
    answers up to B clients' requests that arrive within --max-wait-ms with one batched call (each client keeps its
    own episode state), whatever --protocol they speak. --protocol openpi serves openpi's own client, --protocol
    vla-eval vla-eval's benchmark clients. Wire formats: docs/serving.md; batching: docs/scaling.md.

    Examples:

      vlascore serve --model scripted --port 8765

      vlascore run --model remote -M url=ws://127.0.0.1:8765 -s tabletop -n 5 -o runs/remote-scripted

      vlascore serve --model openvla -M path=openvla/openvla-7b --host 0.0.0.0 --port 8765   # in its own venv

      vlascore serve --model random --port 0 --max-clients 4     # any free port; four clients at once

      vlascore serve -m openvla -M device=cuda --host 0.0.0.0 --max-clients 16 --max-batch-size 16 --max-wait-ms 10

      vlascore serve -m openvla --protocol openpi --port 8000    # for openpi_client's WebsocketClientPolicy

      vlascore serve -m openvla --protocol vla-eval --port 8000  # for `vla-eval run` (server.url: ws://HOST:8000)
    """
    import signal
    import sys
    import threading

    from vlascore.cli._common import escape
    from vlascore.extras import MissingExtraError
    from vlascore.registry import UnknownPluginError
    from vlascore.serving.detect import PROTOCOLS
    from vlascore.serving.server import PolicyServer, ServingError
    from vlascore.serving.wire import PROTOCOL, PROTOCOL_VERSION, ProtocolError

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Set both explicitly: a shell that starts us in the background (CI, nohup, `&`) leaves SIGINT ignored, and
    # service managers stop a server with SIGTERM. Set before the model loads, so a long load can be interrupted too.
    # (Only the main thread may; an embedding caller keeps its own handlers.)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop)

    def log(message: str) -> None:
        err.print(f"[dim]{escape(message)}[/]", highlight=False, soft_wrap=True)

    config = parse_model_args(model_arg or [])
    if protocol not in PROTOCOLS:
        raise fail(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}", 2)
    try:
        server = PolicyServer(
            model,
            config,
            host=host,
            port=port,
            max_clients=max_clients,
            stateless=stateless,
            max_batch_size=max_batch_size or 1,
            max_wait_ms=DEFAULT_MAX_WAIT_MS if max_wait_ms is None else max_wait_ms,
            protocol=protocol,
            api_key=api_key,
            log=log,
        )
    except (ServingError, UnknownPluginError, MissingExtraError, ProtocolError, ValueError) as exc:
        raise fail(str(exc), 1) from None
    except KeyboardInterrupt:
        raise fail("interrupted while building the adapter", 130) from None
    try:  # from here on a signal stops the server cleanly, even one that arrives while the URL is printed
        speaks = {"vlascore": f"{PROTOCOL} {PROTOCOL_VERSION}", "openpi": "openpi", "vla-eval": "vla-eval 1"}[protocol]
        guard = ", API key required" if api_key else ""
        console.print(
            f"serving {escape(model)} at {server.url} ({speaks}{guard}; Ctrl-C to stop)",
            highlight=False,
            soft_wrap=True,
        )
        flag = "" if protocol == "vlascore" else f" -M protocol={protocol}"
        console.print(
            f"evaluate it with: vlascore run --model remote -M url={server.url}{flag} ...",
            highlight=False,
            soft_wrap=True,
        )
        sys.stdout.flush()  # the URL must reach a pipe (a test, a supervisor) now, not when the buffer fills
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    console.print("stopped")
