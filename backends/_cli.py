"""Command line shared by the backends: `python -m backends.<name> [--stdio | --transport ...] [--port N] ...`.

`--transport` takes `streamable-http` (the SDK's spelling) and `streamable_http` (the gateway config's) alike, and
holds the config's spelling.
"""

import argparse
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import uvicorn
from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

logger = logging.getLogger(__name__)

# The bind addresses for which MCPServer arms DNS-rebinding protection by default.
_SDK_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_TRANSPORTS = ("streamable_http", "sse", "stdio")
# Long-lived SSE responses would otherwise hold a SIGTERM'd server open until the client hangs up.
_GRACEFUL_SHUTDOWN_SECONDS = 5


def run(name: str, build: Callable[[Path], MCPServer], default_port: int, argv: list[str] | None = None) -> None:
    """Parse the command line, build the backend on its database and serve it until stopped."""
    args = _parser(name, default_port).parse_args(argv)
    # Before `build`: MCPServer() calls logging.basicConfig, which must find our stderr handler already in place.
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    db_path = _db_path(name, args.db)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    server = build(db_path)
    logger.info("%s backend on %s using %s", name, args.transport, db_path)
    # SIGTERM takes Ctrl-C's orderly path: uvicorn drains and re-raises it once stopped, stdio unwinds its transport.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.transport == "stdio":
            server.run("stdio")
        else:
            _serve_http(server, args)
    except KeyboardInterrupt:
        logger.info("%s backend stopped", name)


def _parser(name: str, default_port: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m backends.{name}", description=f"Serve the {name} MCP backend.")
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument(
        "--transport",
        type=_transport,
        choices=_TRANSPORTS,
        default="streamable_http",
        metavar="{streamable-http,sse,stdio}",
        help="streamable-http (or streamable_http) serves /mcp, sse serves /sse and /messages/ (default: %(default)s)",
    )
    transport.add_argument(
        "--stdio", dest="transport", action="store_const", const="stdio", help="same as --transport stdio"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind for HTTP (default: %(default)s)")
    parser.add_argument("--port", type=int, default=default_port, help="port for HTTP (default: %(default)s)")
    parser.add_argument(
        "--fd",
        type=int,
        help="serve HTTP on this inherited socket, already bound, instead of binding --port (--host still says "
        "which Host headers to accept); how `mcp-gateway demo` starts the backends",
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help=f"SQLite file, created and seeded if missing (default: ${name.upper()}_DB or .data/{name}.sqlite3)",
    )
    parser.add_argument("--log-level", choices=_LOG_LEVELS, default="info", help="(default: %(default)s)")
    return parser


def _db_path(name: str, given: Path | None) -> Path:
    if given is not None:
        return given
    from_env = os.environ.get(f"{name.upper()}_DB")
    return Path(from_env) if from_env else Path(".data") / f"{name}.sqlite3"


def _transport(value: str) -> str:
    """One spelling for streamable HTTP, whichever was given."""
    return value.replace("-", "_")


def _serve_http(server: MCPServer, args: argparse.Namespace) -> None:
    host, port, log_level = args.host, args.port, args.log_level
    security = _transport_security(host)
    app: Starlette
    if args.transport == "sse":
        app = server.sse_app(host=host, transport_security=security)
    else:
        app = server.streamable_http_app(host=host, transport_security=security)
    # log_config=None keeps uvicorn's loggers on our stderr handler (its default config logs access lines to stdout).
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
    )
    sockets = None if args.fd is None else [socket.socket(fileno=args.fd)]
    uvicorn.Server(config).run(sockets=sockets)


def _transport_security(host: str) -> TransportSecuritySettings | None:
    """None keeps the SDK default, which on these loopback names only accepts Host headers naming loopback.

    A non-loopback bind is reached under names the server cannot know in advance (`ops:8001` from another container
    on a compose network, a load balancer's name), so there any Host is accepted. DNS-rebinding protection shields
    a server on a developer's machine from web pages in their browser; a port published beyond loopback is reachable
    directly anyway, so guarding it is the network's job.
    """
    if host in _SDK_LOOPBACK_HOSTS:
        return None
    return TransportSecuritySettings(enable_dns_rebinding_protection=False)
