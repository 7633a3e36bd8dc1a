"""A backend that tells what trace context it received: the ``traceparent`` and ``tracestate`` of a call's HTTP
headers and of its ``params._meta``, as the ``seen`` tool's structured result."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import uvicorn
from mcp import MCPError
from mcp.server import MCPServer
from mcp.server.mcpserver import Context

KEYS = ("traceparent", "tracestate")


def build() -> MCPServer:
    server = MCPServer("traced", instructions="Reports the trace context of each call.")

    @server.tool(description="The trace context this call arrived with, in its headers and in its _meta.")
    def seen(ctx: Context) -> dict[str, Any]:
        headers = ctx.headers or {}
        meta = ctx.request_context.meta or {}
        return {
            "header": {key: headers.get(key) for key in KEYS},
            "meta": {key: meta.get(key) for key in KEYS},
        }

    @server.tool(description="Fail with a JSON-RPC error.")
    def fail() -> str:
        raise MCPError(-32099, "traced failure")

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--stdio", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    server = build()
    if args.stdio:
        server.run("stdio")
    else:
        app = server.streamable_http_app(host="127.0.0.1")
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="critical")


if __name__ == "__main__":
    main()
