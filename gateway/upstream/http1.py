"""A small HTTP/1.1 client on asyncio streams: keep-alive connections to one origin, requests, response bodies.

The call path to an HTTP backend needs one thing done fast: POST a JSON body, read a JSON or SSE answer (or GET
the rest of an SSE stream the server ended early), and keep the connection for the next call. A general client
(httpx2 and its pool) costs more CPU per call than the rest of the gateway together; this one builds the request
bytes in one join and reads bodies by ``Content-Length``, chunked or to the end of the connection, copying each
body once.

Errors say which side of the request they happened on: ``NotSent`` when the request surely did not reach the server
(``Unreachable``: no connection could be made; or a connection the server closed while the request was being
written), ``ConnectionDropped`` once the server may have seen it. A kept-alive connection is reused only while the
server cannot have closed it yet (younger than ``IDLE_REUSE``, no end of stream seen); when a write to one fails
anyway, the request goes once more over a new connection. Nothing is resent after it was written.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Servers close idle keep-alive connections (uvicorn after 5 s); older ones are not reused.
IDLE_REUSE = 4.0
MAX_IDLE = 64
# At most this many requests to one origin at once (httpx's default pool limit); more wait for a slot.
MAX_OPEN = 100
MAX_HEAD = 64 * 1024
_READ = 256 * 1024


class HttpError(Exception):
    """The exchange failed at the HTTP level."""


class NotSent(HttpError):
    """The request did not reach the server: sending it again is safe."""


class Unreachable(NotSent):
    """No connection to the server could be made."""


class ConnectionDropped(HttpError):
    """The connection ended after the request was sent: the server may have acted on it."""


@dataclass(frozen=True)
class Origin:
    """Where requests go: scheme, host, port and the request target of one URL."""

    host: str
    port: int
    target: str
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.hostname or "127.0.0.1", parts.port or (443 if tls else 80), target, tls)

    @property
    def authority(self) -> str:
        default = 443 if self.tls else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False
    idle_since: float = field(default_factory=time.monotonic)

    def close(self) -> None:
        self.writer.close()


class Response:
    """A response whose head has been read; its body is read with ``body()`` or ``chunk()`` until ``b""``."""

    def __init__(self, status: int, headers: dict[str, str], connection: Connection, reusable: bool) -> None:
        self.status = status
        self.headers = headers
        self.connection = connection
        self.reusable = reusable
        self.complete = False
        self._chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        length = headers.get("content-length")
        self._remaining = int(length) if length is not None and length.isdigit() and not self._chunked else None
        if self._remaining is None and not self._chunked:
            self.reusable = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").lower()

    async def body(self) -> bytes:
        """The whole body; one copy when its length is known."""
        if self._remaining is not None and not self.complete:
            reader, size = self.connection.reader, self._remaining
            data = await self._guarded(reader.readexactly(size))
            self._remaining, self.complete = 0, True
            return data
        parts = []
        while chunk := await self.chunk():
            parts.append(chunk)
        return b"".join(parts)

    async def chunk(self) -> bytes:
        """The next piece of the body as it arrives; ``b""`` at its end, ``ConnectionDropped`` if it breaks off."""
        if self.complete:
            return b""
        reader = self.connection.reader
        if self._chunked:
            size_line = await self._guarded(reader.readuntil(b"\r\n"))
            try:
                size = int(size_line.split(b";", 1)[0], 16)
            except ValueError:
                raise ConnectionDropped("a malformed chunk in the response body") from None
            if size == 0:
                while await self._guarded(reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                self.complete = True
                return b""
            return (await self._guarded(reader.readexactly(size + 2)))[:-2]
        if self._remaining is not None:
            if self._remaining == 0:
                self.complete = True
                return b""
            data = await self._guarded(reader.read(min(self._remaining, _READ)))
            if not data:
                raise ConnectionDropped("the connection closed inside the response body")
            self._remaining -= len(data)
            return data
        data = await self._guarded(reader.read(_READ))
        self.complete = not data
        return data

    @staticmethod
    async def _guarded(read: Awaitable[bytes]) -> bytes:
        try:
            return await read
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise ConnectionDropped(f"the response body broke off: {exc!r}") from None


class Pool:
    """Keep-alive connections to one origin; a request takes one, and gives it back if the response allows."""

    def __init__(self, origin: Origin, connect_timeout: float) -> None:
        self.origin = origin
        self._connect_timeout = connect_timeout
        self._idle: list[Connection] = []
        self._tls = ssl.create_default_context() if origin.tls else None
        self._closed = False
        self._slots = asyncio.Semaphore(MAX_OPEN)

    async def request(self, head: Mapping[str, str], body: bytes, method: str = "POST") -> Response:
        """Send ``body`` (``method``: POST, or GET to resume a stream); returns once the response head is in. A
        stale kept-alive connection is replaced once.

        The response holds one of the origin's ``MAX_OPEN`` slots until ``give_back``.
        """
        await self._slots.acquire()
        try:
            connection = self._take()
            if connection is not None:
                try:
                    return await self._exchange(connection, method, head, body)
                except NotSent:
                    pass
            return await self._exchange(await self._open(), method, head, body)
        except BaseException:
            self._slots.release()
            raise

    def give_back(self, response: Response) -> None:
        """End a response's use of its connection: kept for the next request if it can be, else closed."""
        self._slots.release()
        connection = response.connection
        if response.reusable and response.complete and not self._closed and len(self._idle) < MAX_IDLE:
            connection.reused = True
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        self._closed = True
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    def _take(self) -> Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            fresh = now - connection.idle_since < IDLE_REUSE
            if fresh and not connection.reader.at_eof() and not connection.writer.is_closing():
                return connection
            connection.close()
        return None

    async def _open(self) -> Connection:
        origin = self.origin
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(
                    origin.host,
                    origin.port,
                    ssl=self._tls,
                    server_hostname=origin.host if self._tls else None,
                    limit=MAX_HEAD,
                )
        except (OSError, TimeoutError) as exc:
            raise Unreachable(f"cannot connect to {origin.authority}: {exc!r}") from None
        return Connection(reader, writer)

    async def _exchange(self, connection: Connection, method: str, head: Mapping[str, str], body: bytes) -> Response:
        try:
            try:
                connection.writer.write(_request_bytes(self.origin, method, head, body))
                await connection.writer.drain()
            except OSError as exc:
                raise NotSent(f"the request could not be written: {exc!r}") from None
            try:
                raw = await connection.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, OSError) as exc:
                raise ConnectionDropped(f"the connection closed before the response: {exc!r}") from None
            except asyncio.LimitOverrunError:
                raise ConnectionDropped("the response head is too large") from None
        except BaseException:
            connection.close()
            raise
        return _parse_head(raw, connection)


def _request_bytes(origin: Origin, method: str, head: Mapping[str, str], body: bytes) -> bytes:
    lines = [f"{method} {origin.target} HTTP/1.1", f"host: {origin.authority}", f"content-length: {len(body)}"]
    for name, value in head.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} carries a line break")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1") + body


def _parse_head(raw: bytes, connection: Connection) -> Response:
    lines = raw.decode("latin-1").split("\r\n")
    try:
        version, status, *_ = lines[0].split(" ", 2)
        code = int(status)
    except ValueError:
        connection.close()
        raise ConnectionDropped(f"not an HTTP response: {lines[0][:80]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
    return Response(code, headers, connection, keep)
