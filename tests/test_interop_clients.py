"""Agent frameworks' MCP clients against a real gateway: the names they would give a model API are ones it accepts.

openai-agents and langchain-mcp-adapters (pinned and installed in venvs of their own by ``tests.support.interop``)
both send the Python SDK's default ``clientInfo`` (``mcp``). Each lists the sample backends' tools through the
gateway in ``auto`` style and calls one; no model API is called.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from tests.support import interop
from tests.support.procs import ROOT
from tests.support.stack import Stack

pytestmark = pytest.mark.interop
# OpenAI's function-name rule; Anthropic's is the same up to 128 characters.
OPENAI_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
LOOKUP = ("ops__lookup_inventory", {"sku": "SSD-1TB-NVME"})


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    interop.install_all()


def run_client(spec: str, script: str, url: str) -> dict[str, Any]:
    python = interop.BY_SPEC[spec].home / "bin" / "python"
    tool, arguments = LOOKUP
    argv = [str(python), str(ROOT / "tests" / "support" / script), url, tool, json.dumps(arguments)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_openai_agents_gets_function_names_openai_accepts_and_calls_one(stack: Stack) -> None:
    seen = run_client(interop.OPENAI_AGENTS, "agents_client.py", stack.url)
    assert seen["functions"] == seen["listed"]
    assert "ops__lookup_inventory" in seen["functions"] and len(seen["functions"]) > 10
    assert [name for name in seen["functions"] if not OPENAI_FUNCTION_NAME.match(name)] == []
    assert seen["called"]["isError"] is False
    assert seen["called"]["structuredContent"]["count"] == 3


def test_langchain_mcp_adapters_gets_tool_names_openai_accepts_and_calls_one(stack: Stack) -> None:
    seen = run_client(interop.LANGCHAIN_MCP_ADAPTERS, "langchain_client.py", stack.url)
    assert "ops__lookup_inventory" in seen["functions"] and len(seen["functions"]) > 10
    assert [name for name in seen["functions"] if not OPENAI_FUNCTION_NAME.match(name)] == []
    assert json.loads(seen["called"][0]["text"])["count"] == 3
