"""Many small backends in one process: backend ``i`` is a separate MCP endpoint at ``/b<i>/mcp``.

Each backend is an SDK lowlevel ``Server`` with its own session manager and ``tools`` tools (``tool_000`` ...),
each of which echoes its ``text`` argument. The benchmark runs a few of these processes to put 100 backends with
10,000 tools in total behind one gateway.

    python -m bench.many --port 9100 --first 0 --count 25 --tools 100
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import uvicorn
from mcp import types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from starlette.applications import Starlette
from starlette.routing import BaseRoute

SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def backend_path(index: int) -> str:
    return f"/b{index}/mcp"


def build_backend(index: int, tools: int) -> Server[Any]:
    listing = types.ListToolsResult(
        tools=[
            types.Tool(
                name=f"tool_{j:03d}",
                description=f"Tool {j} of backend {index}: returns its text argument unchanged.",
                input_schema=SCHEMA,
            )
            for j in range(tools)
        ]
    )

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return listing

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        text = str((params.arguments or {}).get("text", ""))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    return Server(f"bench-many-{index}", on_list_tools=list_tools, on_call_tool=call_tool)


def build_app(first: int, count: int, tools: int, json_response: bool) -> Starlette:
    """One Starlette app routing to every backend's endpoint; its lifespan runs every session manager."""
    servers = [build_backend(i, tools) for i in range(first, first + count)]
    routes: list[BaseRoute] = []
    for index, server in zip(range(first, first + count), servers, strict=True):
        app = server.streamable_http_app(streamable_http_path=backend_path(index), json_response=json_response)
        routes.extend(app.routes)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for server in servers:
                await stack.enter_async_context(server.session_manager.run())
            yield

    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first", type=int, default=0, help="index of the first backend")
    parser.add_argument("--count", type=int, default=25, help="backends in this process")
    parser.add_argument("--tools", type=int, default=100, help="tools per backend")
    parser.add_argument("--json-response", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    app = build_app(args.first, args.count, args.tools, args.json_response)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
