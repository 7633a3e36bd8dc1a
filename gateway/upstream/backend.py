"""One backend behind one narrow interface: connect, list, call, state. Transport-agnostic.

An ``Upstream`` holds a single long-lived client connection to its backend, shared by every downstream client
(a ``session: per_client`` backend also gets one connection per downstream session for requests: see
``gateway.upstream.client_sessions``).
Its supervisor task (``run``) owns that connection: it connects, walks every page of the backend's lists,
re-lists when the backend says a list changed, probes the connection every ``health_interval``, and reconnects
with exponential backoff and jitter when the connection ends (stream closed, process exited, session expired,
probe failed), or at once when an operator asks (``reconnect``). While a URL backend refuses connections, a TCP
connect every ``CHECK_INTERVAL`` watches for it to listen again and cuts the backoff short when it does: back in
service a moment after the backend is, with no handshake sent to a backend that is down. Requests from any task go
through ``gateway.upstream.calls``, which reads the state kept here.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.abc
from mcp import Client, types
from mcp.client.session import IncomingMessage
from mcp.shared.subscriptions import ResourceUpdated
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

from gateway.catalogue.catalog import Snapshot
from gateway.cluster.backend_sessions import BackendSessions
from gateway.config import BackendConfig, GatewayConfig
from gateway.telemetry import metrics
from gateway.telemetry.stats import CallStats
from gateway.telemetry.tracing import Tracing
from gateway.upstream import looptime
from gateway.upstream.backchannel import BackChannel
from gateway.upstream.breaker import Breakers, CircuitBreaker
from gateway.upstream.client_sessions import ClientSessions
from gateway.upstream.exchange import SdkLink
from gateway.upstream.forward import Forwarder
from gateway.upstream.link import UpstreamLink
from gateway.upstream.listing import capabilities, list_all
from gateway.upstream.negotiated import Negotiated
from gateway.upstream.pending import Pending
from gateway.upstream.transports import Connector, TransportHooks, open_client, open_transport, reachable

logger = logging.getLogger(__name__)
OnChange = Callable[["Upstream", Snapshot | None], Awaitable[None]]
OnUpdate = Callable[["Upstream", str], Awaitable[None]]
ResultT = TypeVar("ResultT", bound=BaseModel)
STDERR_LINES = 20
# Seconds between the TCP checks of a backend that refuses connections.
CHECK_INTERVAL = 0.25
_LIST_CHANGED = (
    types.ToolListChangedNotification,
    types.PromptListChangedNotification,
    types.ResourceListChangedNotification,
)


class State(StrEnum):
    CONNECTING = "connecting"
    READY = "ready"
    DOWN = "down"


class ConnectionLost(Exception):
    """The backend's connection ended; the supervisor reconnects."""


class Upstream:
    """A supervised connection to one backend; requests go through ``gateway.upstream.calls``."""

    def __init__(
        self,
        config: BackendConfig,
        settings: GatewayConfig,
        on_change: OnChange,
        connect: Connector = open_transport,
        on_update: OnUpdate | None = None,
        tracing: Tracing | None = None,
        shared: BackendSessions | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.tracing = tracing
        self.state = State.CONNECTING
        self.error: str | None = None
        self.protocol_version: str | None = None
        self.capabilities: types.ServerCapabilities | None = None
        self.client: Client | None = None
        self.tools: dict[str, types.Tool] = {}
        self.breaker = CircuitBreaker(config.breaker_threshold, config.breaker_cooldown)
        # What fails inside one call's exchange counts per tool (``gateway.upstream.calls``), not against the link.
        self.call_breakers = Breakers(config.breaker_threshold, config.breaker_cooldown)
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_LINES)
        self.stats = CallStats()  # its tool calls, recorded by ``gateway.upstream.calls``
        self.attempted = anyio.Event()
        self.ready = anyio.Event()
        self.settings = settings
        self._on_change = on_change
        self._on_update = on_update
        self._connect = connect
        self.watched: set[str] = set()
        self._refilter = anyio.Event()
        self._filtered: list[anyio.Event] = []
        self._attempt = 0
        self._wake = anyio.Event()
        self._dirty = False
        self._suspect = False
        self._next_probe = anyio.Event()  # set when the next probe to start has passed its verdict
        self._lost: str | None = None
        self._busy = anyio.CancelScope()
        self._pausing = anyio.CancelScope()
        self._again = False  # an operator asked to reconnect: no backoff this once
        per_client = config.session == "per_client"
        self.sessions = ClientSessions(config, connect, self._on_stderr, shared) if per_client else None
        self.forwarder: Forwarder | None = None  # the raw path's, while the shared connection is over HTTP
        self.link: UpstreamLink | None = None  # how requests go over the shared connection while it is ready
        self.pending = Pending(config.name)

    # -- supervision -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the backend connected (and host its per-client sessions, if it has them) until cancelled."""
        async with anyio.create_task_group() as tg:
            if self.sessions is not None:
                await tg.start(self.sessions.run)
            await self._supervise()

    async def _supervise(self) -> None:
        delay = self.settings.reconnect_min
        while True:
            started = time.monotonic()
            try:
                await self._connection(started)
            except Exception as exc:
                self._mark_down(_describe(exc))
            if self.client is not None or self.tools:
                delay = self.settings.reconnect_min
            self.client, self.tools, self.forwarder, self.link = None, {}, None, None
            await self._on_change(self, None)
            self.attempted.set()
            with anyio.CancelScope() as self._pausing:
                if not self._again:
                    await self._pause(delay * random.uniform(0.8, 1.2))
            self._again = False
            delay = min(delay * 2, self.settings.reconnect_max)

    async def _pause(self, seconds: float) -> None:
        """The backoff before the next full attempt, ended early when a backend that refused connections takes one.

        Only that change is news: a backend that takes connections but fails the attempt waits out the backoff.
        """
        with anyio.move_on_after(seconds):
            was = await reachable(self.config)
            if was is None:
                await anyio.sleep_forever()
            while True:
                await anyio.sleep(CHECK_INTERVAL)
                now = await reachable(self.config)
                if now and not was:
                    return
                was = now

    def _mark_down(self, reason: str) -> None:
        if self.state is not State.DOWN or reason != self.error:
            logger.warning("backend %s (%s) down: %s", self.name, self.config.transport.value, reason)
        self.state, self.error = State.DOWN, reason
        if self.ready.is_set():
            self.ready = anyio.Event()
        self._judged()

    async def _connection(self, started: float) -> None:
        """Connect, publish the listing, then serve until the connection ends."""
        if self.state is not State.DOWN:
            self.state = State.CONNECTING
        self._dirty, self._suspect, self._lost = False, False, None
        self._attempt += 1
        if self._attempt > 1:
            metrics.reconnect(self.name)
        self.forwarder = None
        hooks = TransportHooks(
            on_eof=self._eof_hook(self._attempt), on_stderr=self._on_stderr, on_forwarder=self._use_forwarder
        )
        # The deadline covers connecting and listing only; the scope encloses the client so they unwind in order.
        with anyio.CancelScope(deadline=anyio.current_time() + self.config.connect_timeout) as scope:
            async with AsyncExitStack() as stack:
                options = {"message_handler": self._on_message, **BackChannel().callbacks()}
                client = await open_client(self.config, self._connect, stack, hooks, **options)
                self.capabilities = await capabilities(client)
                snapshot = await self._list_all(client)
                scope.deadline = math.inf
                await self._serve(client, snapshot, time.monotonic() - started)
        if scope.cancelled_caught:
            raise TimeoutError(f"no answer within {self.config.connect_timeout:g} s")

    async def _serve(self, client: Client, snapshot: Snapshot, elapsed: float) -> None:
        self.client = client
        self.protocol_version = client.protocol_version
        self._listed(snapshot)
        self.link = self.forwarder or SdkLink(client)
        self.state, self.error = State.READY, None
        self.breaker.reset()
        self.call_breakers.reset()
        logger.info(
            "backend %s (%s) ready: %s, %d tools, %.2f s",
            self.name, self.config.transport.value, self.protocol_version, len(snapshot.tools), elapsed,
        )  # fmt: skip
        await self._on_change(self, snapshot)
        self.ready.set()
        self._judged()
        self.attempted.set()
        async with anyio.create_task_group() as tg:
            if not self.modern:
                tg.start_soon(self._resubscribe, client)
            elif self._has_list_changed() or self._has_subscribe():
                tg.start_soon(self._listen, client)
            tg.start_soon(self._probe_periodically)
            await self._watch(client)

    async def _watch(self, client: Client) -> None:
        """Probe and re-list on request; a lost connection interrupts whatever is under way."""
        while self._lost is None:
            with anyio.CancelScope() as self._busy:
                await self._wake.wait()
                self._wake = anyio.Event()
                if self._suspect:
                    self._suspect = False
                    probed, self._next_probe = self._next_probe, anyio.Event()
                    try:
                        await self._probe(client)
                    finally:
                        probed.set()
                if self._dirty:
                    self._dirty = False
                    snapshot = await looptime.within(self.config.connect_timeout, partial(self._list_all, client))
                    self._listed(snapshot)
                    await self._on_change(self, snapshot)
        raise ConnectionLost(self._lost)

    def _listed(self, snapshot: Snapshot) -> None:
        """The backend's tools as last listed; the raw path stamps its calls for them (``Mcp-Param-*`` headers)."""
        self.tools = {t.name: t for t in snapshot.tools}
        if self.forwarder is not None and self.protocol_version is not None:
            self.forwarder.bind(Negotiated.at(self.protocol_version, snapshot.tools))

    async def _probe_periodically(self) -> None:
        while True:
            await anyio.sleep(self.settings.health_interval)
            self.suspect()

    async def _probe(self, client: Client) -> None:
        """A cheap request proves the connection; a failed probe ends it (and counts against the breaker).

        Its deadline counts only time the gateway's loop was free to read the answer (``gateway.upstream.looptime``): a
        probe that the gateway itself starved passes no verdict.
        """
        try:
            await looptime.within(self.config.connect_timeout, partial(self._ping, client))
        except looptime.Starved as exc:
            logger.warning("backend %s: health probe inconclusive: %s", self.name, exc)
        except Exception as exc:
            # Down at once: closing the connection to a backend that stopped answering can take a while.
            self.breaker.failure()
            self.lose(f"health probe failed: {_describe(exc)}")

    async def _ping(self, client: Client) -> None:
        if self.modern:
            await client.session.send_request(types.DiscoverRequest(), types.DiscoverResult)
        else:
            await client.session.send_ping()

    async def _listen(self, client: Client) -> None:
        """2026 links: one listen stream at a time, replaced (the new one acknowledged before the old one ends) when
        the resources watched change, or after the backend ended it."""
        async with anyio.create_task_group() as tg:
            current: anyio.CancelScope | None = None
            while True:
                self._refilter = anyio.Event()
                waiting, self._filtered = self._filtered, []
                scope = await tg.start(self._listen_once, client)
                if current is not None:
                    current.cancel()
                current = scope
                for done in waiting:
                    done.set()
                await self._refilter.wait()

    async def _listen_once(self, client: Client, *, task_status: anyio.abc.TaskStatus[anyio.CancelScope]) -> None:
        caps = self.capabilities
        wanted: dict[str, Any] = {
            "tools_list_changed": bool(caps and caps.tools and caps.tools.list_changed),
            "prompts_list_changed": bool(caps and caps.prompts and caps.prompts.list_changed),
            "resources_list_changed": bool(caps and caps.resources and caps.resources.list_changed),
            "resource_subscriptions": sorted(self.watched),
        }
        with anyio.CancelScope() as scope:
            if not any(wanted.values()):
                task_status.started(scope)
                await anyio.sleep_forever()
            async with client.listen(**wanted) as subscription:
                task_status.started(scope)
                async for event in subscription:
                    if not isinstance(event, ResourceUpdated):
                        self._signal(dirty=True)
            # The backend ended the stream: make sure it is alive, then listen again.
            self.suspect()
            await anyio.sleep(self.settings.reconnect_min)
            self._refilter.set()

    async def watch(self, uri: str) -> None:
        """Ask the backend for updates of ``uri`` (again after every reconnect, until ``unwatch``); they arrive
        through ``on_update``. Raises what the backend answers, or ``TimeoutError``."""
        self.watched.add(uri)
        try:
            await self._subscription(types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri)))
        except BaseException:
            self.watched.discard(uri)
            raise

    async def unwatch(self, uri: str) -> None:
        self.watched.discard(uri)
        await self._subscription(types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=uri)))

    async def _subscription(self, request: types.SubscribeRequest | types.UnsubscribeRequest) -> None:
        client = self.client
        if client is None or self.state is not State.READY:
            return
        with anyio.fail_after(self.config.call_timeout):
            if self.modern:
                done = anyio.Event()
                self._filtered.append(done)
                self._refilter.set()
                await done.wait()
            else:
                await client.session.send_request(request, types.EmptyResult)

    async def _resubscribe(self, client: Client) -> None:
        """2025 links: a new connection carries no subscriptions; renew what clients still want."""
        for uri in sorted(self.watched):
            try:
                with anyio.fail_after(self.config.call_timeout):
                    request = types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri))
                    await client.session.send_request(request, types.EmptyResult)
            except Exception as exc:
                logger.warning("backend %s: could not renew the subscription to %s: %s", self.name, uri, exc)

    def _has_list_changed(self) -> bool:
        caps = self.capabilities
        return bool(caps and any(c and c.list_changed for c in (caps.tools, caps.prompts, caps.resources)))

    def _has_subscribe(self) -> bool:
        caps = self.capabilities
        return bool(caps and caps.resources and caps.resources.subscribe)

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, _LIST_CHANGED):
            self._signal(dirty=True)
        elif isinstance(message, types.ResourceUpdatedNotification):
            if self._on_update is not None:
                await self._on_update(self, str(message.params.uri))
        elif isinstance(message, Exception):
            logger.debug("backend %s transport fault: %r", self.name, message)
            self.suspect()

    def _eof_hook(self, attempt: int) -> Callable[[], None]:
        def on_eof() -> None:
            if attempt == self._attempt:
                self.lose("the backend closed the connection")

        return on_eof

    def _use_forwarder(self, forwarder: Forwarder) -> None:
        forwarder.on_session_notification = self._on_raw_notification
        self.forwarder = forwarder

    async def _on_raw_notification(self, message: dict[str, Any]) -> None:
        """A notification about the backend that rode on a raw call's stream, handled as the SDK's would be."""
        params = message.get("params")
        uri = params.get("uri") if isinstance(params, dict) else None
        if message.get("method") != "notifications/resources/updated":
            self._signal(dirty=True)
        elif isinstance(uri, str) and self._on_update is not None:
            await self._on_update(self, uri)

    def _on_stderr(self, line: str) -> None:
        """Called on the stderr reader's thread: only thread-safe work here."""
        self.stderr_tail.append(line)
        logger.info("backend %s stderr: %s", self.name, line)

    @property
    def modern(self) -> bool:
        """Whether the link speaks 2026-07-28."""
        return self.protocol_version in MODERN_PROTOCOL_VERSIONS

    def suspect(self) -> None:
        """Something looked wrong: probe the connection now."""
        self._signal(suspect=True)

    async def checked(self) -> None:
        """Probe the connection now and return once that probe has passed its verdict (or the connection is gone):
        a request lost in flight is repeated only on a connection known to work, not on one to a backend that
        has just restarted without our session."""
        if self.state is not State.READY:
            return
        probed = self._next_probe
        self.suspect()
        with anyio.move_on_after(looptime.CAP * self.config.connect_timeout):
            await probed.wait()

    def _judged(self) -> None:
        """The link has been judged (down, or connected afresh): nobody need wait for the next probe."""
        self._next_probe.set()
        self._next_probe = anyio.Event()

    def lose(self, reason: str, client: Client | None = None) -> None:
        """The connection is gone: refuse new requests at once and let the supervisor reconnect.

        ``client`` names the connection the failure came from; a late failure from an earlier connection must not
        take down the one that replaced it.
        """
        if client is not None and client is not self.client:
            return
        if self.state is State.READY:
            self._mark_down(reason)
        self._lost = reason
        self._busy.cancel()

    def reconnect(self) -> None:
        """Drop the connection and open a new one at once, with no backoff (an operator asked for it)."""
        self._again = True
        self._pausing.cancel()
        self.lose("reconnecting, as an operator asked")

    def _signal(self, *, dirty: bool = False, suspect: bool = False) -> None:
        self._dirty |= dirty
        self._suspect |= suspect
        self._wake.set()

    async def _list_all(self, client: Client) -> Snapshot:
        return await list_all(client, self.capabilities or types.ServerCapabilities())

    def status(self) -> dict[str, Any]:
        """State, protocol, breakers (the link's, and those of calls not closed) and, while not ready, the reason
        and the last stderr lines."""
        entry: dict[str, Any] = {"state": self.state.value, "breaker": self.breaker.state.value}
        if opened := self.call_breakers.states():
            entry["call_breakers"] = {key: state.value for key, state in opened.items()}
        if self.protocol_version:
            entry["protocol"] = self.protocol_version
        if self.sessions is not None:
            entry["sessions"] = self.sessions.count
        if self.state is not State.READY and self.error:
            entry["error"] = self.error
            if self.stderr_tail:
                entry["stderr"] = list(self.stderr_tail)[-5:]
        return entry


def _describe(exc: BaseException) -> str:
    """A one-line reason for status output, digging the real cause out of task-group wrappers."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
