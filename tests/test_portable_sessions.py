"""Portable 2025 sessions: replicas sharing a store (one in-memory store, or a real redis-server) serve each other's
sessions; forged, revoked and retired ids are refused with 404."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr, ValidationError

import gateway.front.portable_sessions
from gateway.cluster.store import MemoryStore, Store
from gateway.config import BackendConfig, ClusterConfig
from gateway.core import Gateway
from gateway.front.app import MCP_PATH
from tests.support.inproc import READER_INFO, config_for, serving
from tests.support.procs import free_port
from tests.support.redis_server import redis_server
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
VERSION = "2025-11-25"
OLD_KEY, NEW_KEY = "o" * 40, "n" * 40
ALICE, MALLORY = "alice-key-0123456789abcdef", "mallory-key-0123456789abcd"
SECURITY = {
    "auth": {"api_keys": [{"principal": "alice", "key": ALICE}, {"principal": "mallory", "key": MALLORY}]},
    "policy": {"default": "allow"},
}
MCP = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "mcp-inspector", "version": "1"}}
NOTE = "toy+toy://notes/1"


class Replica:
    """One gateway serving on a loopback port, and raw HTTP to it."""

    def __init__(self, gateway: Gateway, http: httpx2.AsyncClient) -> None:
        self.gateway = gateway
        self.http = http

    async def rpc(self, session: str, method: str, params: Mapping[str, Any] | None = None, token: str = ALICE) -> Any:
        """A request in ``session``: the HTTP response (its JSON-RPC answer is ``answer``)."""
        body = {"jsonrpc": "2.0", "id": 2, "method": method, "params": dict(params or {})}
        return await self.http.post(MCP_PATH, json=body, headers=_headers(token, session))

    async def open(self, token: str = ALICE) -> str:
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT}
        opened = await self.http.post(MCP_PATH, json=body, headers=_headers(token))
        assert opened.status_code == 200, opened.text
        session = str(opened.headers["mcp-session-id"])
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await self.http.post(MCP_PATH, json=done, headers=_headers(token, session))).status_code == 202
        return session


def _headers(token: str, session: str | None = None) -> dict[str, str]:
    sent = {**MCP, "Authorization": f"Bearer {token}"}
    if session is not None:
        sent |= {"Mcp-Session-Id": session, "MCP-Protocol-Version": VERSION}
    return sent


def answer(response: Any) -> Any:
    """The JSON-RPC answer of a POST, whether sent as JSON or as one SSE event."""
    assert response.status_code == 200, (response.status_code, response.text)
    if response.headers["content-type"].startswith("application/json"):
        return response.json()
    data = [line.removeprefix("data:").strip() for line in response.text.splitlines() if line.startswith("data:")]
    return json.loads([d for d in data if d][-1])


@asynccontextmanager
async def replicas(
    store: Store | str, keys: Sequence[Sequence[str]] = ((OLD_KEY,), (OLD_KEY,)), **limits: Any
) -> AsyncIterator[list[Replica]]:
    """One gateway per keyring in ``keys``, in front of the same toy backend, sharing ``store`` (an instance, or
    the URL each opens)."""
    toy = build("toy", listen=False)

    async def connect(config: BackendConfig, stack: AsyncExitStack, hooks: Any) -> Any:
        return toy

    async with AsyncExitStack() as stack:
        started = []
        for ring in keys:
            url = store if isinstance(store, str) else "memory"
            cluster = {"store": url, "session_keys": list(ring)}
            security = {**SECURITY, "limits": limits}
            config = config_for({"toy": "toy"}, security=security, cluster=cluster)
            shared = None if isinstance(store, str) else store
            gateway = await stack.enter_async_context(Gateway(config, connect, store=shared))
            url_of = await stack.enter_async_context(serving(gateway))
            http = await stack.enter_async_context(
                httpx2.AsyncClient(base_url=url_of.removesuffix(MCP_PATH), timeout=10)
            )
            started.append(Replica(gateway, http))
        yield started


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as server:
        yield server.url


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.processes)])
def shared(request: pytest.FixtureRequest) -> Store | str:
    return MemoryStore() if request.param == "memory" else str(request.getfixturevalue("redis_url"))


async def test_a_session_opened_on_one_replica_is_served_by_another(shared: Store | str) -> None:
    async with replicas(shared) as (a, b):
        session = await a.open()
        listed = answer(await b.rpc(session, "tools/list"))
        called = answer(await b.rpc(session, "tools/call", {"name": "toy/echo", "arguments": {"text": "hi"}}))
        again = answer(await a.rpc(session, "tools/call", {"name": "toy/echo", "arguments": {"text": "yo"}}))
    assert "toy/echo" in {tool["name"] for tool in listed["result"]["tools"]}  # the client's name style, kept
    assert called["result"]["content"][0]["text"] == "hi"
    assert again["result"]["content"][0]["text"] == "yo"


async def test_a_subscription_made_on_one_replica_is_taken_up_by_another(shared: Store | str) -> None:
    async with replicas(shared) as (a, b):
        session = await a.open()
        assert "result" in answer(await a.rpc(session, "resources/subscribe", {"uri": NOTE}))
        count = {"name": "toy/subscribers", "arguments": {"uri": "toy://notes/1"}}
        before = answer(await a.rpc(session, "tools/call", count))["result"]["content"][0]["text"]
        answer(await b.rpc(session, "ping"))
        after = answer(await b.rpc(session, "tools/call", count))["result"]["content"][0]["text"]
    assert (before, after) == ("1", "2")  # B's own link now holds the subscription for the restored session


async def test_a_session_deleted_on_one_replica_is_refused_on_every_replica(shared: Store | str) -> None:
    async with replicas(shared) as (a, b):
        session = await a.open()
        assert (await b.rpc(session, "ping")).status_code == 200
        deleted = await b.http.delete(MCP_PATH, headers=_headers(ALICE, session))
        assert deleted.status_code == 200
        assert (await a.rpc(session, "ping")).status_code == 404
        assert (await b.rpc(session, "ping")).status_code == 404


async def test_a_session_closed_for_its_principals_quota_is_refused_on_every_replica() -> None:
    async with replicas(MemoryStore(), max_sessions_per_principal=1) as (a, b):
        first = await a.open()
        second = await a.open()
        statuses = [(await replica.rpc(first, "ping")).status_code for replica in (a, b)]
        assert (await b.rpc(second, "ping")).status_code == 200
    assert statuses == [404, 404]


async def test_forged_and_altered_session_ids_are_refused(shared: Store | str) -> None:
    async with replicas(shared) as (a, b):
        session = await a.open()
        key_id, _, body = session.partition(".")
        altered = f"{key_id}.{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}"
        statuses = [(await b.rpc(forged, "ping")).status_code for forged in (altered, "0" * 32, f"{key_id}.x")]
    assert statuses == [404, 404, 404]


async def test_another_principal_cannot_use_a_session_on_any_replica() -> None:
    async with replicas(MemoryStore()) as (a, b):
        session = await a.open(ALICE)
        assert (await b.rpc(session, "ping", token=MALLORY)).status_code == 404
        assert (await a.rpc(session, "ping", token=MALLORY)).status_code == 404
        assert (await b.rpc(session, "ping", token=ALICE)).status_code == 200


async def test_a_rotated_keyring_keeps_live_sessions_and_a_removed_key_retires_them() -> None:
    keys = [(OLD_KEY,), (NEW_KEY, OLD_KEY), (NEW_KEY,)]
    async with replicas(MemoryStore(), keys) as (old, rotated, retired):
        before = await old.open()
        after = await rotated.open()
        assert (await rotated.rpc(before, "ping")).status_code == 200
        assert (await retired.rpc(after, "ping")).status_code == 200
        assert (await retired.rpc(before, "ping")).status_code == 404
        assert (await old.rpc(after, "ping")).status_code == 404


async def test_an_sdk_client_spread_over_two_replicas_notices_nothing() -> None:
    async with replicas(MemoryStore()) as (a, b):
        ports = itertools.cycle([a.http.base_url.port, b.http.base_url.port])

        class RoundRobin(httpx2.AsyncHTTPTransport):
            async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
                if request.method != "GET":
                    request.url = request.url.copy_with(port=next(ports))
                return await super().handle_async_request(request)

        headers = {"Authorization": f"Bearer {ALICE}"}
        async with httpx2.AsyncClient(transport=RoundRobin(), headers=headers, timeout=10) as http:
            url = f"http://127.0.0.1:{a.http.base_url.port}{MCP_PATH}"
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, mode="legacy", client_info=READER_INFO) as client:  # type: ignore[arg-type]
                texts = [(await client.call_tool("toy/echo", {"text": str(i)})).content[0] for i in range(6)]
    assert [getattr(text, "text", None) for text in texts] == [str(i) for i in range(6)]


async def test_without_the_store_a_replica_keeps_its_own_sessions_and_restores_none() -> None:
    async with replicas(f"redis://127.0.0.1:{free_port()}/0") as (a, b):
        session = await a.open()
        assert answer(await a.rpc(session, "ping"))["result"] == {}
        refused = await b.rpc(session, "ping")
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == types.INTERNAL_ERROR


def test_a_shared_store_needs_session_keys() -> None:
    with pytest.raises(ValidationError, match="session_keys"):
        ClusterConfig(store=SecretStr("memory"))
    with pytest.raises(ValidationError, match="32 characters"):
        ClusterConfig(store=SecretStr("memory"), session_keys=(SecretStr("short"),))


class Counting(MemoryStore):
    """A store that counts its round trips."""

    def __init__(self) -> None:
        super().__init__()
        self.trips = 0
        self.touched = anyio.Event()

    async def get(self, key: str) -> bytes | None:
        self.trips += 1
        return await super().get(key)

    async def touch(self, key: str, ttl: float) -> bytes | None:
        self.trips += 1
        self.touched.set()
        return await super().touch(key, ttl)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self.trips += 1
        await super().set(key, value, ttl)


async def test_a_plain_2026_call_makes_no_store_round_trip_and_a_2025_request_one() -> None:
    store = Counting()
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    modern = {**_headers(ALICE), "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call"}
    params = {"name": "toy/echo", "arguments": {"text": "hi"}, "_meta": meta}
    async with replicas(store) as (a, _):
        session = await a.open()
        before = store.trips
        body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
        called = await a.http.post(MCP_PATH, json=body, headers={**modern, "Mcp-Name": "toy/echo"})
        after_modern = store.trips
        answer(await a.rpc(session, "ping"))
    assert answer(called)["result"]["content"][0]["text"] == "hi"
    assert (after_modern - before, store.trips - after_modern) == (0, 1)


async def test_an_open_get_stream_keeps_the_session_alive_in_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway.front.portable_sessions, "KEEP_ALIVE", 0.05)
    store = Counting()
    async with replicas(store) as (a, _):
        session = await a.open()
        async with a.http.stream("GET", MCP_PATH, headers=_headers(ALICE, session)) as stream:
            assert stream.status_code == 200
            seen = store.trips
            with anyio.fail_after(5):
                while store.trips < seen + 2:
                    await store.touched.wait()
                    store.touched = anyio.Event()


async def test_a_get_stream_on_one_replica_follows_subscriptions_made_on_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gateway.front.portable_sessions, "KEEP_ALIVE", 0.05)
    store = Counting()
    count = {"name": "toy/subscribers", "arguments": {"uri": "toy://notes/1"}}
    async with replicas(store) as (a, b):
        session = await a.open()
        async with a.http.stream("GET", MCP_PATH, headers=_headers(ALICE, session)) as stream:
            assert stream.status_code == 200
            assert "result" in answer(await b.rpc(session, "resources/subscribe", {"uri": NOTE}))
            with anyio.fail_after(5):
                while NOTE not in _held(a):
                    await store.touched.wait()
                    store.touched = anyio.Event()
            both = answer(await b.rpc(session, "tools/call", count))["result"]["content"][0]["text"]
            assert "result" in answer(await b.rpc(session, "resources/unsubscribe", {"uri": NOTE}))
            with anyio.fail_after(5):
                while NOTE in _held(a):
                    await store.touched.wait()
                    store.touched = anyio.Event()
    assert both == "2"  # the stream's replica holds the subscription at its own link too


def _held(replica: Replica) -> set[str]:
    """The URIs some 2025 session copy on ``replica`` is subscribed to."""
    return set(replica.gateway.subscriptions._subscribers)


@pytest.mark.processes
async def test_a_session_deleted_on_one_replica_ends_its_stream_on_another_at_once(redis_url: str) -> None:
    """The replicas share a bus: the one that ended the session tells the others, which close their copies (and
    the GET streams on them) without waiting for a request there."""
    async with replicas(redis_url) as (a, b):
        session = await a.open()
        listening = {**_headers(ALICE, session), "Accept": "text/event-stream"}
        async with a.http.stream("GET", MCP_PATH, headers=listening) as stream:
            assert stream.status_code == 200
            assert (await b.http.delete(MCP_PATH, headers=_headers(ALICE, session))).status_code == 200
            with anyio.fail_after(5):
                async for _ in stream.aiter_bytes():
                    pass
