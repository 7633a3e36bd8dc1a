"""Resource subscriptions: which clients want to hear that a resource changed, carried to the backend that owns it,
and its updates carried back.

A 2025 client subscribes with ``resources/subscribe`` (until ``resources/unsubscribe`` or its connection ends); a
2026 client names resources on its ``subscriptions/listen`` stream (for as long as the stream is open). Either way
the gateway holds one subscription per resource at the owning backend however many clients want it
(``Upstream.watch``: ``resources/subscribe`` on a 2025 link, the filter of the link's own listen stream on a 2026
link), so the eras bridge both ways. An update from the backend goes out under the URI clients know (with the
backend's prefix) to the 2025 connections that subscribed and onto the bus for the listen streams that name it.

Subscribers are held weakly: a 2025 connection that ended without unsubscribing drops out, and the backend is told
to stop when the next update finds nobody listening.

Among replicas, the one a subscription was made through holds it at the backend; the session's notification
stream may be open on another. So an update for 2025 sessions also goes on the bus, naming them, and every other
replica tells its own connection of each (a connection without the stream drops it, so the client hears it once).
A replica that holds the same subscription itself heard the update from the backend, and skips it.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Mapping

import anyio
from mcp import types
from mcp.server.connection import Connection

from gateway.catalogue.catalog import Catalog
from gateway.catalogue.naming import expose_uri
from gateway.cluster.bus import Body, Bus
from gateway.errors import BackendTimeout, BackendUnavailable, SubscriptionsUnsupported
from gateway.routing.notify import Notifier
from gateway.upstream.backend import State, Upstream

logger = logging.getLogger(__name__)
RELEASE_TIMEOUT = 5.0
TOPIC = "resource-updated"


class Listener:
    """Stands for one 2026 listen stream among a resource's subscribers."""


class Subscriptions:
    """Every client subscription to a resource, by the URI clients know it under."""

    def __init__(self, catalog: Catalog, upstreams: Mapping[str, Upstream], notifier: Notifier, bus: Bus) -> None:
        self._catalog = catalog
        self._upstreams = upstreams
        self._notifier = notifier
        self._bus = bus
        self._subscribers: dict[str, weakref.WeakSet[object]] = {}
        bus.on(TOPIC, self._heard)

    async def add(self, subscriber: object, uri: str) -> types.EmptyResult:
        """Subscribe ``subscriber`` (a 2025 ``Connection`` or a ``Listener``) to ``uri``; the first subscriber of a
        resource subscribes the gateway at its backend, whose refusal reaches this caller unchanged."""
        route = self._catalog.resolve_uri(uri)
        upstream = self._upstreams[route.backend]
        if upstream.state is not State.READY:
            raise BackendUnavailable(upstream.name, upstream.error or upstream.state.value)
        resources = upstream.capabilities.resources if upstream.capabilities else None
        if not (resources and resources.subscribe):
            raise SubscriptionsUnsupported(upstream.name)
        subscribers = self._subscribers.get(uri)
        if not subscribers:
            await _watch(upstream, route.original)
            subscribers = self._subscribers.setdefault(uri, weakref.WeakSet())
        subscribers.add(subscriber)
        return types.EmptyResult()

    async def discard(self, subscriber: object, uris: Iterable[str]) -> types.EmptyResult:
        """Unsubscribe ``subscriber``; the last one of a resource unsubscribes the gateway at its backend."""
        for uri in uris:
            subscribers = self._subscribers.get(uri)
            if subscribers is None or subscriber not in subscribers:
                continue
            subscribers.discard(subscriber)
            if not subscribers:
                await self._unwatch(uri)
        return types.EmptyResult()

    def held_by(self, subscriber: object) -> set[str]:
        """The URIs ``subscriber`` is subscribed to."""
        return {uri for uri, subscribers in self._subscribers.items() if subscriber in subscribers}

    async def updated(self, upstream: Upstream, backend_uri: str) -> None:
        """The backend says a resource changed: tell whoever subscribed to it."""
        uri = expose_uri(upstream.config.exposed_prefix, backend_uri)
        if uri not in self._subscribers:
            return
        subscribers = list(self._subscribers[uri])
        if not subscribers:
            await self._unwatch(uri)
            return
        connections = [s for s in subscribers if isinstance(s, Connection)]
        await self._notifier.resource_updated(uri, connections)
        sessions = [c.session_id for c in connections if c.session_id is not None]
        if sessions:
            await self._bus.publish(TOPIC, {"uri": uri, "sessions": sessions})

    async def _heard(self, body: Body) -> None:
        """Another replica's update for 2025 sessions subscribed through it: tell their connections here."""
        uri, sessions = body.get("uri"), body.get("sessions")
        if not isinstance(uri, str) or not isinstance(sessions, list):
            return
        held = self._subscribers.get(uri) or ()
        found = (self._notifier.connection(i) for i in sessions if isinstance(i, str))
        await self._notifier.tell_updated(uri, [c for c in found if c is not None and c not in held])

    async def _unwatch(self, uri: str) -> None:
        """Nobody wants ``uri`` any more: stop asking its backend (best effort, bounded)."""
        self._subscribers.pop(uri, None)
        try:
            route = self._catalog.resolve_uri(uri)
        except Exception:
            return
        with anyio.move_on_after(RELEASE_TIMEOUT, shield=True):
            try:
                await self._upstreams[route.backend].unwatch(route.original)
            except Exception as exc:
                logger.info("backend %s: could not unsubscribe %s: %s", route.backend, route.original, exc)


async def _watch(upstream: Upstream, uri: str) -> None:
    try:
        await upstream.watch(uri)
    except TimeoutError:
        raise BackendTimeout(upstream.name, upstream.config.call_timeout) from None
    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
        raise BackendUnavailable(upstream.name, "the connection is closed") from None
