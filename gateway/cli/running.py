"""Ways to run a gateway: HTTP with uvicorn, stdio, and a one-shot catalogue print (the demo stack is ``demo``'s)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from mcp.server.stdio import stdio_server
from sse_starlette.sse import AppStatus
from starlette.types import ASGIApp

from gateway.catalogue.naming import Style, strict_name
from gateway.composition.checks import problems
from gateway.config import GatewayConfig
from gateway.core import Gateway
from gateway.errors import ConfigError
from gateway.front.app import MCP_PATH, GatewayApp
from gateway.front.http_limits import protocol_for
from gateway.front.server import build_server
from gateway.operations.app import build_operated_app
from gateway.operations.reload import ConfigFile, reloading
from gateway.operations.runtime import operated
from gateway.settings import default_state_dir
from gateway.telemetry.access_log import as_line

logger = logging.getLogger(__name__)


async def serve_http(
    config: GatewayConfig,
    listener: socket.socket,
    host: str,
    banner: str | None = None,
    source: ConfigFile | None = None,
) -> None:
    """Serve on ``listener`` (bound to ``host``, see ``listeners``) until SIGINT or SIGTERM, then stop taking calls,
    give in-flight ones ``shutdown_grace`` seconds to finish, and close every backend. The runtime changes kept in
    the state directory apply; with a config file (``source``), it is reloaded on SIGHUP and when it changes."""
    port = listener.getsockname()[1]
    async with operated(config, _state_dir(config)) as runtime, AsyncExitStack() as stack:
        if source is not None:
            await stack.enter_async_context(reloading(source, runtime))
        gateway = runtime.gateway
        composable(gateway)
        app = build_operated_app(gateway, host=host, runtime=runtime)
        lines = (f"mcp-gateway listening on http://{host}:{port}{MCP_PATH}", banner)
        await _Server(server_config(app, config, host, port), app, gateway, *lines).serve(sockets=[listener])


def _state_dir(config: GatewayConfig) -> Path | None:
    """The configured state directory, else the default one, if it can be made (otherwise changes last as long as
    the process, and a log line says so)."""
    if config.state_dir is not None:
        return config.state_dir
    path = default_state_dir(os.environ)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        logger.warning("runtime changes will not outlive this process: cannot create %s: %s", path, exc.strerror)
        return None
    return path


def server_config(app: ASGIApp, config: GatewayConfig, host: str, port: int) -> uvicorn.Config:
    """uvicorn as the gateway runs it: httptools within the per-connection limits of ``http_limits``, no
    WebSockets (the gateway serves none), and the configured keep-alive and shutdown grace."""
    http = config.security.http
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_for(http),
        ws="none",
        timeout_keep_alive=http.keep_alive_timeout,
        timeout_graceful_shutdown=config.shutdown_grace,
        log_level="warning",
        # JSON lines: uvicorn's records go to the root logger's handler, and its formatter, like every other.
        log_config=None if config.logging.format == "json" else uvicorn.config.LOGGING_CONFIG,
    )


class _Server(uvicorn.Server):
    """uvicorn, announcing where it listens once bound and shutting down the gateway's way.

    On a signal it cuts the long-lived notification streams first, so only calls in flight hold the shutdown.
    It returns normally afterwards: uvicorn would re-raise the signal, and with the default SIGTERM handler that
    kills the process before the backends are closed (and the exit status is never 0).

    sse-starlette (the SDK's SSE responses) ends every open SSE response half a second after uvicorn sees a
    signal, which would cut a 2025 call answered over SSE before its result; that drain is switched off, so the
    streams that carry calls end when their result is written.
    """

    def __init__(self, config: uvicorn.Config, app: GatewayApp, gateway: Gateway, *lines: str | None) -> None:
        super().__init__(config)
        AppStatus.enable_automatic_graceful_drain = False
        self._app = app
        self._gateway = gateway
        self._lines = [line for line in lines if line]

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print("\n".join(map(as_line, self._lines)), file=sys.stderr, flush=True)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for listener in self.servers:
            listener.close()
        self._app.cut_streams()
        self._gateway.notifier.close()
        with anyio.move_on_after(self._gateway.config.shutdown_grace):
            await self._app.idle()
        await super().shutdown(sockets)


async def serve_stdio(config: GatewayConfig) -> None:
    """Serve one client on stdin/stdout until it closes stdin, or until SIGINT/SIGTERM (after in-flight calls end,
    at most ``shutdown_grace`` seconds)."""
    async with Gateway(config) as gateway, anyio.create_task_group() as tg:
        composable(gateway)
        tg.start_soon(_stop_on_signal, gateway, tg.cancel_scope)
        server = build_server(gateway)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
        tg.cancel_scope.cancel()


def composable(gateway: Gateway) -> None:
    """Refuse to serve a composition config the backends' listings show wrong (``gateway.composition.checks``)."""
    found = problems(gateway)
    if found:
        raise ConfigError("\n".join(found))


async def _stop_on_signal(gateway: Gateway, scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            await gateway.drain(gateway.config.shutdown_grace)
            scope.cancel()
            return


async def print_catalog(config: GatewayConfig, style: Style, as_json: bool) -> int:
    """Connect, print every exposed tool, and return 0 when every backend answered (1 otherwise)."""
    async with Gateway(config) as gateway:
        prefixes = {b.name: b.exposed_prefix for b in config.backends}
        rows = []
        for tool in gateway.catalog.tools(Style.CANONICAL):
            route = gateway.catalog.resolve_tool(tool.name)
            strict = strict_name(prefixes[route.backend], route.original, config.naming)
            shown = tool.name if style is Style.CANONICAL else strict
            summary = (tool.description or "").strip().splitlines()[0] if tool.description else ""
            rows.append({"name": shown, "backend": route.backend, "tool": route.original, "description": summary})
        status = gateway.status()
        if gateway.guard.pins.enabled:
            status["withheld"] = gateway.guard.pins.changed()
    if as_json:
        print(json.dumps({"tools": rows, **status}, indent=2))
    else:
        _print_table(rows, status)
    return 0 if status["status"] == "ready" else 1


async def approve_tools(config: GatewayConfig, names: list[str]) -> int:
    """Connect, then pin the current definition of the named changed tools (every changed tool without names)."""
    if config.security.pinning.file is None:
        print("mcp-gateway: tool pinning is off; set security.pinning.file", file=sys.stderr)
        return 2
    async with Gateway(config) as gateway:
        pins = gateway.guard.pins
        unknown = sorted(set(names) - set(pins.changed()))
        approved = pins.approve(names or None)
    for name in approved:
        print(f"approved {name}")
    for name in unknown:
        print(f"not changed or not listed: {name}", file=sys.stderr)
    if not approved and not unknown:
        print("no changed tools to approve")
    return 1 if unknown else 0


def _cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, ending in an ellipsis when it had to be cut, so a reader knows."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _print_table(rows: list[dict[str, str]], status: dict[str, Any]) -> None:
    width = max([len(r["name"]) for r in rows] + [4])
    bwidth = max([len(r["backend"]) for r in rows] + [7])
    print(f"{'NAME':<{width}}  {'BACKEND':<{bwidth}}  DESCRIPTION")
    for row in rows:
        print(f"{row['name']:<{width}}  {row['backend']:<{bwidth}}  {_cut(row['description'], 80)}")
    for backend in status["backends"]:
        if backend["state"] != "ready":
            print(f"backend {backend['name']} is {backend['state']}: {backend.get('error', '')}", file=sys.stderr)
    for conflict in status["conflicts"]:
        print(f"conflict: {conflict}", file=sys.stderr)
    for name in status.get("withheld", []):
        print(f"withheld: {name} changed since it was pinned (mcp-gateway tools --approve {name})", file=sys.stderr)
