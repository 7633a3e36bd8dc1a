"""Run by the openai-agents venv's Python: that library's MCP client against a gateway, no model API involved.

Prints one JSON line: the names the server listed, the names the Agents SDK would send to the model (its function
tools), and the result of calling ``argv[2]`` with the JSON arguments ``argv[3]``.
"""

import asyncio
import json
import sys

from agents.mcp import MCPServerStreamableHttp, MCPUtil


async def main(url: str, tool: str, arguments: dict[str, object]) -> None:
    async with MCPServerStreamableHttp({"url": url, "timeout": 30}, client_session_timeout_seconds=30) as server:
        listed = await server.list_tools()
        functions = [MCPUtil.to_function_tool(t, server, convert_schemas_to_strict=False) for t in listed]
        result = await server.call_tool(tool, arguments)
    called = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    print(json.dumps({"listed": [t.name for t in listed], "functions": [f.name for f in functions], "called": called}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
