"""Resource subscriptions through the gateway, compared with the same subscription made directly with the backend.

A 2025 client subscribes with ``resources/subscribe``, a 2026 client names the resource on its
``subscriptions/listen`` stream; either way the update the backend sends reaches it under the gateway's URI. Backend
links (``toy_links`` in ``conftest.py``): ``web`` (streamable HTTP, 2025 session), ``modern`` (streamable HTTP, 2026)
and ``local`` (stdio, 2025).
The toy backend's ``touch`` tool announces that a resource changed, to whoever subscribed to it in either era.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError, types

from tests.support.procs import http_get, wait_until

pytestmark = pytest.mark.anyio
Stack = dict[str, str]
WAIT = 10.0


@pytest.fixture
def stack(toy_links: Stack) -> Stack:
    return toy_links


class Updates:
    """The resource updates one client heard, in order, with a way to wait for the next."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self._read = 0
        self._arrived = anyio.Event()

    async def handle(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.uris.append(str(message.params.uri))
            self._arrived.set()

    async def next(self) -> str:
        """The first update not yet read."""
        with anyio.fail_after(WAIT):
            while len(self.uris) == self._read:
                self._arrived = anyio.Event()
                await self._arrived.wait()
        self._read += 1
        return self.uris[self._read - 1]


@asynccontextmanager
async def subscribed(url: str, mode: str, uri: str) -> AsyncIterator[tuple[Client, Updates]]:
    """A client of ``mode`` subscribed to ``uri``: ``resources/subscribe`` (2025) or a listen stream (2026)."""
    updates = Updates()
    async with Client(url, mode=mode, message_handler=updates.handle) as client:
        if mode == "legacy":
            await client.subscribe_resource(uri)
            yield client, updates
            return
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            assert subscription.honored.resource_subscriptions == [uri]
            yield client, updates


async def touch(url: str, prefix: str, uri: str) -> None:
    async with Client(url, mode="legacy") as other:
        result = await other.call_tool(f"{prefix}touch", {"uri": uri})
    assert not result.is_error, result


async def count(url: str, prefix: str, uri: str) -> int:
    async with Client(url, mode="legacy") as other:
        result = await other.call_tool(f"{prefix}subscribers", {"uri": uri})
    return int(result.content[0].text)  # type: ignore[union-attr]


@pytest.mark.parametrize("backend", ["web", "modern", "local"])
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_an_update_reaches_the_subscriber_as_it_would_directly(stack: Stack, backend: str, mode: str) -> None:
    heard = []
    for url, prefix, uri in ((stack["direct"], "", "toy://about"),
                             (stack["gateway"], f"{backend}/", f"{backend}+toy://about")):  # fmt: skip
        async with subscribed(url, mode, uri) as (_, updates):
            await touch(url, prefix, "toy://notes/9")  # subscribed to by nobody
            await touch(url, prefix, "toy://about")
            heard.append((await updates.next(), updates.uris))
    assert heard[0] == ("toy://about", ["toy://about"])
    assert heard[1] == (f"{backend}+toy://about", [f"{backend}+toy://about"])


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_each_client_hears_only_what_it_subscribed_to(stack: Stack, mode: str) -> None:
    gateway = stack["gateway"]
    async with (
        subscribed(gateway, mode, "web+toy://notes/1") as (_, first),
        subscribed(gateway, "legacy", "web+toy://notes/2") as (_, second),
    ):
        await touch(gateway, "web/", "toy://notes/1")
        await touch(gateway, "web/", "toy://notes/2")
        assert await first.next() == "web+toy://notes/1"
        assert await second.next() == "web+toy://notes/2"
    assert (first.uris, second.uris) == (["web+toy://notes/1"], ["web+toy://notes/2"])


async def test_the_backend_holds_one_subscription_however_many_clients_want_the_resource(stack: Stack) -> None:
    gateway, uri = stack["gateway"], "toy://notes/3"
    async with subscribed(gateway, "legacy", f"web+{uri}") as (first, _):
        async with subscribed(gateway, "2026-07-28", f"web+{uri}"):
            assert await count(gateway, "web/", uri) == 1
        assert await count(gateway, "web/", uri) == 1
        await first.unsubscribe_resource(f"web+{uri}")
        assert await count(gateway, "web/", uri) == 0


async def test_a_listen_stream_that_closes_ends_its_subscriptions_at_the_backend(stack: Stack) -> None:
    gateway, uri = stack["gateway"], "toy://notes/4"
    async with subscribed(gateway, "2026-07-28", f"web+{uri}"):
        assert await count(gateway, "web/", uri) == 1
    with anyio.fail_after(WAIT):
        while await count(gateway, "web/", uri):
            await anyio.sleep(0.05)


async def test_a_subscription_outlives_a_restart_of_the_backend(stack: Stack) -> None:
    gateway = stack["gateway"]
    async with subscribed(gateway, "legacy", "local+toy://about") as (client, updates):
        with pytest.raises(MCPError):
            await client.call_tool("local/crash", {})
        wait_until(lambda: http_get(stack["ready"])[0] == 200, timeout=30)
        await touch(gateway, "local/", "toy://about")
        assert await updates.next() == "local+toy://about"


async def test_what_cannot_be_subscribed_is_refused_or_left_out_of_the_acknowledgement(stack: Stack) -> None:
    gateway = stack["gateway"]
    async with Client(gateway, mode="legacy") as client:
        with pytest.raises(MCPError) as unknown:
            await client.subscribe_resource("nobody+toy://about")
    assert unknown.value.code == types.INVALID_PARAMS
    async with Client(gateway, mode="2026-07-28") as client:
        wanted = ["nobody+toy://about", "modern+toy://about"]
        async with client.listen(resource_subscriptions=wanted) as subscription:
            assert subscription.honored.resource_subscriptions == ["modern+toy://about"]
