"""Telling connected clients that the gateway's lists changed, in both protocol eras.

2026-07-28 clients hear it on their ``subscriptions/listen`` streams (fed by the subscription bus); 2025 clients
on their session's standalone stream. 2025 sessions are held weakly, so a session that ended simply drops out.
"""

from __future__ import annotations

import logging
import weakref

import anyio
from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ServerEvent,
    ToolsListChanged,
)

from gateway.catalog import Kind

logger = logging.getLogger(__name__)
SEND_TIMEOUT = 5.0
_EVENTS: dict[Kind, ServerEvent] = {
    Kind.TOOLS: ToolsListChanged(),
    Kind.PROMPTS: PromptsListChanged(),
    Kind.RESOURCES: ResourcesListChanged(),
}


class Notifier:
    """Fans list changes out to every connected client."""

    def __init__(self) -> None:
        self.bus = InMemorySubscriptionBus()
        self.listen = ListenHandler(self.bus)
        self._sessions: weakref.WeakSet[ServerSession] = weakref.WeakSet()

    def track(self, session: ServerSession) -> None:
        """Remember a 2025-era session so it hears about list changes."""
        self._sessions.add(session)

    async def changed(self, kinds: set[Kind]) -> None:
        for kind in sorted(kinds):
            await self.bus.publish(_EVENTS[kind])
        for session in list(self._sessions):
            with anyio.move_on_after(SEND_TIMEOUT):
                for kind in sorted(kinds):
                    await _send(session, kind)

    def close(self) -> None:
        """End every open listen stream gracefully (shutdown)."""
        self.listen.close()


async def _send(session: ServerSession, kind: Kind) -> None:
    if kind is Kind.TOOLS:
        await session.send_tool_list_changed()
    elif kind is Kind.PROMPTS:
        await session.send_prompt_list_changed()
    else:
        await session.send_resource_list_changed()
