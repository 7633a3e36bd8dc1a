"""A fake ``Reach`` for the gateway's own tools, and the sample backends' tool definitions as a gateway lists them."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

from mcp import types

from backends.finance.server import build_server as finance
from backends.hr.server import build_server as hr
from backends.ops.server import build_server as ops
from gateway.catalogue.naming import Style
from gateway.errors import UnknownTarget


class FakeReach:
    """One caller's view: a fixed list, a rule for what it may use, and calls recorded and answered by ``answer``."""

    def __init__(
        self,
        tools: Sequence[types.Tool],
        *,
        style: Style = Style.CANONICAL,
        generation: int = 1,
        may_use: Callable[[str], bool] = lambda name: True,
    ) -> None:
        self.tools = list(tools)
        self.style = style
        self.generation = generation
        self.rule = may_use
        self.calls: list[tuple[str, dict[str, Any] | None]] = []
        self.listed = 0

    def everything(self) -> Sequence[types.Tool]:
        self.listed += 1
        return self.tools

    def may_use(self, name: str) -> bool:
        return self.rule(name)

    async def call_tool(self, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        if not any(tool.name == name for tool in self.tools) or not self.rule(name):
            raise UnknownTarget("tool", name)
        self.calls.append((name, arguments))
        return types.CallToolResult(
            content=[types.TextContent(text=f"{name} ran")], structured_content={"tool": name, "arguments": arguments}
        )


@cache
def sample_tools() -> tuple[types.Tool, ...]:
    """The ops, hr and finance sample backends' tools, named canonically (``ops/create_ticket``); listed on a loop
    of their own, so that async tests may ask for them too."""

    async def listed() -> list[types.Tool]:
        found = []
        with tempfile.TemporaryDirectory() as tmp:
            for prefix, build in (("ops", ops), ("hr", hr), ("fin", finance)):
                server = build(Path(tmp) / f"{prefix}.sqlite3")
                found += [t.model_copy(update={"name": f"{prefix}/{t.name}"}) for t in await server.list_tools()]
        return found

    with ThreadPoolExecutor(1) as pool:
        return tuple(pool.submit(lambda: asyncio.run(listed())).result(timeout=60))
