"""backends/README.md works as printed: its example server, behind the gateway as its configuration says."""

import re
import sys
from pathlib import Path

import pytest
from mcp.types import TextContent, TextResourceContents

from gateway.core import Gateway
from gateway.settings import load_config
from tests.support import inproc

README = (Path(__file__).resolve().parents[2] / "backends" / "README.md").read_text()

pytestmark = [pytest.mark.anyio, pytest.mark.processes]  # the example runs as a stdio backend


def block(lang: str) -> str:
    found: list[str] = re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)
    assert len(found) == 1
    return found[0]


async def test_the_example_server_answers_through_the_gateway_as_configured(tmp_path: Path) -> None:
    (tmp_path / "notes.py").write_text(block("python"))
    (tmp_path / "gateway.yaml").write_text(block("yaml"))
    config = load_config(tmp_path / "gateway.yaml")
    ops, notes = config.backends
    notes = notes.model_copy(update={"command": sys.executable, "cwd": str(tmp_path)})

    async with Gateway(config.model_copy(update={"backends": (notes,)})) as gateway, inproc.client(gateway) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        added = await client.call_tool("notes/add_note", {"text": "Order more NVMe drives"})
        read = (await client.read_resource("notes+notes://1")).contents[0]
        prompt = (await client.get_prompt("notes/summarise")).messages[0].content
        refused = await client.call_tool("notes/add_note", {"text": ""})

    assert (ops.name, ops.url) == ("ops", "http://127.0.0.1:8001/mcp")
    assert tools["notes/add_note"].output_schema and tools["notes/add_note"].description
    assert added.structured_content == {"id": 1, "text": "Order more NVMe drives"}
    assert isinstance(read, TextResourceContents) and read.text == "Order more NVMe drives"
    assert isinstance(prompt, TextContent) and "Order more NVMe drives" in prompt.text
    assert refused.is_error  # the server's own answer: the gateway validates only where it is told to
