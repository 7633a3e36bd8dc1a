"""Per-client backend sessions (``session: per_client``): each downstream session gets its own upstream one.

A session is keyed by the principal and the downstream session the gateway issued to it (``Caller.session_key``),
never by a header alone: a request reaches only backend sessions its own principal opened in its own session.

For stateful servers, and to keep a backend's requests to its client on the right connection, a backend can be
given one connection per downstream session instead of the shared one. A session is opened on first use, closed
when the downstream session ends (``end``) or has been idle for ``session_idle_timeout``, and at most
``max_sessions`` exist: a new one replaces the least recently used idle one, and when every one is busy the call
is refused. A request without a downstream session (a 2026-07-28 stateless client) gets a connection of its own
for that request alone; at most ``max_sessions`` of those are open at once (each may be a stdio process), and a
request beyond them is refused rather than queued.

The shared connection (``Upstream``) still lists the backend, probes it and keeps its breaker; these connections
only carry requests. One that breaks is dropped, and the next request opens a fresh one.

With a shared store (``BackendSessions``), a streamable-HTTP backend's session outlives the replica that opened it:
its record lets another replica serving the same downstream session join it (no ``initialize``, no GET stream), so
the client's state at the backend follows it; a backend that forgot it gets a fresh one, with a warning. Closing a
connection here (idle here, evicted, broken, shut down) then leaves the backend session to the others; it ends
with its downstream session, or once idle on every replica, with one DELETE from whichever replica claims it.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace

import anyio
from anyio.abc import TaskGroup, TaskStatus
from mcp import Client, MCPError

from gateway.cluster.backend_sessions import BackendRecord, BackendSessions
from gateway.config import BackendConfig
from gateway.config import Transport as Kind
from gateway.errors import BackendUnavailable, StoreUnavailable
from gateway.sdk import number_requests
from gateway.upstream.backchannel import BackChannel
from gateway.upstream.sink import Sink
from gateway.upstream.transports import BackendSession, Connector, TransportHooks, end_session, open_client

logger = logging.getLogger(__name__)
Key = tuple[str, str]
NO_CALL = "no call of this client is in flight on this backend session to answer the request"


@dataclass(eq=False)
class _Session:
    key: Key | None
    client: Client | None = None
    error: str | None = None
    busy: int = 0
    channel: BackChannel = field(default_factory=lambda: BackChannel(NO_CALL))
    last_used: float = field(default_factory=anyio.current_time)
    opened: anyio.Event = field(default_factory=anyio.Event)
    close: anyio.Event = field(default_factory=anyio.Event)
    backend: BackendSession | None = None  # the backend's own session, while other replicas may share it
    version: str = ""


@dataclass(frozen=True)
class Lease:
    """A session's client for one request; ``discard`` drops a session found broken."""

    client: Client
    discard: Callable[[], None]


class ClientSessions:
    """The per-client sessions of one backend, owned by a task group that ``run`` provides."""

    def __init__(
        self,
        config: BackendConfig,
        connect: Connector,
        on_stderr: Callable[[str], None],
        shared: BackendSessions | None = None,
    ) -> None:
        """``shared``: the store's records of backend sessions, kept for a streamable-HTTP backend (one with
        ``forward_token`` excepted: its sessions belong to each request's credential)."""
        self.config = config
        self._connect = connect
        self._on_stderr = on_stderr
        http = config.transport is Kind.STREAMABLE_HTTP and not config.forward_token
        self._shared = shared if http else None
        self._sessions: dict[Key, _Session] = {}
        self._one_off = 0
        self._tg: TaskGroup | None = None

    @property
    def count(self) -> int:
        return len(self._sessions)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Host the sessions and close idle ones, until cancelled (which closes them all)."""
        async with anyio.create_task_group() as self._tg:
            task_status.started()
            while True:
                await anyio.sleep(min(self.config.session_idle_timeout / 2, 30.0))
                self._expire()

    @asynccontextmanager
    async def lease(self, key: Key | None, sink: Sink | None = None) -> AsyncIterator[Lease]:
        """The client for ``key``'s session, opened on first use; ``None`` gets a connection for this use only.

        While the lease lasts, the backend's requests on that connection go to ``sink``.
        """
        session = self._get(key) if key is not None else self._open_one_off()
        session.busy += 1
        try:
            with anyio.move_on_after(self.config.connect_timeout):
                await session.opened.wait()
            if session.client is None:
                self._drop(session)
                raise BackendUnavailable(self.config.name, session.error or "no session within the connect timeout")
            if key is not None and session.backend is not None and self._tg is not None:
                self._tg.start_soon(self._used, key)
            with session.channel.attached(sink):
                yield Lease(session.client, lambda: self._drop(session))
        finally:
            session.busy -= 1
            session.last_used = anyio.current_time()
            if key is None:
                self._one_off -= 1
                session.close.set()

    def end(self, downstream: str) -> None:
        """The downstream session ended (the SDK let only its owner end it): close its backend session."""
        ending = [s for key, s in self._sessions.items() if key[1] == downstream]
        for session in ending:
            self._drop(session)
        if self._shared is not None and self._tg is not None:
            held = {s.backend.id: s.version for s in ending if s.backend is not None and s.backend.id is not None}
            self._tg.start_soon(self._end_shared, downstream, held)

    def _get(self, key: Key) -> _Session:
        session = self._sessions.get(key)
        if session is None:
            if len(self._sessions) >= self.config.max_sessions:
                self._evict()
            session = self._sessions[key] = self._open(key)
        return session

    def _evict(self) -> None:
        idle = [s for s in self._sessions.values() if s.busy == 0]
        if not idle:
            raise BackendUnavailable(self.config.name, f"all {self.config.max_sessions} client sessions are busy")
        self._drop(min(idle, key=lambda s: s.last_used))

    def _open_one_off(self) -> _Session:
        """A connection for one sessionless request; at most ``max_sessions`` at once, as each may be a process."""
        if self._one_off >= self.config.max_sessions:
            limit = self.config.max_sessions
            raise BackendUnavailable(self.config.name, f"all {limit} connections for sessionless requests are busy")
        session = self._open(None)
        self._one_off += 1
        return session

    def _expire(self) -> None:
        cutoff = anyio.current_time() - self.config.session_idle_timeout
        for session in [s for s in self._sessions.values() if s.busy == 0 and s.last_used < cutoff]:
            self._drop(session)
            if session.key is not None and session.backend is not None and self._tg is not None:
                self._tg.start_soon(self._expired, session.key[1], session.backend, session.version)

    def _drop(self, session: _Session) -> None:
        if session.key is not None and self._sessions.get(session.key) is session:
            del self._sessions[session.key]
        session.close.set()

    def _open(self, key: Key | None) -> _Session:
        if self._tg is None:
            raise BackendUnavailable(self.config.name, "not running")
        session = _Session(key)
        self._tg.start_soon(self._hold, session, name=f"session:{self.config.name}")
        return session

    async def _hold(self, session: _Session) -> None:
        """Open the connection, keep it until the session closes, then close it (bounded by the SDK's timeouts)."""
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + self.config.connect_timeout) as scope:
                async with AsyncExitStack() as stack:
                    client = await self._client(session, stack)
                    scope.deadline = math.inf
                    session.client = client
                    session.opened.set()
                    await session.close.wait()
            if scope.cancelled_caught:
                session.error = f"no answer within {self.config.connect_timeout:g} s"
        except Exception as exc:
            session.error = f"{type(exc).__name__}: {exc}"
            logger.warning("backend %s: a client session failed: %s", self.config.name, session.error)
        finally:
            session.client = None
            session.opened.set()
            self._drop(session)

    async def _client(self, session: _Session, stack: AsyncExitStack) -> Client:
        """The session's connection: joined to the backend session another replica keeps for the same downstream
        session, if the backend still knows it; else a fresh one, recorded for the others."""
        hooks = TransportHooks(on_eof=lambda: self._drop(session), on_stderr=self._on_stderr)
        callbacks = session.channel.callbacks()
        if self._shared is None or session.key is None:
            return await open_client(self.config, self._connect, stack, hooks, **callbacks)
        record = await self._find(session.key)
        if record is not None:
            client = await self._join(session, record, stack, hooks)
            if client is not None:
                return client
        session.backend = BackendSession()
        hooks = replace(hooks, session=session.backend)
        client = await open_client(self.config, self._connect, stack, hooks, **callbacks)
        await self._keep(session, client)
        return client

    async def _join(
        self, session: _Session, record: BackendRecord, stack: AsyncExitStack, hooks: TransportHooks
    ) -> Client | None:
        """Join the recorded backend session, checked with a ``ping``; None if the backend answers 404 there."""
        backend = BackendSession(id=record.session_id, joined=record.result)
        joined = False

        def on_eof() -> None:
            if joined:
                hooks.on_eof()

        async with AsyncExitStack() as attempt:
            watched = replace(hooks, on_eof=on_eof, session=backend)
            client = await open_client(self.config, self._connect, attempt, watched, **session.channel.callbacks())
            number_requests(client, f"{secrets.token_hex(6)}-")  # apart from the opener's ids and other joiners'
            try:
                await client.session.send_ping()
            except MCPError:
                if not backend.forgotten:
                    raise
            if backend.forgotten:
                logger.warning(
                    "backend %s no longer knows a client session another replica opened; opening a new one "
                    "(what the backend kept in it is lost)",
                    self.config.name,
                )
                return None
            joined = True
            session.backend, session.version = backend, record.version
            await stack.enter_async_context(attempt.pop_all())
            return client

    async def _find(self, key: Key) -> BackendRecord | None:
        assert self._shared is not None
        try:
            record = await self._shared.find(self.config.name, key[1], self.config.session_idle_timeout)
        except StoreUnavailable as exc:
            logger.warning(
                "backend %s: opening a client session without looking for one elsewhere: %s", self.config.name, exc
            )
            return None
        if record is None or record.principal != key[0] or record.url != self.config.url:
            return None
        return record

    async def _keep(self, session: _Session, client: Client) -> None:
        """Record a fresh backend session for the other replicas: its id and the backend's ``initialize`` result."""
        assert self._shared is not None and session.key is not None and session.backend is not None
        result = client.session.initialize_result
        if session.backend.id is None or result is None or self.config.url is None:
            session.backend = None  # a 2026 link: stateless, nothing to share
            return
        session.version = result.protocol_version
        principal, downstream = session.key
        answer = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        record = BackendRecord(principal, self.config.url, session.backend.id, answer)
        try:
            await self._shared.keep(self.config.name, downstream, record, self.config.session_idle_timeout)
        except StoreUnavailable as exc:
            logger.warning("backend %s: a client session only this replica can use: %s", self.config.name, exc)

    async def _used(self, key: Key) -> None:
        assert self._shared is not None
        try:
            await self._shared.used(self.config.name, key[1], self.config.session_idle_timeout)
        except StoreUnavailable as exc:
            logger.warning("backend %s: a client session's use not recorded: %s", self.config.name, exc)

    async def _end_shared(self, downstream: str, held: dict[str, str]) -> None:
        """The downstream session ended: end its backend session (and any held here that was never recorded)."""
        assert self._shared is not None
        try:
            record = await self._shared.peek(self.config.name, downstream)
            await self._shared.forget(self.config.name, downstream)
        except StoreUnavailable as exc:
            logger.warning("backend %s: a client session may outlive its client: %s", self.config.name, exc)
            return
        if record is not None:
            held[record.session_id] = record.version
        for session_id, version in held.items():
            await self._end_once(session_id, version)

    async def _expired(self, downstream: str, backend: BackendSession, version: str) -> None:
        """Idle here: the backend session ends too unless it has been used elsewhere meanwhile."""
        assert self._shared is not None and backend.id is not None
        try:
            record = await self._shared.peek(self.config.name, downstream)
        except StoreUnavailable as exc:
            logger.warning("backend %s: an idle client session left open: %s", self.config.name, exc)
            return
        if record is None or record.session_id != backend.id:
            await self._end_once(backend.id, version)

    async def _end_once(self, session_id: str, version: str) -> None:
        """Send the backend session's DELETE, if no other replica has claimed it first."""
        assert self._shared is not None
        try:
            if not await self._shared.closing(self.config.name, session_id, self.config.session_idle_timeout):
                return
        except StoreUnavailable as exc:
            logger.warning("backend %s: a client session not ended: %s", self.config.name, exc)
            return
        with anyio.move_on_after(self.config.connect_timeout):
            await end_session(self.config, session_id, version)
