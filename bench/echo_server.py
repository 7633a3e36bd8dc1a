"""The benchmark's backend: an SDK ``MCPServer`` with an ``echo`` tool and a ``big`` tool (about 1 MB of text).

Self-contained (it imports only the SDK), so peers can spawn it as a stdio server by file path. Over HTTP it
answers either with SSE streams (the SDK default) or with plain JSON (``--json-response``); both protocol eras
are served on the same endpoint.

    python bench/echo_server.py --port 9001 [--json-response]
    python bench/echo_server.py --stdio
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import uvicorn
from mcp.server import MCPServer

BIG_SIZE = 1_000_000


def build() -> MCPServer:
    """The echo server; logging is configured first because ``MCPServer()`` would otherwise log at INFO."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    server = MCPServer("bench-echo", instructions="Benchmark backend: echo and big.")
    payloads: dict[int, str] = {}

    @server.tool(description="Return the text unchanged.", structured_output=False)
    async def echo(text: str) -> str:
        return text

    @server.tool(description="Return `size` characters of text (1 MB by default).", structured_output=False)
    async def big(size: int = BIG_SIZE) -> str:
        if size not in payloads:
            payloads[size] = "x" * size
        return payloads[size]

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--json-response", action="store_true", help="answer POSTs with JSON instead of SSE")
    parser.add_argument("--stdio", action="store_true", help="serve on stdin/stdout instead of HTTP")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the benchmark backend binds to loopback only")
    server = build()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.stdio:
            server.run("stdio")
        else:
            app = server.streamable_http_app(json_response=args.json_response, host=args.host)
            uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
