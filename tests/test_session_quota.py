"""2025 session admission over real HTTP: a cap per principal, a full table that sheds the largest holder's least
recently used session, and openings that spend the principal's rate-limit budget."""

from __future__ import annotations

import gc
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp.server.streamable_http import StreamableHTTPServerTransport

import gateway.front.app
from gateway.errors import RATE_LIMITED
from gateway.front.app import MCP_PATH
from gateway.front.session_table import SessionTable
from tests.support.inproc import http_client, running_gateway, serving
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
VERSION = "2025-11-25"
ALICE, MALLORY = "alice-key-0123456789abcdef", "mallory-key-0123456789abcd"
MCP = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT}
SMALL = {
    "auth": {"api_keys": [{"principal": "alice", "key": ALICE}, {"principal": "mallory", "key": MALLORY}]},
    "policy": {"default": "allow"},
    "limits": {"max_sessions_per_principal": 3, "max_client_sessions": 5},
}


class Spy:
    """The app's session table and every session transport made, held weakly (to see shed ones go)."""

    def __init__(self) -> None:
        self.tables: list[SessionTable] = []
        self.transports: weakref.WeakSet[StreamableHTTPServerTransport] = weakref.WeakSet()

    @property
    def table(self) -> SessionTable:
        return self.tables[0]

    async def settled(self, alive: int) -> None:
        """Wait (bounded) until no more than ``alive`` session transports remain in memory."""
        with anyio.fail_after(10):
            while gc.collect() >= 0 and len(self.transports) > alive:
                await anyio.sleep(0.02)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spy]:
    seen = Spy()
    made = StreamableHTTPServerTransport.__init__

    class Table(SessionTable):
        def __init__(self) -> None:
            super().__init__()
            seen.tables.append(self)

    def recorded(self: StreamableHTTPServerTransport, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        if self.mcp_session_id is not None:
            seen.transports.add(self)

    monkeypatch.setattr(gateway.front.app, "SessionTable", Table)
    monkeypatch.setattr(StreamableHTTPServerTransport, "__init__", recorded)
    yield seen


@asynccontextmanager
async def gateway_at(**security: Any) -> AsyncIterator[tuple[str, httpx2.AsyncClient]]:
    """A gateway on a real loopback socket, and a plain HTTP client for raw requests to it."""
    async with (
        running_gateway({"toy": build("toy")}, security=security) as gw,
        serving(gw) as url,
        httpx2.AsyncClient(base_url=url.removesuffix(MCP_PATH), timeout=10) as http,
    ):
        yield url, http


def headers(token: str | None, session: str | None = None) -> dict[str, str]:
    sent = dict(MCP)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if session is not None:
        sent |= {"Mcp-Session-Id": session, "MCP-Protocol-Version": VERSION}
    return sent


async def open_session(http: httpx2.AsyncClient, token: str | None = None) -> str:
    opened = await http.post(MCP_PATH, json=INITIALIZE, headers=headers(token))
    assert opened.status_code == 200, opened.text
    session = opened.headers["mcp-session-id"]
    done = await http.post(
        MCP_PATH, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers(token, session)
    )
    assert done.status_code == 202
    return session


async def use(http: httpx2.AsyncClient, session: str, token: str | None = None) -> int:
    """The HTTP status of a ``tools/list`` in the session."""
    listed = await http.post(
        MCP_PATH, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers(token, session)
    )
    return listed.status_code


async def test_an_abuser_loses_its_own_oldest_sessions_and_never_keeps_another_principal_out(spy: Spy) -> None:
    async with gateway_at(**SMALL) as (url, http):
        mallory = [await open_session(http, MALLORY) for _ in range(12)]
        statuses = [await use(http, session, MALLORY) for session in mallory]
        async with http_client(url, mode="legacy", token=ALICE) as alice:
            tools = (await alice.list_tools()).tools
            assert spy.table.size <= 5
        await spy.settled(alive=3)
    assert statuses == [404] * 9 + [200] * 3
    assert {tool.name for tool in tools} >= {"toy/echo"}


async def test_a_full_table_sheds_the_least_recently_used_session_of_the_largest_holder(spy: Spy) -> None:
    async with gateway_at(**SMALL) as (_, http):
        mallory = [await open_session(http, MALLORY) for _ in range(3)]
        alice = [await open_session(http, ALICE) for _ in range(2)]
        assert await use(http, mallory[0], MALLORY) == 200  # the second is now mallory's least recently used
        alice.append(await open_session(http, ALICE))
        assert [await use(http, session, ALICE) for session in alice] == [200, 200, 200]
        assert [await use(http, session, MALLORY) for session in mallory] == [200, 404, 200]
        assert spy.table.size == 5
        await spy.settled(alive=5)


async def test_a_burst_of_concurrent_openings_pushes_out_nobody_elses_sessions(spy: Spy) -> None:
    statuses: list[int] = []
    async with gateway_at(**SMALL) as (_, http):
        alice = [await open_session(http, ALICE) for _ in range(2)]

        async def opening() -> None:
            statuses.append((await http.post(MCP_PATH, json=INITIALIZE, headers=headers(MALLORY))).status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(opening)
        held = len(spy.table.held("api_key:mallory"))
        alice.append(await open_session(http, ALICE))
        assert [await use(http, session, ALICE) for session in alice] == [200, 200, 200]
        assert spy.table.size <= 5
    assert held <= 3
    assert set(statuses) <= {200, 503} and 200 in statuses


async def test_with_default_settings_the_101st_session_of_a_principal_closes_its_least_recently_used(
    spy: Spy,
) -> None:
    async with gateway_at() as (url, http):
        sessions = [await open_session(http) for _ in range(100)]
        async with http_client(url, mode="legacy") as client:
            tools = (await client.list_tools()).tools
            assert spy.table.size == 100
        assert [await use(http, session) for session in sessions[:2]] == [404, 200]
    assert tools


async def test_a_closed_sessions_backend_sessions_close_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    ended: list[str] = []
    limits = {"max_sessions_per_principal": 1}
    async with running_gateway({"toy": build("toy")}, security={"limits": limits}) as gw:
        monkeypatch.setattr(gw.router, "end_session", ended.append)
        async with serving(gw) as url, httpx2.AsyncClient(base_url=url.removesuffix(MCP_PATH), timeout=10) as http:
            first = await open_session(http)
            second = await open_session(http)
            assert [await use(http, session) for session in (first, second)] == [404, 200]
    assert ended == [first]


async def test_opening_a_session_over_the_rate_limit_gets_429_with_retry_after() -> None:
    limits = {"per_principal": {"rate": 0.001, "burst": 2}}
    async with gateway_at(limits=limits) as (_, http):
        session = await open_session(http)
        await open_session(http)
        refused = await http.post(MCP_PATH, json={**INITIALIZE, "id": 7}, headers=headers(None))
        stream = await http.get(MCP_PATH, headers={"Accept": "text/event-stream"})
        listed = await use(http, session)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    error = refused.json()
    assert error["id"] == 7
    assert error["error"]["code"] == RATE_LIMITED
    assert error["error"]["data"]["retryAfter"] > 0
    assert stream.status_code == 429  # a GET without a session would open one too
    assert listed == 200  # requests in an open session are not openings
