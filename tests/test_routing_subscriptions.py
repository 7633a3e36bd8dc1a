"""``Subscriptions``: one subscription per resource at its backend however many clients want it, refusals for
what cannot be subscribed, and an update carried to the 2025 connections subscribed under the prefixed URI."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

import anyio
import pytest
from mcp import MCPError, types
from mcp.server.connection import Connection
from mcp.types import INVALID_PARAMS, METHOD_NOT_FOUND

from gateway.catalogue.catalog import Catalog, Snapshot
from gateway.cluster.bus import Bus
from gateway.config import BackendConfig, NamingConfig
from gateway.errors import BackendTimeout, BackendUnavailable, SubscriptionsUnsupported, UnknownTarget
from gateway.routing.subscriptions import Listener, Subscriptions
from gateway.rpc_errors import to_mcp_error
from gateway.upstream.backend import State

pytestmark = pytest.mark.anyio
URI, EXPOSED = "toy://notes/1", "ops+toy://notes/1"


class Subscriber(Connection):
    """Stands for a 2025 client's connection (only its identity matters here: a session of a single process)."""

    def __init__(self) -> None:
        self.session_id = None


@dataclass(eq=False)
class Backend:
    """What ``Subscriptions`` reads of an ``Upstream``, with the subscriptions asked of it."""

    config: BackendConfig
    state: State = State.READY
    error: str | None = None
    capabilities: types.ServerCapabilities | None = field(
        default_factory=lambda: types.ServerCapabilities(resources=types.ResourcesCapability(subscribe=True))
    )
    watched: list[str] = field(default_factory=list)
    unwatched: list[str] = field(default_factory=list)
    failure: BaseException | None = None

    @property
    def name(self) -> str:
        return self.config.name

    async def watch(self, uri: str) -> None:
        if self.failure is not None:
            raise self.failure
        self.watched.append(uri)

    async def unwatch(self, uri: str) -> None:
        self.unwatched.append(uri)


class Notifier:
    def __init__(self) -> None:
        self.updates: list[tuple[str, list[Connection]]] = []

    async def resource_updated(self, uri: str, connections: list[Connection]) -> None:
        self.updates.append((uri, connections))


def subscriptions() -> tuple[Subscriptions, Backend, Notifier]:
    config = BackendConfig(name="ops", url="http://ops.invalid/mcp")
    catalog = Catalog([config], NamingConfig())
    catalog.show("ops", Snapshot(resources=(types.Resource(uri=URI, name="note"),)))
    backend, notifier = Backend(config), Notifier()
    return Subscriptions(catalog, {"ops": backend}, notifier, Bus()), backend, notifier  # type: ignore[dict-item,arg-type]


async def test_the_backend_holds_one_subscription_until_the_last_subscriber_leaves() -> None:
    subs, backend, _ = subscriptions()
    first, second = Subscriber(), Listener()
    await subs.add(first, EXPOSED)
    await subs.add(second, EXPOSED)
    assert backend.watched == [URI]
    await subs.discard(first, [EXPOSED])
    await subs.discard(first, [EXPOSED])  # twice, or never subscribed: nothing happens
    await subs.discard(Listener(), [EXPOSED, "ops+toy://other"])
    assert backend.unwatched == []
    await subs.discard(second, [EXPOSED])
    assert backend.unwatched == [URI]


async def test_an_update_reaches_the_2025_connections_under_the_prefixed_uri_and_the_bus_for_the_rest() -> None:
    subs, backend, notifier = subscriptions()
    connection, listener = Subscriber(), Listener()
    await subs.add(connection, EXPOSED)
    await subs.add(listener, EXPOSED)
    await subs.updated(backend, URI)
    await subs.updated(backend, "toy://notes/2")  # nobody subscribed to it
    assert notifier.updates == [(EXPOSED, [connection])]


async def test_a_connection_gone_without_unsubscribing_is_dropped_and_the_backend_told_at_the_next_update() -> None:
    subs, backend, notifier = subscriptions()
    await subs.add(Subscriber(), EXPOSED)
    gc.collect()
    await subs.updated(backend, URI)
    assert (notifier.updates, backend.unwatched) == ([], [URI])


async def test_a_backend_not_ready_or_without_subscriptions_is_refused() -> None:
    subs, backend, _ = subscriptions()
    backend.state, backend.error = State.DOWN, "connection refused"
    with pytest.raises(BackendUnavailable):
        await subs.add(Subscriber(), EXPOSED)
    backend.state, backend.capabilities = State.READY, types.ServerCapabilities(resources=types.ResourcesCapability())
    with pytest.raises(SubscriptionsUnsupported) as unsupported:
        await subs.add(Subscriber(), EXPOSED)
    assert to_mcp_error(unsupported.value).code == METHOD_NOT_FOUND
    assert backend.watched == []


@pytest.mark.parametrize(
    ("failure", "raised"),
    [
        (TimeoutError(), BackendTimeout),
        (anyio.ClosedResourceError(), BackendUnavailable),
        (MCPError(-32099, "backend says no"), MCPError),
    ],
)
async def test_a_failed_subscription_at_the_backend_subscribes_nobody(
    failure: BaseException, raised: type[Exception]
) -> None:
    subs, backend, notifier = subscriptions()
    backend.failure = failure
    connection = Subscriber()
    with pytest.raises(raised) as refused:
        await subs.add(connection, EXPOSED)
    if isinstance(failure, MCPError):
        assert refused.value is failure  # the backend's refusal reaches the caller unchanged
    backend.failure = None
    await subs.add(connection, EXPOSED)  # the next subscriber asks the backend again
    assert backend.watched == [URI]
    await subs.updated(backend, URI)
    assert notifier.updates == [(EXPOSED, [connection])]


async def test_an_unknown_uri_is_unknown() -> None:
    subs, backend, _ = subscriptions()
    with pytest.raises(UnknownTarget) as unknown:
        await subs.add(Subscriber(), "zz+toy://notes/1")
    assert to_mcp_error(unknown.value).code == INVALID_PARAMS
    assert backend.watched == []
