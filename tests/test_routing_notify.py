"""``Notifier``: list changes and resource updates to both eras (the listen streams' bus, and each 2025
connection), every send bounded, connections held weakly."""

from __future__ import annotations

import gc

import anyio
import pytest
from mcp.server.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)

from gateway.catalogue.catalog import Kind
from gateway.routing import notify
from gateway.routing.notify import Notifier

pytestmark = pytest.mark.anyio


class Connection:
    """Stands for a 2025 connection: records what it was told; ``stuck`` ones never finish a send."""

    def __init__(self, stuck: bool = False) -> None:
        self.told: list[str] = []
        self.stuck = stuck
        self.session_id: str | None = None

    async def _told(self, what: str) -> None:
        if self.stuck:
            await anyio.sleep_forever()
        self.told.append(what)

    async def send_tool_list_changed(self) -> None:
        await self._told("tools")

    async def send_prompt_list_changed(self) -> None:
        await self._told("prompts")

    async def send_resource_list_changed(self) -> None:
        await self._told("resources")

    async def send_resource_updated(self, uri: str) -> None:
        await self._told(f"updated {uri}")


@pytest.fixture
def notifier(monkeypatch: pytest.MonkeyPatch) -> tuple[Notifier, list[ServerEvent]]:
    """A notifier that tracks connections as given (a session's connection is the SDK's to find), and what its
    bus published."""
    monkeypatch.setattr(notify, "connection_of", lambda session: session)
    monkeypatch.setattr(notify, "SEND_TIMEOUT", 0.05)
    notifier, published = Notifier(), []
    notifier.bus.subscribe(published.append)
    return notifier, published


async def test_each_changed_list_is_published_on_the_bus_and_told_to_every_2025_connection(
    notifier: tuple[Notifier, list[ServerEvent]],
) -> None:
    notes, published = notifier
    first, second = Connection(), Connection()
    notes.track(first)  # type: ignore[arg-type]
    notes.track(second)  # type: ignore[arg-type]
    await notes.changed({Kind.RESOURCES, Kind.TOOLS, Kind.PROMPTS})
    assert published == [PromptsListChanged(), ResourcesListChanged(), ToolsListChanged()]
    assert first.told == second.told == ["prompts", "resources", "tools"]


async def test_a_connection_that_does_not_take_its_notice_in_time_holds_up_nobody_else(
    notifier: tuple[Notifier, list[ServerEvent]],
) -> None:
    notes, _ = notifier
    fine, stuck = [Connection() for _ in range(4)], Connection(stuck=True)
    for connection in (fine[0], fine[1], stuck, fine[2], fine[3]):  # in the set's order, some after the stuck one
        notes.track(connection)  # type: ignore[arg-type]
    with anyio.fail_after(5):
        await notes.changed({Kind.TOOLS})
        await notes.resource_updated("ops+toy://a", [stuck, *fine])  # type: ignore[list-item]
    assert all(connection.told == ["tools", "updated ops+toy://a"] for connection in fine)


async def test_a_connection_that_ended_is_no_longer_told(notifier: tuple[Notifier, list[ServerEvent]]) -> None:
    notes, published = notifier
    gone = Connection()
    notes.track(gone)  # type: ignore[arg-type]
    told = gone.told
    del gone
    gc.collect()
    await notes.changed({Kind.TOOLS})
    assert told == [] and published == [ToolsListChanged()]


async def test_a_resource_update_goes_on_the_bus_and_to_the_connections_subscribed_only(
    notifier: tuple[Notifier, list[ServerEvent]],
) -> None:
    notes, published = notifier
    subscribed, other = Connection(), Connection()
    notes.track(other)  # type: ignore[arg-type]
    await notes.resource_updated("ops+toy://a", [subscribed])  # type: ignore[list-item]
    assert published == [ResourceUpdated("ops+toy://a")]
    assert (subscribed.told, other.told) == (["updated ops+toy://a"], [])
