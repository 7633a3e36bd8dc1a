"""Messages between replicas: what one of them changed that the others must apply, or tell their own clients.

Every replica holds its own backend connections, so what a backend says reaches each replica by itself. What
does not is what happens in one replica alone: an operator's change, a pin approval, a resource update for a
2025 session subscribed through this replica whose notification stream is on another. Those go on the bus.

``RedisBus`` publishes on one Redis channel; each replica hears every message but its own (a random id per
process tells them apart), so a change is applied, and announced to clients, once per replica. A message may be
*kept*: its body is also stored under its topic, so a replica that starts later, or missed messages while Redis
was unreachable, reads the latest state when it (re)connects. A single process uses ``LocalBus``: nobody to tell.

Redis unreachable: messages published meanwhile are lost (logged), calls go on; the subscriber reconnects with
backoff (``BACKOFF_MIN``..``BACKOFF_MAX``), and once back re-reads every kept topic and runs the heal handlers
(the gateway tells its clients to list again). ``status`` is what ``/readyz`` shows under ``store``.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc

from gateway.errors import ConfigError

logger = logging.getLogger(__name__)
Body = dict[str, Any]
Handler = Callable[[Body], Awaitable[None]]
Heal = Callable[[], Awaitable[None]]
CHANNEL = "mcp-gateway:bus"
KEPT = "mcp-gateway:bus:kept:"
TIMEOUT = 2.0  # each Redis command, and the connect
PING_INTERVAL = 5.0
BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0


class Bus:
    """The bus of a single process: nothing to publish to, always healthy."""

    def __init__(self) -> None:
        self.origin = secrets.token_hex(8)
        self._handlers: dict[str, Handler] = {}
        self._heals: list[Heal] = []

    def on(self, topic: str, handler: Handler) -> None:
        """Run ``handler`` with the body of each message on ``topic`` from another replica."""
        self._handlers[topic] = handler

    def on_heal(self, handler: Heal) -> None:
        """Run ``handler`` when the bus is back after an outage (what was published meanwhile is lost)."""
        self._heals.append(handler)

    async def publish(self, topic: str, body: Body, *, keep: bool = False) -> None:
        """Tell the other replicas; ``keep``: also store it as the topic's latest state."""

    async def latest(self, topic: str) -> Body | None:
        """The body last published on ``topic`` with ``keep``, by any replica (``None``: none, or unreachable)."""
        return None

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    async def aclose(self) -> None:
        """Release the connection (nothing to release alone)."""

    def status(self) -> dict[str, str] | None:
        """The shared store's state for ``/readyz`` (``None``: there is none)."""
        return None

    async def _dispatch(self, message: Body) -> None:
        handler = self._handlers.get(message.get("topic", ""))
        if handler is None or message.get("origin") == self.origin:
            return
        try:
            await handler(message.get("body") or {})
        except Exception:  # one bad message must not end the bus; the top of its handling
            logger.exception("bus: handling a %s message failed", message.get("topic"))


class RedisBus(Bus):
    """The bus over Redis pub/sub, for replicas sharing one Redis."""

    def __init__(self, url: str) -> None:
        super().__init__()
        try:
            from redis.asyncio import Redis
            from redis.exceptions import RedisError
        except ImportError:
            raise ConfigError("cluster.store: a redis:// URL needs the redis package (mcp-gateway[redis])") from None
        self._redis = Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
        self._failures: tuple[type[Exception], ...] = (OSError, TimeoutError, RedisError)
        self._state = {"state": "connecting"}

    async def publish(self, topic: str, body: Body, *, keep: bool = False) -> None:
        data = json.dumps({"origin": self.origin, "topic": topic, "body": body}, separators=(",", ":"))
        try:
            with anyio.fail_after(TIMEOUT):
                async with self._redis.pipeline(transaction=True) as pipe:
                    if keep:
                        pipe.set(KEPT + topic, data)
                    pipe.publish(CHANNEL, data)
                    await pipe.execute()
        except self._failures as exc:
            logger.warning("bus: %s not sent to the other replicas, Redis unreachable: %s", topic, _reason(exc))

    async def latest(self, topic: str) -> Body | None:
        kept = await self._kept(topic)
        return None if kept is None else _body(kept.get("body"))

    async def _kept(self, topic: str) -> Body | None:
        """The message last kept on ``topic``, as published."""
        try:
            with anyio.fail_after(TIMEOUT):
                data = await self._redis.get(KEPT + topic)
        except self._failures as exc:
            logger.warning("bus: cannot read the latest %s, Redis unreachable: %s", topic, _reason(exc))
            return None
        return None if data is None else _body(json.loads(data))

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Hear the other replicas until cancelled, reconnecting with backoff whenever Redis goes away."""
        task_status.started()
        delay, healed = BACKOFF_MIN, False
        while True:
            try:
                await self._listen(healed)
            except self._failures as exc:
                if self._state.get("state") == "ok":
                    delay = BACKOFF_MIN
                    logger.warning("bus: Redis unreachable (%s); reconnecting", _reason(exc))
                healed = True
                self._state = {"state": "unreachable", "error": _reason(exc)}
            await anyio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    async def aclose(self) -> None:
        with anyio.move_on_after(TIMEOUT, shield=True):
            await self._redis.aclose()

    def status(self) -> dict[str, str]:
        return dict(self._state)

    async def _listen(self, healed: bool) -> None:
        pubsub: Any = self._redis.pubsub()
        try:
            with anyio.fail_after(TIMEOUT):
                await pubsub.subscribe(CHANNEL)
            if self._state.get("state") == "unreachable":
                logger.warning("bus: Redis reachable again")
            self._state = {"state": "ok"}
            if healed:
                await self._heal()
            await self._receive(pubsub)
        finally:
            with anyio.move_on_after(TIMEOUT, shield=True):
                await pubsub.aclose()

    async def _receive(self, pubsub: Any) -> None:
        """Dispatch messages as they come; a connection silent past two pings is dead."""
        heard = anyio.current_time()
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=PING_INTERVAL)
            now = anyio.current_time()
            if message is None:
                if now - heard > 2 * PING_INTERVAL + TIMEOUT:
                    raise TimeoutError("Redis stopped answering")
                with anyio.fail_after(TIMEOUT):
                    await pubsub.ping()
                continue
            heard = now
            if message.get("type") == "message":
                await self._dispatch(_body(json.loads(message["data"])))
                heard = anyio.current_time()

    async def _heal(self) -> None:
        """Back after an outage: re-read what was kept meanwhile, then let the gateway resynchronise."""
        for topic in list(self._handlers):
            kept = await self._kept(topic)
            if kept is not None:
                await self._dispatch(kept)
        for handler in self._heals:
            await handler()


def bus_for(url: str | None) -> Bus:
    """The bus for a gateway: over Redis when one is shared (``GatewayConfig.redis_url``), else a single process's."""
    return Bus() if url is None else RedisBus(url)


def _body(value: Any) -> Body:
    return value if isinstance(value, dict) else {}


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
