"""What a backend offers, asked over its SDK client: its capabilities and every page of every list it serves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp import Client, MCPError, types
from mcp_types import METHOD_NOT_FOUND
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from gateway.catalogue.catalog import Snapshot


async def list_all(client: Client, caps: types.ServerCapabilities) -> Snapshot:
    """Walk every page of every list the backend advertises."""
    tools = await _pages(client.list_tools, "tools") if caps.tools else []
    prompts = await _pages(client.list_prompts, "prompts") if caps.prompts else []
    resources = await _pages(client.list_resources, "resources") if caps.resources else []
    templates = await _templates(client) if caps.resources else []
    return Snapshot(tuple(tools), tuple(prompts), tuple(resources), tuple(templates))


async def capabilities(client: Client) -> types.ServerCapabilities:
    """What the backend serves. A link pinned to 2026-07-28 skips discovery, so the SDK knows nothing: ask."""
    known = client.server_capabilities
    if client.protocol_version not in MODERN_PROTOCOL_VERSIONS or known.model_dump(exclude_none=True):
        return known
    found = await client.session.send_request(types.DiscoverRequest(), types.DiscoverResult)
    return found.capabilities


async def _templates(client: Client) -> list[types.ResourceTemplate]:
    """A backend may serve resources without templates; its "method not found" means it has none."""
    try:
        return await _pages(client.list_resource_templates, "resource_templates")
    except MCPError as exc:
        if exc.code == METHOD_NOT_FOUND:
            return []
        raise


async def _pages(fetch: Callable[..., Awaitable[Any]], attr: str) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page = await fetch(cursor=cursor)
        items.extend(getattr(page, attr))
        cursor = page.next_cursor
        if cursor is None or cursor in seen:
            return items
        seen.add(cursor)
