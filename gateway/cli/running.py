"""Ways to run a gateway: HTTP with uvicorn, stdio, the demo stack, and a one-shot catalogue print."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import uvicorn
import yaml
from mcp.server.stdio import stdio_server
from sse_starlette.sse import AppStatus
from starlette.types import ASGIApp

from gateway.catalogue.naming import Style, strict_name
from gateway.config import GatewayConfig
from gateway.core import Gateway
from gateway.front.app import MCP_PATH, GatewayApp, build_app
from gateway.front.http_limits import protocol_for
from gateway.front.server import build_server

logger = logging.getLogger(__name__)
BACKEND_START_TIMEOUT = 30.0
BACKEND_STOP_TIMEOUT = 5.0
SAMPLE_BACKENDS = ("ops", "hr", "finance")
PR_SET_PDEATHSIG = 1


async def serve_http(config: GatewayConfig, host: str, port: int, banner: str | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then stop taking calls, give in-flight ones ``shutdown_grace`` seconds to
    finish, and close every backend."""
    async with Gateway(config) as gateway:
        app = build_app(gateway, host=host)
        lines = (f"mcp-gateway listening on http://{host}:{port}{MCP_PATH}", banner)
        await _Server(server_config(app, config, host, port), app, gateway, *lines).serve()


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
            print("\n".join(self._lines), file=sys.stderr, flush=True)

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
        tg.start_soon(_stop_on_signal, gateway, tg.cancel_scope)
        server = build_server(gateway)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
        tg.cancel_scope.cancel()


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


def run_demo(
    host: str, port: int, ports: tuple[int, int, int], data_dir: Path, config: GatewayConfig, path: Path | None
) -> None:
    """Start the sample backends, then the gateway in front of them; Ctrl-C stops all of it.

    Without a config file the effective one is written to ``data_dir``, so the printed stdio entry for Claude
    Desktop reaches the same backends on the same ports.
    """
    backend_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if path is None:
        path = data_dir / "gateway.yaml"
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True), sort_keys=False))
    with sample_backends(backend_host, ports, data_dir):
        anyio.run(serve_http, config, host, port, _demo_banner(host, port, path.resolve()))


@contextmanager
def sample_backends(host: str, ports: tuple[int, int, int], data_dir: Path) -> Iterator[None]:
    """Run ops, hr and finance as subprocesses until the block ends; each is stopped and reaped."""
    data_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, port in zip(SAMPLE_BACKENDS, ports, strict=True):
            command = [sys.executable, "-m", f"backends.{name}", "--host", host, "--port", str(port)]
            command += ["--db", str(data_dir / f"{name}.sqlite3"), "--log-level", "warning"]
            procs.append(subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent))
        for name, port, proc in zip(SAMPLE_BACKENDS, ports, procs, strict=True):
            _wait_for_port(name, host, port, proc)
        yield
    finally:
        for proc in procs:
            _stop(proc)


def _die_with_parent() -> None:
    """Linux: the backend gets SIGTERM if the demo dies without stopping it (SIGKILL); a no-op elsewhere."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_for_port(name: str, host: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + BACKEND_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mcp-gateway: the {name} backend exited with status {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"mcp-gateway: the {name} backend did not listen on {host}:{port} within {BACKEND_START_TIMEOUT}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers, and always reap."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=BACKEND_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def _demo_banner(host: str, port: int, config: Path) -> str:
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}{MCP_PATH}"
    executable = shutil.which("mcp-gateway") or str(Path(sys.executable).with_name("mcp-gateway"))
    desktop = {"mcpServers": {"gateway": {"command": executable, "args": ["stdio", "--config", str(config)]}}}
    remote = {"mcpServers": {"gateway": {"command": "npx", "args": ["-y", "mcp-remote", url]}}}
    return "\n".join(
        [
            f"\nMCP endpoint: {url}",
            "Claude Desktop (claude_desktop_config.json), the gateway on stdio:",
            json.dumps(desktop, indent=2),
            "or through mcp-remote:",
            json.dumps(remote, indent=2),
            "Ctrl-C stops the gateway and the three backends.",
        ]
    )
