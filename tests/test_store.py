"""The shared store: values with a time to live and publish/subscribe, in memory and on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio
import pytest

from gateway.cluster.store import MemoryStore, RedisStore, Store, open_store
from gateway.errors import ConfigError, StoreUnavailable
from tests.support.procs import free_port
from tests.support.redis_server import redis_server

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as server:
        yield server.url


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.processes)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    opened: Store = MemoryStore() if request.param == "memory" else RedisStore(request.getfixturevalue("redis_url"))
    try:
        yield opened
    finally:
        await opened.aclose()


async def test_a_value_set_is_read_back_until_deleted(store: Store) -> None:
    await store.set("test:a", b"one")
    assert await store.get("test:a") == b"one"
    await store.delete("test:a")
    await store.delete("test:a")
    assert await store.get("test:a") is None


async def test_a_key_is_claimed_once_until_it_is_deleted(store: Store) -> None:
    assert await store.claim("test:once", ttl=60)
    assert not await store.claim("test:once", ttl=60)
    await store.delete("test:once")
    assert await store.claim("test:once", ttl=60)
    await store.delete("test:once")


async def test_a_published_message_reaches_every_subscriber(store: Store) -> None:
    async with store.subscribe("test:channel") as first, store.subscribe("test:channel") as second:
        assert await store.publish("test:channel", b"hello") == 2
        with anyio.fail_after(5):
            assert await anext(first) == b"hello"
            assert await anext(second) == b"hello"


async def test_a_message_nobody_listens_to_reaches_nobody(store: Store) -> None:
    assert await store.publish("test:nobody", b"lost") == 0


async def test_a_memory_value_expires_after_its_ttl() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    await store.set("k", b"v", ttl=10)
    clock.now += 9.9
    assert await store.get("k") == b"v"
    clock.now += 0.2
    assert await store.get("k") is None


@pytest.mark.processes
async def test_a_redis_value_expires_after_its_ttl(redis_url: str) -> None:
    store = RedisStore(redis_url)
    try:
        await store.set("test:ttl", b"v", ttl=60)
        ttl_ms = await store._redis.pttl("test:ttl")
        assert 0 < ttl_ms <= 60_000
    finally:
        await store.aclose()


async def test_an_unreachable_redis_is_reported_as_unavailable() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(StoreUnavailable):
            await store.get("k")
        with pytest.raises(StoreUnavailable):
            await store.ping()
    finally:
        await store.aclose()


def test_open_store_takes_memory_or_a_redis_url() -> None:
    assert isinstance(open_store("memory"), MemoryStore)
    assert isinstance(open_store("redis://127.0.0.1:1/0"), RedisStore)
    with pytest.raises(ConfigError):
        open_store("etcd://somewhere")


async def test_touch_reads_a_value_and_restarts_its_expiry() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    await store.set("k", b"v", ttl=10)
    clock.now += 8
    assert await store.touch("k", 10) == b"v"
    clock.now += 8
    assert await store.get("k") == b"v"
    assert await store.touch("absent", 10) is None


@pytest.mark.processes
async def test_touch_on_redis_restarts_the_expiry(redis_url: str) -> None:
    store = RedisStore(redis_url)
    try:
        await store.set("test:touch", b"v", ttl=5)
        assert await store.touch("test:touch", 600) == b"v"
        assert await store._redis.pttl("test:touch") > 5_000
        assert await store.touch("test:absent", 600) is None
    finally:
        await store.aclose()
