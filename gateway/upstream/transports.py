"""The one place that knows backend transports: config in, an SDK ``Transport`` (or a client on it) out.

Everything above this module holds a ``Transport`` (an async context manager yielding a pair of message
streams) and never branches on how the bytes travel. What transports report back through ``TransportHooks``:
the end of the backend's stream (a stdio process that exited, a closed connection), so the supervisor reconnects
at once instead of at the next probe; for stdio, each line the process writes to stderr; for streamable HTTP, a
``Forwarder`` that sends calls as raw JSON-RPC beside the SDK connection (``gateway.upstream.forward``), and, for a
``BackendSession`` several replicas share, its id and whether the backend forgot it. ``Connector``
is the seam: tests pass one that returns an in-process server instead. ``reachable`` is the cheap check the supervisor
makes between reconnects: whether a URL backend takes a TCP connection again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, TextIO
from urllib.parse import urlsplit

import anyio
import httpx2
from mcp import Client, MCPError
from mcp.client import Transport
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CONNECTION_CLOSED

from gateway.config import BackendConfig
from gateway.config import Transport as Kind
from gateway.sdk import TransportStreams, joined_session
from gateway.upstream.forward import Forwarder
from gateway.upstream.negotiated import CLIENT_INFO

logger = logging.getLogger(__name__)

# Server-sent event streams stay open between messages; their read timeout is not a call deadline.
STREAM_READ_TIMEOUT = 300.0
# The bearer token of the caller a request is being sent for; backends with ``forward_token`` receive it.
_caller_token: ContextVar[str | None] = ContextVar("caller_token", default=None)


@contextmanager
def caller_token(token: str | None) -> Iterator[None]:
    """Requests sent inside the block carry ``token`` to backends configured to receive it."""
    reset = _caller_token.set(token)
    try:
        yield
    finally:
        _caller_token.reset(reset)


async def _forward_token(request: httpx2.Request) -> None:
    """The SDK sends each request from the caller's context, so the caller's token is visible here."""
    token = _caller_token.get()
    if token is not None:
        request.headers["Authorization"] = f"Bearer {token}"


def _unused(forwarder: Forwarder) -> None:
    """Without a taker, an HTTP backend's calls stay on the SDK client."""


@dataclass
class BackendSession:
    """A streamable-HTTP backend's session that outlives the connection (other replicas use it too): its ``id`` once
    the backend gave one, and ``joined``, the ``InitializeResult`` of a session opened elsewhere, to join under
    ``id`` without an ``initialize``; ``forgotten`` once the backend answered 404 in it. Closing such a connection
    does not end the session; ``end_session`` does."""

    id: str | None = None
    joined: dict[str, Any] | None = None
    forgotten: bool = False


@dataclass(frozen=True)
class TransportHooks:
    on_eof: Callable[[], None]
    on_stderr: Callable[[str], None]
    # Streamable-HTTP backends also get a raw call path beside the SDK connection (``gateway.upstream.forward``).
    on_forwarder: Callable[[Forwarder], None] = _unused
    # For a per-client session of a streamable-HTTP backend that other replicas may adopt.
    session: BackendSession | None = field(default=None)


# Returns anything ``mcp.Client`` connects to: a ``Transport``, or in tests a ``Server``/``MCPServer``.
Connector = Callable[[BackendConfig, AsyncExitStack, TransportHooks], Awaitable[Any]]


async def open_transport(config: BackendConfig, stack: AsyncExitStack, hooks: TransportHooks) -> Transport:
    """A fresh, not yet entered transport for one connection attempt; ``stack`` owns what it needs closed."""
    read_timeout = max(STREAM_READ_TIMEOUT, config.call_timeout + 30)
    if config.transport is Kind.STREAMABLE_HTTP:
        assert config.url is not None
        # One event holds one message: twice the result limit bounds memory and leaves room for JSON escaping.
        events = 2 * config.max_result_bytes
        # The raw path sends no caller's token: a backend that takes one stays on the SDK client.
        forwarder = (
            None if config.forward_token else Forwarder(config.url, config.headers, config.connect_timeout, events)
        )
        # Loading the CA bundle costs ~80 ms per client; a plain-HTTP backend never uses it.
        verify = config.url.startswith("https://")
        session = hooks.session
        responses = [forwarder.on_response] if forwarder is not None else []
        http = httpx2.AsyncClient(
            headers=config.headers or None,
            timeout=httpx2.Timeout(config.connect_timeout, read=read_timeout),
            verify=verify,
            transport=_joining(session, verify),
            event_hooks={
                "request": [_forward_token] if config.forward_token else [],
                "response": responses if session is None else [*responses, _watch(session)],
            },
        )
        await stack.enter_async_context(http)
        transport: Transport = streamable_http_client(
            config.url, http_client=http, max_sse_event_size=events, terminate_on_close=session is None
        )
        if forwarder is not None:
            stack.callback(forwarder.close)
            hooks.on_forwarder(forwarder)
    elif config.transport is Kind.SSE:
        assert config.url is not None
        transport = sse_client(
            config.url, headers=config.headers or None, timeout=config.connect_timeout, sse_read_timeout=read_timeout
        )
    else:
        assert config.command is not None
        params = StdioServerParameters(command=config.command, args=config.args, env=config.env or None, cwd=config.cwd)
        transport = stdio_client(params, errlog=_stderr_pipe(stack, hooks.on_stderr))
    return _watched(transport, hooks.on_eof)


@asynccontextmanager
async def _watched(transport: Transport, on_eof: Callable[[], None]) -> AsyncIterator[TransportStreams]:
    async with transport as (read, write):
        yield _EofWatch(read, on_eof), write


class _EofWatch:
    """The transport's read stream, unchanged, except that its end is reported."""

    def __init__(self, inner: Any, on_eof: Callable[[], None]) -> None:
        self._inner = inner
        self._on_eof = on_eof

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def __aenter__(self) -> _EofWatch:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self._inner.__aexit__(*exc_info)

    def __aiter__(self) -> _EofWatch:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._inner.__anext__()
        except (StopAsyncIteration, anyio.EndOfStream, anyio.ClosedResourceError):
            self._on_eof()
            raise


def _joining(session: BackendSession | None, verify: bool) -> httpx2.AsyncBaseTransport | None:
    """For a session opened elsewhere, the transport that joins it; otherwise httpx's own."""
    if session is None or session.joined is None or session.id is None:
        return None
    return joined_session(httpx2.AsyncHTTPTransport(verify=verify), session.id, session.joined)


def _watch(session: BackendSession) -> Callable[[httpx2.Response], Awaitable[None]]:
    """A response hook noting the backend's session id, and a 404 answered in it (the backend forgot it)."""

    async def watch(response: httpx2.Response) -> None:
        given = response.headers.get("mcp-session-id")
        if given and session.id is None:
            session.id = given
        elif response.status_code == 404 and response.request.headers.get("mcp-session-id"):
            session.forgotten = True

    return watch


async def end_session(config: BackendConfig, session_id: str, version: str) -> int | None:
    """End a backend's session with the DELETE its SDK client would send on closing; the backend's status, or None
    if it could not be reached within the ``connect_timeout``."""
    assert config.url is not None
    headers = {**config.headers, "mcp-session-id": session_id, "mcp-protocol-version": version}
    verify = config.url.startswith("https://")
    async with httpx2.AsyncClient(timeout=config.connect_timeout, verify=verify) as http:
        try:
            response = await http.delete(config.url, headers=headers)
        except httpx2.HTTPError as exc:
            logger.warning("backend %s: could not end a client session: %s", config.name, type(exc).__name__)
            return None
    return response.status_code


async def reachable(config: BackendConfig) -> bool | None:
    """Whether a URL backend takes a TCP connection within its ``connect_timeout`` (closed at once, nothing sent): a
    sign that it listens again, far cheaper for it than a handshake. None for stdio: only a full attempt starts the
    process."""
    if config.url is None:
        return None
    url = urlsplit(config.url)
    port = url.port or (443 if url.scheme == "https" else 80)
    with anyio.move_on_after(config.connect_timeout):
        try:
            stream = await anyio.connect_tcp(url.hostname or "", port)
        except OSError:
            return False
        await stream.aclose()
        return True
    return False


async def open_client(
    config: BackendConfig, connect: Connector, stack: AsyncExitStack, hooks: TransportHooks, **options: Any
) -> Client:
    """A connected SDK client for one connection to a backend, closed with ``stack``: the backend's protocol and
    call deadline, the gateway's identity, no response cache; ``options`` add callbacks.

    ``protocol: auto`` opens with the 2025 handshake. A backend that speaks both eras serves some things only
    there: its requests to the client during a call (a 2026 connection has no back-channel for them) and its
    2025 ``resources/subscribe``; the gateway bridges both to 2026 clients. A backend that refuses the handshake
    is connected again and the SDK negotiates (``server/discover``, the 2026 era). A ``forward_token`` backend
    is negotiated at once: a 2025 session is bound to the credential that opened it, not each caller's own.
    """
    if config.protocol != "auto" or config.forward_token:
        return await _connected(config, config.protocol, connect, stack, hooks, options)
    async with AsyncExitStack() as attempt:
        handshake = _Handshake(hooks)
        try:
            client = await _connected(config, "legacy", connect, attempt, handshake.hooks, options)
        except* MCPError as refused:  # raised from inside the SDK's task groups
            if refused.subgroup(_closed) is not None:
                raise  # a closed connection or an exited process says nothing about eras
            logger.debug("backend %s refused the 2025 handshake (%s); negotiating", config.name, refused.exceptions)
        else:
            handshake.done = True
            await stack.enter_async_context(attempt.pop_all())
            return client
    return await _connected(config, "auto", connect, stack, hooks, options)


class _Handshake:
    """Hooks for a handshake that may be refused: the end of a refused attempt's stream is not the link's."""

    def __init__(self, hooks: TransportHooks) -> None:
        self.done = False
        self._on_eof = hooks.on_eof
        self.hooks = replace(hooks, on_eof=self._eof)

    def _eof(self) -> None:
        if self.done:
            self._on_eof()


def _closed(exc: BaseException) -> bool:
    return isinstance(exc, MCPError) and exc.code == CONNECTION_CLOSED


async def _connected(
    config: BackendConfig,
    mode: str,
    connect: Connector,
    stack: AsyncExitStack,
    hooks: TransportHooks,
    options: dict[str, Any],
) -> Client:
    client = Client(
        await connect(config, stack, hooks),
        mode=mode,
        read_timeout_seconds=config.call_timeout,
        client_info=CLIENT_INFO,
        cache=None,
        **options,
    )
    await stack.enter_async_context(client)
    return client


def _stderr_pipe(stack: AsyncExitStack, on_line: Callable[[str], None]) -> TextIO:
    """A pipe for the child's stderr, read line by line on a thread until every writer has closed it."""
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "r", encoding="utf-8", errors="replace")
    writer = os.fdopen(write_fd, "w")

    def pump() -> None:
        with reader:
            for line in reader:
                on_line(line.rstrip("\n"))

    threading.Thread(target=pump, name="backend-stderr", daemon=True).start()
    stack.callback(writer.close)
    return writer
