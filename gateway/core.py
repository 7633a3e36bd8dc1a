"""The gateway's composition root: catalogue, backend connections and notifier, with one lifecycle.

``async with Gateway(config) as gateway:`` starts a supervisor per backend, all at once, and returns when every
backend has either connected or failed its first attempt (bounded by ``start_timeout``), so serving starts with
every reachable backend listed. Nobody sees the catalogue before that, so the listings that arrive meanwhile are
merged once, at the end of the start, not batch by batch as they come (and the garbage collector runs less while
the start allocates them: ``gateway.heap``). Leaving the block cancels the supervisors, which closes every backend
session and ends stdio subprocesses (the SDK bounds each of those steps with its own timeouts), and closes the
audit log with a checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from types import TracebackType
from typing import Any

import anyio
import anyio.lowlevel

from gateway import heap
from gateway.catalogue.catalog import Catalog, Snapshot
from gateway.config import GatewayConfig
from gateway.errors import StartupError
from gateway.routing.notify import Notifier
from gateway.routing.router import Router
from gateway.routing.subscriptions import Subscriptions
from gateway.security.guard import Guard
from gateway.security.redaction import Redactor
from gateway.telemetry import metrics
from gateway.upstream.backend import State, Upstream
from gateway.upstream.transports import Connector, open_transport

logger = logging.getLogger(__name__)


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

    def __init__(self, config: GatewayConfig, connect: Connector = open_transport) -> None:
        self.config = config
        metrics.configure(config.telemetry.metrics)
        self.catalog = Catalog(config.backends, config.naming)
        self.notifier = Notifier()
        self.inflight = InFlight()
        self.upstreams = {
            b.name: Upstream(b, config, self._on_change, connect, self._on_update) for b in config.backends
        }
        self.router = Router(self.catalog, self.upstreams, config.naming)
        self.subscriptions = Subscriptions(self.catalog, self.upstreams, self.notifier)
        self.guard = Guard(config, self.catalog, self.router, self.subscriptions)
        self.redactor = Redactor(config.secret_values())
        self._running: AbstractAsyncContextManager[None]
        self._pending: dict[str, Snapshot | None] = {}
        self._merged: anyio.Event | None = None
        self._starting = False

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
                self._starting = True
                for upstream in self.upstreams.values():
                    tg.start_soon(upstream.run, name=f"backend:{upstream.name}")
                with heap.starting():
                    await self._first_attempts()
                try:
                    yield
                finally:
                    self.notifier.close()
                    tg.cancel_scope.cancel()
        finally:
            self.guard.audit.close()
            with anyio.CancelScope(shield=True):
                await self.guard.limiter.aclose()

    async def _first_attempts(self) -> None:
        """Wait (bounded) until every backend connected or failed once, then show what arrived in one merge; a
        required one that failed stops the start."""
        ordered = sorted(self.upstreams.values(), key=lambda u: not u.config.required)
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

    async def drain(self, grace: float) -> None:
        """Shutdown, first step: end the listen streams and give calls in flight up to ``grace`` seconds."""
        self.notifier.close()
        with anyio.move_on_after(grace):
            await self.inflight.idle()

    @property
    def ready(self) -> bool:
        return all(u.state is State.READY for u in self.upstreams.values())

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
        status = {
            "status": "ready" if self.ready else "degraded",
            "backends": backends,
            "conflicts": self.catalog.conflicts,
        }
        return dict(self.redactor.value(status))

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
