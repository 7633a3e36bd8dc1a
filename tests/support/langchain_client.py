"""Run by the langchain-mcp-adapters venv's Python: that library's MCP client against a gateway, no model involved.

Prints one JSON line: the names of the LangChain tools (what a chat model is given) and what calling ``argv[2]``
with the JSON arguments ``argv[3]`` returned.
"""

import asyncio
import json
import sys

from langchain_mcp_adapters.client import MultiServerMCPClient


async def main(url: str, tool: str, arguments: dict[str, object]) -> None:
    client = MultiServerMCPClient({"gateway": {"url": url, "transport": "streamable_http"}})
    tools = {t.name: t for t in await client.get_tools()}
    called = await tools[tool].ainvoke(arguments)
    print(json.dumps({"functions": list(tools), "called": called}, default=str))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
