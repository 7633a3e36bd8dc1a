"""The gateway's own tools (meta tools, composite tools) and what they may ask of the endpoint serving them.

A ``ToolSource`` adds tools to an endpoint's list that no backend owns: the endpoint lists them beside the
catalogue's and hands a call to the source that ``owns`` its name, after the guard's policy, rate limits and audit
for that name. The source does its work through a ``Reach``: the endpoint as seen by the one caller, so whatever it
calls in turn goes through the guard again, as if the caller had made that call itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from mcp import types

from gateway.catalogue.naming import Style


class Reach(Protocol):
    """One caller's view of an endpoint, for the duration of one call to a ``ToolSource``."""

    @property
    def style(self) -> Style:
        """The name style of the caller (tool names in ``everything`` and in calls are in it)."""
        ...

    @property
    def generation(self) -> int:
        """Moves whenever ``everything`` may have changed (an index built over it is stale then)."""
        ...

    def everything(self) -> Sequence[types.Tool]:
        """Every tool of the endpoint in ``style``, before the caller's rules: sources' own tools included."""
        ...

    def may_use(self, name: str) -> bool:
        """Whether the caller may see and call the tool ``name`` (a name from ``everything``)."""
        ...

    async def call_tool(self, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        """Call a tool as the caller: policy, rate limits, audit, metrics and tracing as for the caller's own call.
        Raises the gateway's errors (``gateway.errors``) and ``MCPError`` as a direct call would."""
        ...


class ToolSource(Protocol):
    """Tools an endpoint offers that no backend owns."""

    def tools(self, style: Style) -> Sequence[types.Tool]:
        """This source's tools, named in ``style``."""
        ...

    def owns(self, name: str) -> bool:
        """Whether ``name`` (in either style) is one of this source's tools."""
        ...

    async def call(self, reach: Reach, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        """Run the tool ``name`` for the caller behind ``reach``; a failure the caller should read is a result
        with ``isError``, bad arguments raise ``gateway.errors.InvalidArguments``."""
        ...
