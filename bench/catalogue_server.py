"""One backend with a large generated catalogue (``bench.search.generated_tools``, 10,000 tools by default), for
tool search through the gateway.

Its tools answer ``ok``; ``grow`` adds a tool of the given name and tells the client the list changed (over a 2025
session: the gateway links to it with ``protocol: legacy``), so the benchmark can time the first search after a
catalogue change.

    python -m bench.catalogue_server --port 9200 --tools 10000
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
from typing import Any

import uvicorn
from mcp import types
from mcp.server import Server
from mcp.server.context import ServerRequestContext

from bench.search import generated_tools

GROW = types.Tool(
    name="grow",
    description="Add a tool of the given name to this catalogue and announce the change.",
    input_schema={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
)


def build_server(count: int) -> Server[Any]:
    tools = [*generated_tools(count, separator="_"), GROW]

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        if params.name == GROW.name:
            name = str((params.arguments or {}).get("name", "grown"))
            tools.append(
                types.Tool(
                    name=name, description=f"The {name} tool, added at run time.", input_schema={"type": "object"}
                )
            )
            await ctx.session.send_tool_list_changed()
        return types.CallToolResult(content=[types.TextContent(type="text", text="ok")])

    return Server("bench-catalogue", on_list_tools=list_tools, on_call_tool=call_tool)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tools", type=int, default=10_000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    app = build_server(args.tools).streamable_http_app(json_response=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
