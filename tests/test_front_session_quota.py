"""``SessionQuota``: which sessions are closed to admit a new one, and which once it is open, for a session
table that holds sessions least recently used first (the order ``SessionTable.held`` gives)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
from starlette.types import Receive, Scope, Send

from gateway.front.session_quota import SessionQuota
from gateway.principal import Principal
from gateway.security.auth import SCOPE_PRINCIPAL

pytestmark = pytest.mark.anyio
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}


class Table:
    """Open sessions in order of last use (least recent first), each with the principal that opened it."""

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity
        self.order: list[str] = []  # as the SDK's table holds them
        self.owner: dict[str, str] = {}
        self.closed: list[str] = []

    @property
    def size(self) -> int:
        return len(self.order)

    def hold(self, session_id: str, key: str) -> None:
        self.owner[session_id] = key

    def held(self, key: str) -> list[str]:
        return [s for s in self.order if self.owner.get(s) == key]

    def largest_holder(self, prefer: str, opening: Mapping[str, int]) -> str | None:
        counts = dict(opening)
        for session in self.order:
            if session in self.owner:
                counts[self.owner[session]] = counts.get(self.owner[session], 0) + 1
        return max(counts, key=lambda key: (counts[key], key == prefer), default=None)

    async def close(self, session_id: str) -> None:
        self.order.remove(session_id)
        self.closed.append(session_id)

    def use(self, session_id: str) -> None:
        self.order.remove(session_id)
        self.order.append(session_id)


class Endpoint:
    """Stands for the SDK's endpoint: an opening makes a session (``refuse``: answers 400 instead); ``gate``,
    when set, holds requests until it is set; ``arrivals`` hears of each request as it reaches the endpoint."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.refuse = False
        self.gate: anyio.Event | None = None
        self.arrived, self.arrivals = anyio.create_memory_object_stream[str](16)
        self._count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.arrived.send_nowait(scope["path"])
        if self.gate is not None:
            await self.gate.wait()
        headers = [(b"content-type", b"application/json")]
        status = 400 if self.refuse else 200
        if status == 200 and not any(name == b"mcp-session-id" for name, _ in scope["headers"]):
            self._count += 1
            session = f"s{self._count}"
            self.table.order.append(session)
            headers.append((b"mcp-session-id", session.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})


class Quota:
    def __init__(self, capacity: int | None, per_principal: int) -> None:
        self.table = Table(capacity)
        self.endpoint = Endpoint(self.table)
        self.ended: list[str] = []
        self.app = SessionQuota(self.endpoint, self.table, per_principal, self.ended.append)

    async def authenticated(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As the HTTP security layer leaves it: the principal in the scope (here named by ``x-who``)."""
        who = dict(scope["headers"]).get(b"x-who", b"anonymous").decode()
        await self.app({**scope, SCOPE_PRINCIPAL: Principal(who, method="api_key")}, receive, send)


@asynccontextmanager
async def quota(
    capacity: int | None = None, per_principal: int = 100
) -> AsyncIterator[tuple[Quota, httpx2.AsyncClient]]:
    q = Quota(capacity, per_principal)
    transport = httpx2.ASGITransport(app=q.authenticated)
    async with (
        q.endpoint.arrivals,
        q.endpoint.arrived,
        httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
    ):
        yield q, http


async def open_as(http: httpx2.AsyncClient, who: str) -> str | None:
    with anyio.fail_after(5):
        answer = await http.post("/mcp", json=INITIALIZE, headers={"x-who": who})
    return answer.headers.get("mcp-session-id")


async def test_a_principal_over_its_cap_loses_its_own_least_recently_used_session_and_nobody_elses() -> None:
    async with quota(per_principal=2) as (q, http):
        bob = await open_as(http, "bob")
        first, second = await open_as(http, "alice"), await open_as(http, "alice")
        assert first and second and bob
        q.table.use(first)  # alice's second session is now her least recently used
        third = await open_as(http, "alice")
    assert q.table.closed == q.ended == [second]
    assert q.table.held("api_key:alice") == [first, third]
    assert q.table.held("api_key:bob") == [bob]


async def test_a_full_table_sheds_the_least_recently_used_session_of_the_largest_holder() -> None:
    async with quota(capacity=4) as (q, http):
        alice = await open_as(http, "alice")
        mallory = [await open_as(http, "mallory") for _ in range(3)]
        assert alice and all(mallory)
        q.table.use(str(mallory[0]))
        newcomer = await open_as(http, "bob")
    assert q.table.closed == q.ended == [mallory[1]]
    assert newcomer is not None and q.table.size == 4
    assert q.table.held("api_key:alice") == [alice]


async def test_on_a_tie_a_full_table_sheds_the_requesters_own_session() -> None:
    async with quota(capacity=2) as (q, http):
        alice, bob = await open_as(http, "alice"), await open_as(http, "bob")
        await open_as(http, "bob")
        assert q.table.closed == [bob]
        await open_as(http, "alice")
    assert q.table.closed == [bob, alice]


async def test_a_burst_of_openings_counts_against_its_principal_and_pushes_out_nobody_elses_session() -> None:
    async with quota(capacity=2) as (q, http):
        alice = await open_as(http, "alice")
        q.endpoint.gate = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(open_as, http, "mallory")
            with anyio.fail_after(5):
                await q.endpoint.arrivals.receive()  # mallory's first opening is being answered
            tg.start_soon(open_as, http, "mallory")  # the table is full with it: mallory is the largest holder
            with anyio.fail_after(5):
                await q.endpoint.arrivals.receive()
            q.endpoint.gate.set()
    assert q.table.closed == []
    assert q.table.held("api_key:alice") == [alice]


async def test_a_refused_opening_holds_nothing_and_requests_in_a_session_pass_untouched() -> None:
    async with quota(capacity=1, per_principal=1) as (q, http):
        q.endpoint.refuse = True
        assert await open_as(http, "alice") is None
        q.endpoint.refuse = False
        session = await open_as(http, "alice")
        assert session is not None
        in_session = {"x-who": "alice", "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        answer = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=in_session)
        assert answer.status_code == 200
    assert q.table.closed == [] and q.table.held("api_key:alice") == [session]
