"""The shared store: what several gateway processes must agree on, kept where all of them can read it.

One small interface, ``Store`` (values with a time to live, read with or without restarting it, and
publish/subscribe), with two implementations: ``MemoryStore`` for a single process (nothing leaves it; two
gateways in one test process may share one instance to play replicas) and ``RedisStore`` on the ``redis`` package
already used for rate limits.
``open_store("memory" | "redis://…")`` picks one. Keys and channels are namespaced by the caller; values are bytes.

Failures of the store surface as ``StoreUnavailable`` (never a ``redis`` exception): each caller decides whether
its concern fails open or closed.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from gateway.errors import ConfigError, StoreUnavailable

OP_TIMEOUT = 2.0
SUBSCRIBER_BUFFER = 256


class Store(Protocol):
    """Values with a time to live, and messages to whoever listens on a channel."""

    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    async def touch(self, key: str, ttl: float) -> bytes | None:
        """The value, or None; a present value's expiry restarts, ``ttl`` seconds from now (one round trip)."""

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value``; with ``ttl`` (seconds) it expires that long after this write."""

    async def delete(self, key: str) -> None:
        """Forget ``key``; absent keys are fine."""

    async def claim(self, key: str, ttl: float) -> bool:
        """Set ``key`` for ``ttl`` seconds unless it is present; whether this call set it. Of several processes
        racing to do one thing once, the one whose claim succeeds does it."""

    async def publish(self, channel: str, message: bytes) -> int:
        """Deliver ``message`` to every current subscriber of ``channel``, on any process (at most once); how many
        subscribers there were (on Redis: how many connections, whichever process holds them)."""

    def subscribe(self, channel: str) -> Any:
        """``async with store.subscribe(channel) as messages: async for message in messages: …`` — an async
        context manager yielding an async iterator of ``bytes``; subscribed once the ``async with`` is entered."""

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` when the store cannot be reached (for ``/readyz``)."""

    async def aclose(self) -> None:
        """Release connections; the store is unusable afterwards."""


def open_store(url: str) -> Store:
    """``memory`` or a ``redis://`` / ``rediss://`` URL, as in the configuration."""
    if url == "memory":
        return MemoryStore()
    if url.startswith(("redis://", "rediss://")):
        return RedisStore(url)
    raise ConfigError("cluster.store: expected 'memory' or a redis:// URL")


class MemoryStore:
    """The store of one process: a dict with deadlines, and channels as in-process streams."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._values: dict[str, tuple[bytes, float]] = {}
        self._subscribers: dict[str, set[MemoryObjectSendStream[bytes]]] = {}

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def touch(self, key: str, ttl: float) -> bytes | None:
        value = self._live(key)
        if value is not None:
            self._values[key] = (value, self._clock() + ttl)
        return value

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._values[key] = (value, math.inf if ttl is None else self._clock() + ttl)
        if len(self._values) % 1024 == 0:
            self._sweep()

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def claim(self, key: str, ttl: float) -> bool:
        if self._live(key) is not None:
            return False
        await self.set(key, b"1", ttl)
        return True

    async def publish(self, channel: str, message: bytes) -> int:
        streams = list(self._subscribers.get(channel, ()))
        for stream in streams:
            try:
                stream.send_nowait(message)
            except anyio.WouldBlock:
                pass  # a subscriber too slow to keep up loses messages, as a Redis subscriber would
            except anyio.BrokenResourceError:
                self._subscribers[channel].discard(stream)
        return len(streams)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        send, receive = anyio.create_memory_object_stream[bytes](SUBSCRIBER_BUFFER)
        self._subscribers.setdefault(channel, set()).add(send)
        try:
            async with receive:
                yield receive
        finally:
            self._subscribers[channel].discard(send)
            send.close()

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        for streams in self._subscribers.values():
            for stream in streams:
                stream.close()
        self._subscribers.clear()

    def _live(self, key: str) -> bytes | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        value, deadline = entry
        if deadline <= self._clock():
            del self._values[key]
            return None
        return value

    def _sweep(self) -> None:
        now = self._clock()
        for key in [key for key, (_, deadline) in self._values.items() if deadline <= now]:
            del self._values[key]


class RedisStore:
    """The store shared by replicas: Redis strings with ``PX`` expiry, and Redis pub/sub channels."""

    def __init__(self, url: str) -> None:
        try:
            from redis.asyncio import Redis
        except ImportError:
            raise ConfigError("cluster.store: a redis:// store needs the redis package (mcp-gateway[redis])") from None
        self._redis: Any = Redis.from_url(url, socket_timeout=OP_TIMEOUT, socket_connect_timeout=OP_TIMEOUT)

    async def get(self, key: str) -> bytes | None:
        value = await self._call(self._redis.get, key)
        return None if value is None else bytes(value)

    async def touch(self, key: str, ttl: float) -> bytes | None:
        value = await self._call(self._redis.getex, key, px=_ms(ttl))
        return None if value is None else bytes(value)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        px = None if ttl is None else _ms(ttl)
        await self._call(self._redis.set, key, value, px=px)

    async def delete(self, key: str) -> None:
        await self._call(self._redis.delete, key)

    async def claim(self, key: str, ttl: float) -> bool:
        return bool(await self._call(self._redis.set, key, b"1", px=_ms(ttl), nx=True))

    async def publish(self, channel: str, message: bytes) -> int:
        return int(await self._call(self._redis.publish, channel, message))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await self._call(pubsub.subscribe, channel)
            yield _messages(pubsub)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(OP_TIMEOUT):
                await pubsub.aclose()

    async def ping(self) -> None:
        await self._call(self._redis.ping)

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            with anyio.fail_after(OP_TIMEOUT):
                return await method(*args, **kwargs)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"shared store unavailable: {type(exc).__name__}") from exc


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


async def _messages(pubsub: Any) -> AsyncIterator[bytes]:
    from redis.exceptions import RedisError

    try:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                yield bytes(message["data"])
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"shared store subscription lost: {type(exc).__name__}") from exc
