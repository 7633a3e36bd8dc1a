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
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup, TaskStatus
from mcp import Client

from gateway.config import BackendConfig
from gateway.errors import BackendUnavailable
from gateway.upstream.backchannel import BackChannel
from gateway.upstream.sink import Sink
from gateway.upstream.transports import Connector, TransportHooks, open_client

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


@dataclass(frozen=True)
class Lease:
    """A session's client for one request; ``discard`` drops a session found broken."""

    client: Client
    discard: Callable[[], None]


class ClientSessions:
    """The per-client sessions of one backend, owned by a task group that ``run`` provides."""

    def __init__(self, config: BackendConfig, connect: Connector, on_stderr: Callable[[str], None]) -> None:
        self.config = config
        self._connect = connect
        self._on_stderr = on_stderr
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
        for session in [s for key, s in self._sessions.items() if key[1] == downstream]:
            self._drop(session)

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
        hooks = TransportHooks(on_eof=lambda: self._drop(session), on_stderr=self._on_stderr)
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + self.config.connect_timeout) as scope:
                async with AsyncExitStack() as stack:
                    client = await open_client(self.config, self._connect, stack, hooks, **session.channel.callbacks())
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
