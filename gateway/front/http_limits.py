"""The HTTP/1.1 protocol the server runs: uvicorn's httptools protocol, with bounds on what one connection holds.

uvicorn reads a request head without limit: a header line that never ends is buffered (and copied again with
every read) for as long as it keeps coming, and a client that sends its head or body slowly keeps its connection
for ever. Here each connection gets, from ``HttpConfig``:

- ``max_header_bytes`` and ``max_headers`` on the request line and headers: past either, 431;
- deadlines: the head within ``header_timeout`` of its first read (of the accept, for a connection's first
  request), the whole body within ``body_timeout`` of the head: past either, 408;
- ``max_connections_per_client`` open connections per client address: the next one gets 429 at once.

A refusal carries a JSON-RPC error (``rpc_errors.to_mcp_error``), says ``Connection: close``, and is followed by a
lingering close: what the client still sends is read and dropped for at most ``LINGER`` seconds, so the client
reads the refusal instead of a reset. A request that already has its answer under way gets no second one; its
connection is closed. Reads are counted per chunk and only while a head is incomplete; past the one timer
armed at the accept, a request that arrives in one read arms none.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.config import HttpConfig
from gateway.errors import GatewayError, HeadTooLarge, RequestTimeout, TooManyConnections
from gateway.rpc_errors import to_mcp_error

LINGER = 2.0  # seconds a refused connection is still read (and the reads dropped) before it is closed
# A connection's phase (plain ints: they are compared on every read).
_HEAD = 0  # awaiting or reading a request line and headers
_BODY = 1  # headers read, body incomplete
_HANDED = 2  # the whole request is with the app, or the connection is idle between requests
_GONE = 3  # refused: reads are dropped until the connection closes


class _Refused(Exception):
    """Stops the parser once a callback has refused the request."""


class ConnectionCount:
    """Open connections per client address, shared by the connections of one server."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        count = self._open.get(address, 0)
        if self.limit and count >= self.limit:
            return False
        self._open[address] = count + 1
        return True

    def release(self, address: str) -> None:
        count = self._open.pop(address) - 1
        if count:
            self._open[address] = count


class LimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol within the limits of ``settings``; ``protocol_for`` binds one per server.

    The server runs without WebSockets, so an upgrade request is served as plain HTTP, as uvicorn serves it when
    no WebSocket library is installed.
    """

    settings: ClassVar[HttpConfig]
    counts: ClassVar[ConnectionCount]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _HEAD
        self._head_bytes = 0  # read while the current head was incomplete, framing included
        self._timer: asyncio.TimerHandle | None = None
        self._address: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else None
        if address is not None and not self.counts.admit(address):
            self._refuse(HTTPStatus.TOO_MANY_REQUESTS, TooManyConnections(address, self.counts.limit), linger=False)
            return
        self._address = address
        self._arm(self.settings.header_timeout, self._head_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._address is not None:
            self.counts.release(self._address)
            self._address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        if phase == _GONE:
            return
        self._unset_keepalive_if_required()
        if phase != _BODY:
            self._phase = _HEAD
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # served as plain HTTP: there is nothing to upgrade to
        except httptools.HttpParserError:
            if self._phase != _GONE:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        self._watch()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEAD

    def on_headers_complete(self) -> None:
        problem = self._head_problem()
        if problem:
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, HeadTooLarge(problem))
            raise _Refused
        self._disarm()
        self._phase = _BODY
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._phase = _HANDED
        super().on_message_complete()

    def _head_problem(self) -> str | None:
        """What is wrong with a complete head. Its exact size is summed only when more than the limit was read
        while it arrived (a body may have come in the same read)."""
        limit = self.settings.max_header_bytes
        if len(self.headers) > self.settings.max_headers:
            return f"More than {self.settings.max_headers} request header fields"
        if self._head_bytes > limit and len(self.url) + sum(len(n) + len(v) for n, v in self.headers) > limit:
            return self._too_large()
        return None

    def _watch(self) -> None:
        """After a read: refuse a head grown past its limit, else keep a deadline on an incomplete request."""
        if self._phase == _HEAD:
            if self._head_bytes > self.settings.max_header_bytes:
                self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, HeadTooLarge(self._too_large()))
            elif self._timer is None:
                self._arm(self.settings.header_timeout, self._head_expired)
        elif self._phase == _BODY and self._timer is None:
            self._arm(self.settings.body_timeout, self._body_expired)

    def _head_expired(self) -> None:
        self._timer = None
        self._refuse(HTTPStatus.REQUEST_TIMEOUT, RequestTimeout("headers", self.settings.header_timeout))

    def _body_expired(self) -> None:
        self._timer = None
        self._refuse(HTTPStatus.REQUEST_TIMEOUT, RequestTimeout("body", self.settings.body_timeout))

    def _refuse(self, status: HTTPStatus, exc: GatewayError, linger: bool = True) -> None:
        """Answer ``exc`` if the wire is free for an answer to this request, then close the connection."""
        self._disarm()
        cycle = self.cycle
        if self._phase == _BODY:
            free = not cycle.response_started and not self.pipeline
            if free:  # the app waiting on the body hears a disconnect, and its answer goes nowhere
                cycle.disconnected = True
                cycle.message_event.set()
        else:
            free = cycle is None or cycle.response_complete
        self._phase = _GONE
        if not free:
            self.transport.close()
            return
        self.transport.write(_response(status, exc, self.server_state.default_headers))
        if linger and self.transport.can_write_eof():
            self.transport.write_eof()
            self._arm(LINGER, self.transport.close)
        else:
            self.transport.close()

    def _arm(self, seconds: float, expired: Callable[[], None]) -> None:
        self._timer = self.loop.call_later(seconds, expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_large(self) -> str:
        return f"Request line and headers larger than {self.settings.max_header_bytes} bytes"


def protocol_for(http: HttpConfig) -> type[LimitedProtocol]:
    """A protocol class for one server: its limits, and its own count of connections per client address."""
    count = ConnectionCount(http.max_connections_per_client)

    class ServerProtocol(LimitedProtocol):
        settings = http
        counts = count

    return ServerProtocol


def _response(status: HTTPStatus, exc: GatewayError, defaults: list[tuple[bytes, bytes]]) -> bytes:
    error = to_mcp_error(exc)
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": error.code, "message": error.message}}).encode()
    lines = [f"HTTP/1.1 {status.value} {status.phrase}".encode()]
    lines += [name + b": " + value for name, value in defaults]
    lines += [b"content-type: application/json", b"content-length: %d" % len(body), b"connection: close"]
    return b"\r\n".join([*lines, b"", body])
