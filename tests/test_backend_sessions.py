"""Per-client backend sessions shared between replicas: the record in the store (sealed, found, refreshed, ended
once); two replicas' ``ClientSessions`` in one process sharing a store in front of a real HTTP backend (one opens
the backend session, the other joins it, a session the backend forgot is replaced, and it ends once); and two
``serve`` replicas sharing a Redis, a 2025 session's calls alternating between them."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import count
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.cluster.backend_sessions import BackendRecord, BackendSessions
from gateway.cluster.keyring import Keyring
from gateway.cluster.store import MemoryStore, RedisStore
from gateway.config import BackendConfig
from gateway.upstream.client_sessions import ClientSessions
from gateway.upstream.transports import end_session, open_transport
from tests.support import toy_server
from tests.support.cluster import SESSION_KEY, shared_state
from tests.support.loopback import serving
from tests.support.procs import Processes, free_port, http_get, listening, wait_until
from tests.support.redis_server import start_redis

pytestmark = pytest.mark.anyio
KEY = "backend-session-test-key-0123456789abcdef"
RESULT = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "toy", "version": "1"}}
ALICE = ("alice", "downstream-1")


def record(session_id: str = "backend-1", principal: str = "alice") -> BackendRecord:
    return BackendRecord(principal, "http://toy.invalid/mcp", session_id, RESULT)


async def test_a_record_is_kept_sealed_and_found_again_with_its_time_to_live_restarted() -> None:
    now = [0.0]
    store = MemoryStore(clock=lambda: now[0])
    shared = BackendSessions(store, Keyring([KEY]))
    await shared.keep("toy", "downstream-1", record(), ttl=60)
    raw = [value for value, _ in store._values.values()]
    assert raw and all(b"backend-1" not in value and b"downstream-1" not in value for value in raw)
    now[0] = 50.0
    found = await shared.find("toy", "downstream-1", ttl=60)
    assert found == record() and found.version == "2025-11-25"
    now[0] = 100.0  # past the first write's expiry, within the one ``find`` restarted
    assert await shared.peek("toy", "downstream-1") == record()
    assert await shared.peek("other", "downstream-1") is None
    assert await shared.peek("toy", "downstream-2") is None
    now[0] = 200.0
    assert await shared.peek("toy", "downstream-1") is None


async def test_a_record_sealed_with_a_key_no_longer_configured_is_not_found() -> None:
    store = MemoryStore()
    await BackendSessions(store, Keyring(["another-key-0123456789abcdef0123456789"])).keep("toy", "d", record(), 60)
    assert await BackendSessions(store, Keyring([KEY])).find("toy", "d", ttl=60) is None


async def test_a_backend_session_is_claimed_for_closing_once() -> None:
    shared = BackendSessions(MemoryStore(), Keyring([KEY]))
    assert await shared.closing("toy", "backend-1", ttl=60)
    assert not await shared.closing("toy", "backend-1", ttl=60)
    assert await shared.closing("toy", "backend-2", ttl=60)


class Deletes:
    """ASGI middleware that counts the DELETEs reaching the backend, by session id, and notes the session and
    JSON-RPC id of each request posted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.deleted: list[str] = []
        self.requests: list[tuple[str, object]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = dict(scope.get("headers", [])).get(b"mcp-session-id", b"").decode()
        if scope["type"] == "http" and scope["method"] == "DELETE":
            self.deleted.append(session)
        if scope["type"] == "http" and scope["method"] == "POST":
            receive = await self._noting(session, receive)
        await self.app(scope, receive, send)

    async def _noting(self, session: str, receive: Receive) -> Receive:
        """Read the body, note its request's id, and hand the app the same body."""
        messages = [await receive()]
        while messages[-1].get("more_body"):
            messages.append(await receive())
        message = json.loads(b"".join(part.get("body", b"") for part in messages) or b"{}")
        if isinstance(message, dict) and "method" in message and "id" in message:
            self.requests.append((session, message["id"]))
        replay = iter(messages)

        async def replayed() -> Any:
            return next(replay, None) or await receive()

        return replayed


@asynccontextmanager
async def replicas(count: int, **fields: Any) -> AsyncIterator[tuple[list[ClientSessions], BackendSessions, Deletes]]:
    """``count`` replicas' per-client sessions of one toy backend over HTTP, sharing one store."""
    backend = Deletes(toy_server.build().streamable_http_app(host="127.0.0.1"))
    shared = BackendSessions(MemoryStore(), Keyring([KEY]))
    async with serving(backend) as url, anyio.create_task_group() as tg:
        config = BackendConfig(name="toy", url=url, protocol="legacy", session="per_client", **fields)
        pools = [ClientSessions(config, open_transport, lambda line: None, shared) for _ in range(count)]
        for pool in pools:
            await tg.start(pool.run)
        yield pools, shared, backend
        tg.cancel_scope.cancel()


async def call(pool: ClientSessions, tool: str, **arguments: str) -> str:
    async with pool.lease(ALICE) as lease:
        result = await lease.client.call_tool(tool, arguments)
    return str(result.content[0].text)  # type: ignore[union-attr]


async def wait_for(condition: Any) -> None:
    with anyio.fail_after(10):
        while not condition():
            await anyio.sleep(0.01)


async def test_a_second_replica_joins_the_backend_session_and_it_ends_once_with_the_client() -> None:
    async with replicas(2) as ((a, b), shared, backend):
        await call(a, "remember", value="kept")
        assert (await call(b, "recall")).startswith("kept@")
        found = await shared.peek("toy", ALICE[1])
        assert found is not None and found.principal == "alice"
        a.end(ALICE[1])
        b.end(ALICE[1])  # the other replica hears of the end too (the bus)
        await wait_for(lambda: backend.deleted)
        assert await shared.peek("toy", ALICE[1]) is None
        assert backend.deleted == [found.session_id]
        assert (a.count, b.count) == (0, 0)
        assert (await call(b, "recall")).startswith("@")  # a new backend session, empty


async def test_replicas_sharing_a_backend_session_never_send_it_two_requests_under_one_id() -> None:
    """The backend keys a request's response stream by its id within the session: a replica that joined numbers
    its requests apart from the one that opened it, or their answers (and stream ends) would cross."""
    async with replicas(2) as ((a, b), shared, backend):
        await call(a, "remember", value="kept")
        assert (await call(b, "recall")).startswith("kept@")
        with anyio.fail_after(10):  # a response routed to the other replica's stream leaves a call unanswered
            async with anyio.create_task_group() as tg:
                for pool in (a, b, a, b):
                    tg.start_soon(call, pool, "recall")
        found = await shared.peek("toy", ALICE[1])
        assert found is not None
        ids = [request_id for session, request_id in backend.requests if session == found.session_id]
        assert len(ids) >= 8 and len(set(ids)) == len(ids), ids


async def test_another_principal_naming_the_same_downstream_session_gets_a_backend_session_of_its_own() -> None:
    async with replicas(2) as ((a, b), _, _):
        await call(a, "remember", value="alice's")
        async with b.lease(("mallory", ALICE[1])) as lease:
            result = await lease.client.call_tool("recall", {})
        assert str(result.content[0].text).startswith("@")  # type: ignore[union-attr]


async def test_a_backend_session_the_backend_forgot_is_replaced_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with replicas(2) as ((a, b), shared, _):
        await call(a, "remember", value="lost")
        forgotten = await shared.peek("toy", ALICE[1])
        assert forgotten is not None
        assert await end_session(a.config, forgotten.session_id, forgotten.version) == 200
        with caplog.at_level(logging.WARNING, logger="gateway.upstream.client_sessions"):
            assert (await call(b, "recall")).startswith("@")
        assert "no longer knows a client session" in caplog.text
        fresh = await shared.peek("toy", ALICE[1])
        assert fresh is not None and fresh.session_id != forgotten.session_id
        assert (await call(b, "remember", value="again")) and (await call(b, "recall")).startswith("again@")


async def test_a_copy_idle_here_leaves_the_session_to_a_replica_still_using_it_then_the_last_one_ends_it() -> None:
    async with replicas(2, session_idle_timeout=0.5) as ((a, b), shared, backend):
        await call(a, "remember", value="kept")
        found = await shared.peek("toy", ALICE[1])
        assert found is not None
        with anyio.fail_after(10):
            while a.count:  # b keeps using it meanwhile, so the record stays alive
                assert (await call(b, "recall")).startswith("kept@")
                await anyio.sleep(0.05)
        assert backend.deleted == []
        await wait_for(lambda: backend.deleted)
        assert backend.deleted == [found.session_id] and b.count == 0


async def test_without_a_store_a_backend_session_ends_with_its_connection_as_before() -> None:
    backend = Deletes(toy_server.build().streamable_http_app(host="127.0.0.1"))
    async with serving(backend) as url, anyio.create_task_group() as tg:
        config = BackendConfig(name="toy", url=url, protocol="legacy", session="per_client")
        pool = ClientSessions(config, open_transport, lambda line: None)
        await tg.start(pool.run)
        await call(pool, "remember", value="x")
        pool.end(ALICE[1])
        await wait_for(lambda: backend.deleted)
        tg.cancel_scope.cancel()


def rpc_answer(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC answer in a plain JSON body or the last ``data:`` line of an SSE stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        answer: dict[str, Any] = json.loads(data[-1])
        return answer
    return dict(response.json())


class Session2025:
    """A 2025 client's session spoken by hand, so that each request can go to the replica the test names."""

    def __init__(self, http: httpx2.AsyncClient) -> None:
        self.http = http
        self.id = ""
        self.ids = count(1)

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
        return {**headers, "Mcp-Session-Id": self.id} if self.id else headers

    async def open(self, url: str) -> None:
        params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "curl", "version": "1"}}
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": "initialize", "params": params}
        response = await self.http.post(url, json=body, headers=self.headers())
        assert response.status_code == 200, response.text
        self.id = response.headers["mcp-session-id"]
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await self.http.post(url, json=initialized, headers=self.headers())).status_code == 202

    async def call(self, url: str, tool: str, **arguments: str) -> str:
        params = {"name": tool, "arguments": arguments}
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": "tools/call", "params": params}
        answer = rpc_answer(await self.http.post(url, json=body, headers=self.headers()))
        assert "result" in answer and not answer["result"].get("isError"), answer
        return str(answer["result"]["content"][0]["text"])


def start_replica(processes: Processes, tmp_path: Path, index: int, config: dict[str, Any]) -> str:
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(config))
    port = free_port()
    state = tmp_path / f"state-{index}"
    state.mkdir()
    args = ("-m", "gateway", "serve", "--config", str(path), "--port", str(port), "--log-level", "warning")
    processes.start(*args, env={"XDG_STATE_HOME": str(state)})
    wait_until(lambda: listening(port) and http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, timeout=60)
    return f"http://127.0.0.1:{port}/mcp"


@pytest.mark.processes
async def test_a_session_keeps_its_backend_state_on_another_replica_and_its_delete_ends_it_there(
    processes: Processes, tmp_path: Path
) -> None:
    """Two ``serve`` replicas sharing a real Redis, a toy backend over HTTP with per-client sessions: what the
    client's backend session holds after a call through replica A is there for its next call through replica B,
    and a DELETE through B ends the backend session (the backend answers 404 for it after)."""
    redis_url = start_redis(processes)
    toy = free_port()
    processes.start("-m", "tests.support.toy_server", "--port", str(toy))
    wait_until(lambda: listening(toy), what="the toy backend to listen")
    toy_url = f"http://127.0.0.1:{toy}/mcp"
    backend = {"name": "own", "url": toy_url, "protocol": "legacy", "session": "per_client"}
    config = {"backends": [backend], **shared_state(redis_url)}
    a, b = (start_replica(processes, tmp_path, index, config) for index in range(2))
    store = RedisStore(redis_url)
    shared = BackendSessions(store, Keyring([SESSION_KEY]))
    try:
        async with httpx2.AsyncClient(timeout=30) as http:
            client = Session2025(http)
            await client.open(a)
            await client.call(a, "own/remember", value="cart: 3 apples")
            assert (await client.call(b, "own/recall")).startswith("cart: 3 apples@")
            assert (await client.call(a, "own/recall")).startswith("cart: 3 apples@")
            kept = await shared.peek("own", client.id)
            assert kept is not None
            assert (await http.delete(b, headers=client.headers())).status_code == 200

            async def backend_forgot() -> bool:
                headers = {"Accept": "application/json, text/event-stream", "Mcp-Session-Id": kept.session_id}
                headers["MCP-Protocol-Version"] = kept.version
                ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
                return (await http.post(toy_url, json=ping, headers=headers)).status_code == 404

            with anyio.fail_after(10):
                while not await backend_forgot():
                    await anyio.sleep(0.05)
            assert await shared.peek("own", client.id) is None
    finally:
        await store.aclose()
