"""The gateway's composition root: catalogue, backend connections and notifier, with one lifecycle.

``async with Gateway(config) as gateway:`` starts a supervisor per backend, all at once, and returns when every
backend has either connected or failed its first attempt (bounded by ``start_timeout``), so serving starts with
every reachable backend listed. Nobody sees the catalogue before that, so the listings that arrive meanwhile are
merged once, at the end of the start, not batch by batch as they come (and the garbage collector runs less while
the start allocates them: ``gateway.heap``). Leaving the block cancels the supervisors, which closes every backend
session and ends stdio subprocesses (the SDK bounds each of those steps with its own timeouts), and closes the
audit log with a checkpoint.

While it runs, backends can be attached, detached and reconfigured one at a time (``gateway.operations.runtime``
decides what and when): each supervisor runs in its own cancel scope, so stopping one touches no other connection.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import anyio.to_thread

from gateway import heap
from gateway.catalogue.catalog import Catalog, Kind, Snapshot
from gateway.cluster.backend_sessions import BackendSessions
from gateway.cluster.bus import Body, Bus, bus_for
from gateway.cluster.keyring import Keyring
from gateway.cluster.store import Store, open_store
from gateway.config import BackendConfig, GatewayConfig
from gateway.errors import StartupError
from gateway.routing.notify import Notifier
from gateway.routing.resume import StateSeal
from gateway.routing.router import Router
from gateway.routing.subscriptions import Subscriptions
from gateway.security.guard import Guard
from gateway.security.redaction import Redactor
from gateway.telemetry import metrics
from gateway.telemetry.tracing import Tracing, start_tracing
from gateway.upstream.backend import State, Upstream
from gateway.upstream.transports import Connector, open_transport

logger = logging.getLogger(__name__)
# What the calls to a backend an operator switched off are answered (``-32050``).
DISABLED = "disabled by an operator"
# The bus topic of pin approvals: every pin's fingerprint, kept for replicas that start or reconnect later.
PINS = "pins"


class InFlight:
    """Counts requests being served, so a shutdown can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = anyio.Event()
        self._idle.set()

    @contextmanager
    def track(self) -> Iterator[None]:
        self.count += 1
        if self._idle.is_set():
            self._idle = anyio.Event()
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()


class Gateway:
    """Everything one running gateway owns."""

    def __init__(
        self,
        config: GatewayConfig,
        connect: Connector = open_transport,
        disabled: frozenset[str] = frozenset(),
        tracing: Tracing | None = None,
        bus: Bus | None = None,
        store: Store | None = None,
    ) -> None:
        """``disabled``: backends an operator switched off (``gateway.operations``), not connected until enabled;
        ``tracing``: a tracer of the caller's, else the one ``config.telemetry.tracing`` asks for (``None`` when
        off); ``bus``: to the other replicas (by default over ``config.redis_url``, or none for a single process);
        ``store``: the shared store to use instead of opening ``cluster.store`` (the caller closes it)."""
        self.config = config
        metrics.configure(config.telemetry.metrics)
        cluster = config.cluster
        self._owns_store = store is None and cluster.store is not None
        self.store = store or (open_store(cluster.store.get_secret_value()) if cluster.store is not None else None)
        keys = [key.get_secret_value() for key in cluster.session_keys]
        self.keyring = Keyring(keys) if keys else None
        self.catalog = Catalog(config.backends, config.naming)
        self.bus = bus_for(config.redis_url) if bus is None else bus
        self.notifier = Notifier()
        self.inflight = InFlight()
        self._connect = connect
        self.tracing = tracing or start_tracing(config.telemetry.tracing)
        self.backend_sessions = (
            BackendSessions(self.store, self.keyring) if self.store is not None and self.keyring is not None else None
        )
        self.upstreams = {
            b.name: Upstream(b, config, self._on_change, connect, self._on_update, self.tracing, self.backend_sessions)
            for b in config.backends
        }
        seal = StateSeal(self.keyring.mac_keys("request-state")) if self.keyring is not None else None
        self.router = Router(self.catalog, self.upstreams, config.naming, seal, self.store)
        self.subscriptions = Subscriptions(self.catalog, self.upstreams, self.notifier, self.bus)
        self.guard = Guard(config, self.catalog, self.router, self.subscriptions)
        self.redactor = Redactor(config.secret_values())
        self._running: AbstractAsyncContextManager[None]
        self._pending: dict[str, Snapshot | None] = {}
        self._merged: anyio.Event | None = None
        self._starting = False
        self._tg: anyio.abc.TaskGroup | None = None
        self._supervisors: dict[str, tuple[anyio.CancelScope, anyio.Event]] = {}
        self.disabled = set(disabled)
        for name in self.disabled:
            self.upstreams[name].pending.retired = self.upstreams[name].error = DISABLED
            self.upstreams[name].state = State.DOWN
        self._approved: dict[str, Any] = {}  # fingerprints approved on other replicas, for tools listed later
        self.bus.on(PINS, self._pins_approved)
        self.bus.on_heal(self._resync)

    async def __aenter__(self) -> Gateway:
        self._running = self._run()
        await self._running.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._running.__aexit__(exc_type, exc, tb)

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[None]:
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self.router.bridge.run)
                await tg.start(self.bus.run)
                self._starting = True
                self._tg = tg
                for upstream in self.upstreams.values():
                    if upstream.name not in self.disabled:
                        self._launch(upstream)
                with heap.starting():
                    await self._first_attempts()
                if (approved := await self.bus.latest(PINS)) is not None:
                    await self._pins_approved(approved)
                try:
                    yield
                finally:
                    self.notifier.close()
                    tg.cancel_scope.cancel()
        finally:
            self.guard.audit.close()
            with anyio.CancelScope(shield=True):
                await self.guard.limiter.aclose()
                if self.tracing is not None:
                    await anyio.to_thread.run_sync(self.tracing.shutdown)
                await self.bus.aclose()
                if self._owns_store and self.store is not None:
                    await self.store.aclose()

    async def _first_attempts(self) -> None:
        """Wait (bounded) until every backend connected or failed once, then show what arrived in one merge; a
        required one that failed stops the start."""
        enabled = [u for u in self.upstreams.values() if u.name not in self.disabled]
        ordered = sorted(enabled, key=lambda u: not u.config.required)
        with anyio.move_on_after(self.config.start_timeout):
            for upstream in ordered:
                await upstream.attempted.wait()
                if upstream.config.required and upstream.state is not State.READY:
                    raise StartupError(f"required backend {upstream.name!r} could not connect: {upstream.error}")
        self._starting = False
        changes, self._pending = self._pending, {}
        kinds = self.catalog.apply(changes)
        if kinds:
            await self.notifier.changed(kinds)
        for upstream in ordered:
            if upstream.config.required and upstream.state is not State.READY:
                raise StartupError(
                    f"required backend {upstream.name!r} was not ready within {self.config.start_timeout:g} s"
                )

    def _launch(self, upstream: Upstream) -> None:
        if self._tg is None:
            raise RuntimeError("backends are launched by a running gateway")
        stop, ended = anyio.CancelScope(), anyio.Event()
        self._supervisors[upstream.name] = (stop, ended)
        self._tg.start_soon(self._supervise, upstream, stop, ended, name=f"backend:{upstream.name}")

    @staticmethod
    async def _supervise(upstream: Upstream, stop: anyio.CancelScope, ended: anyio.Event) -> None:
        try:
            with stop:
                await upstream.run()
        finally:
            ended.set()

    async def attach(self, config: BackendConfig) -> Upstream:
        """Connect a backend while serving (its definition already in ``set_backends``); returns once its first
        attempt ended, at most its ``connect_timeout`` later."""
        upstream = Upstream(
            config, self.config, self._on_change, self._connect, self._on_update, self.tracing, self.backend_sessions
        )
        self.upstreams[config.name] = upstream
        self.disabled.discard(config.name)
        self.guard.set_backends([u.config for u in self.upstreams.values()])
        self._launch(upstream)
        with anyio.move_on_after(config.connect_timeout):
            await upstream.attempted.wait()
        return upstream

    async def detach(self, name: str, reason: str, grace: float) -> None:
        """Stop one backend: its calls in flight get ``grace`` seconds, then end with ``reason``; its connection
        closes and its items leave the lists. Its ``Upstream`` stays until ``forget``, so its names keep a clear
        answer meanwhile."""
        upstream = self.upstreams[name]
        await upstream.pending.retire(reason, grace)
        stop, ended = self._supervisors.pop(name)
        stop.cancel()
        with anyio.move_on_after(upstream.config.connect_timeout):
            await ended.wait()
        upstream.state, upstream.error = State.DOWN, reason
        self._pending.pop(name, None)
        kinds = self.catalog.apply({name: None})
        if kinds:
            await self.notifier.changed(kinds)

    def forget(self, name: str) -> None:
        """A detached backend is gone for good: nothing routes to it any more."""
        del self.upstreams[name]
        self.disabled.discard(name)
        self.guard.set_backends([u.config for u in self.upstreams.values()])

    async def set_backends(self, backends: tuple[BackendConfig, ...]) -> None:
        """The backends' definitions changed while serving: the configuration, the catalogue's names, the guard's
        bounds and the redacted secrets follow; clients hear of any list that changed."""
        self.config = self.config.model_copy(update={"backends": backends})
        for backend in backends:
            upstream = self.upstreams.get(backend.name)
            if upstream is not None:
                upstream.config = backend
        self.guard.set_backends([u.config for u in self.upstreams.values()])
        self.redactor = Redactor(self.config.secret_values())
        kinds = self.catalog.set_backends(backends)
        if kinds:
            await self.notifier.changed(kinds)

    async def drain(self, grace: float) -> None:
        """Shutdown, first step: end the listen streams and give calls in flight up to ``grace`` seconds."""
        self.notifier.close()
        with anyio.move_on_after(grace):
            await self.inflight.idle()

    @property
    def ready(self) -> bool:
        return all(u.state is State.READY for u in self.upstreams.values() if u.name not in self.disabled)

    def status(self) -> dict[str, Any]:
        """What ``/readyz`` and the CLI report: each backend's state, tool count and last error (secrets redacted)."""
        backends = []
        for upstream in self.upstreams.values():
            cfg = upstream.config
            entry: dict[str, Any] = {
                "name": upstream.name,
                "prefix": cfg.exposed_prefix,
                "transport": cfg.transport.value,
                **self.catalog.counts(upstream.name),
                **upstream.status(),
            }
            if upstream.state is not State.READY:
                entry["tools"] = 0
            backends.append(entry)
        status: dict[str, Any] = {
            "status": "ready" if self.ready else "degraded",
            "backends": backends,
            "conflicts": self.catalog.conflicts,
        }
        store = self.bus.status()
        if store is not None:
            status["store"] = store
        return dict(self.redactor.value(status))

    async def approve_tools(self, names: list[str]) -> list[str]:
        """Pin the current definition of the named withheld tools, and tell clients their tool list changed."""
        approved = self.guard.pins.approve(names)
        if approved:
            await self.notifier.changed({Kind.TOOLS})
            await self.bus.publish(PINS, {"tools": self.guard.pins.fingerprints()}, keep=True)
        return approved

    async def _pins_approved(self, body: Body) -> None:
        """Another replica approved tools: pin each whose definition here is the one approved there."""
        tools = body.get("tools")
        if not isinstance(tools, dict):
            return
        self._approved = tools
        if self.guard.pins.adopt(tools):
            await self.notifier.changed({Kind.TOOLS})

    async def _resync(self) -> None:
        """Back in touch with the other replicas: what they announced meanwhile was lost, so clients list again."""
        await self.notifier.changed(set(Kind))

    async def _on_update(self, upstream: Upstream, uri: str) -> None:
        await self.subscriptions.updated(upstream, uri)

    async def _on_change(self, upstream: Upstream, snapshot: Snapshot | None) -> None:
        """Batch changes that arrive together into one catalogue merge; returns once this change is merged.

        The first change of a batch yields one event-loop turn, so every backend whose listing arrived meanwhile
        joins the batch; while a merge runs, later arrivals queue up and form the next batch. During the start
        changes only queue up: ``_first_attempts`` merges them all at once.
        """
        if snapshot is not None:
            self.guard.pins.observe(upstream.config.exposed_prefix, snapshot.tools)
            if self._approved:
                self.guard.pins.adopt(self._approved)
        self._pending[upstream.name] = snapshot
        if self._starting:
            return
        if self._merged is not None:
            await self._merged.wait()
            return
        merged = self._merged = anyio.Event()
        try:
            await anyio.lowlevel.checkpoint()
        finally:
            changes, self._pending, self._merged = self._pending, {}, None
            kinds = self.catalog.apply(changes)
            merged.set()
        if kinds:
            await self.notifier.changed(kinds)
