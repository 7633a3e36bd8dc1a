"""A small MCP server the tests control: it can add tools at run time, return rich content, and misbehave.

Run it as ``python -m tests.support.toy_server --port N`` (streamable HTTP), ``--transport sse`` or ``--stdio``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import anyio
from mcp import types
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import Field


def build(name: str = "toy") -> MCPServer:
    server = MCPServer(name, instructions="Test backend.")

    @server.tool(description="Echo the text back.", annotations=types.ToolAnnotations(read_only_hint=True))
    def echo(text: str = Field(description="What to echo")) -> str:
        return text

    @server.tool(name="search", description="Search the toy records.")
    def search(query: str) -> list[str]:
        return [f"{name}:{query}"]

    @server.tool(description="Return a link to a resource and an embedded resource.")
    def linked() -> list[types.ContentBlock]:
        return [
            types.ResourceLink(type="resource_link", uri="toy://notes/1", name="note 1"),
            types.EmbeddedResource(
                type="resource", resource=types.TextResourceContents(uri="toy://notes/2", text="two")
            ),
        ]

    @server.tool(description="Fail with a JSON-RPC error carrying data.")
    def fail() -> str:
        from mcp import MCPError

        raise MCPError(-32099, "toy failure", {"why": "asked to"})

    @server.tool(description="Sleep for the given seconds, then answer.")
    async def slow(seconds: float) -> str:
        await anyio.sleep(seconds)
        return "done"

    @server.tool(description="Register a new tool and tell clients the list changed.")
    async def add_tool(tool_name: str, ctx: Context) -> str:
        def added() -> str:
            return f"I am {tool_name}"

        server.add_tool(added, name=tool_name, description=f"Added at run time: {tool_name}")
        await ctx.notify_tools_changed()
        await ctx.request_context.session.send_tool_list_changed()
        return "added"

    @server.resource("toy://notes/{note_id}", description="A note by id.")
    def note(note_id: str) -> str:
        return f"note {note_id}"

    @server.resource("toy://about", description="About this server.")
    def about() -> str:
        return f"{name} server"

    @server.prompt(description="Greet someone.")
    def greet(who: str) -> str:
        return f"Hello {who}"

    @server.completion()
    async def complete(ref: Any, argument: types.CompletionArgument, context: Any) -> types.Completion:
        target = ref.name if isinstance(ref, types.PromptReference) else ref.uri
        return types.Completion(values=[f"{target}:{argument.name}={argument.value}"])

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="toy")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--transport", choices=["streamable-http", "sse", "stdio"], default="streamable-http")
    parser.add_argument("--stdio", action="store_const", const="stdio", dest="transport")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    server = build(args.name)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run(args.transport, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
