"""Three gateway replicas behind a real nginx (round robin) with one Redis: calls spread over every replica, a
replica killed under load costs no call that is safe to repeat, a drained one finishes its calls, and a backend's
``list_changed`` reaches the clients of every replica (see ``tests/support/cluster.py``)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, types

from tests.support.cluster import BACKEND, REPLICAS, Cluster
from tests.support.procs import Processes
from tests.support.redis_server import start_redis

pytestmark = [pytest.mark.anyio, pytest.mark.processes]
MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
# What a client does about a failed call that is safe to repeat (a read-only tool): nginx repeats only what never
# reached a replica, and the 2026 methods that change nothing (deploy/nginx/mcp-gateway.conf).
RETRIED_STATUSES = {502, 503, 504}
ATTEMPTS = 3
IDS = count(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Shared by the tests that leave every replica running."""
    procs = Processes()
    try:
        yield Cluster(tmp_path_factory.mktemp("cluster"), procs, start_redis(procs)).start()
    finally:
        procs.stop_all()


@pytest.fixture
def own_cluster(tmp_path: Path, processes: Processes) -> Cluster:
    """A cluster for one test that stops a replica."""
    return Cluster(tmp_path, processes, start_redis(processes)).start()


def _answer(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC answer in a plain JSON body or the last ``data:`` line of an SSE stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        answer: dict[str, Any] = json.loads(data[-1])
    else:
        answer = response.json()
    return answer


async def _post(http: httpx2.AsyncClient, url: str, method: str, params: dict[str, Any]) -> httpx2.Response:
    """One 2026 request, with the routing headers a 2026 client sends."""
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": method,
    }
    if "name" in params:
        headers["Mcp-Name"] = params["name"]
    body = {"jsonrpc": "2.0", "id": next(IDS), "method": method, "params": {**params, "_meta": META}}
    return await http.post(url, json=body, headers=headers, timeout=30)


async def _outcome(http: httpx2.AsyncClient, url: str, method: str, params: dict[str, Any], attempts: int) -> str:
    """``ok``, or why the request failed after ``attempts`` tries (a status, an error, a transport failure)."""
    why = "not tried"
    for _ in range(attempts):
        try:
            response = await _post(http, url, method, params)
        except httpx2.TransportError as exc:
            why = type(exc).__name__
            continue
        if response.status_code in RETRIED_STATUSES:
            why = f"HTTP {response.status_code}"
            continue
        answer = _answer(response)
        return "ok" if "result" in answer and not answer["result"].get("isError") else f"answered {answer}"
    return why


def _text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent), result
    return block.text


async def test_2026_calls_through_the_load_balancer_are_served_by_every_replica(cluster: Cluster) -> None:
    start = len(cluster.served())
    async with Client(cluster.url, mode=MODERN) as client:
        for i in range(3 * REPLICAS):
            assert _text(await client.call_tool(f"{BACKEND}/echo", {"text": f"call {i}"})) == f"call {i}"
    served = cluster.served_by(3 * REPLICAS, since=start)
    assert set(served) == set(range(REPLICAS)), served


async def test_a_call_labelled_as_a_method_nginx_repeats_is_refused(cluster: Cluster) -> None:
    """nginx picks the requests it repeats by their ``Mcp-Method`` header; a ``tools/call`` labelled ``tools/list``
    is refused by the replica (-32020), so the label cannot get a call with side effects repeated."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": f"{BACKEND}/echo", "_meta": META}}
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": MODERN, "Mcp-Name": "toy/echo"}
    async with httpx2.AsyncClient() as http:
        answer = await http.post(cluster.url, json=body, headers={**headers, "Mcp-Method": "tools/list"}, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == types.HEADER_MISMATCH


async def test_a_replica_killed_under_load_costs_no_call_that_is_safe_to_repeat(own_cluster: Cluster) -> None:
    """200 calls at concurrency 8, half ``tools/list`` (nginx repeats it: the client does not), half a read-only
    tool (the client repeats it on a 502); replica 1 gets SIGKILL once 50 have finished."""
    total, concurrency, kill_after = 200, 8, 50
    outcomes: list[str] = []
    halfway = anyio.Event()
    calls = iter(range(total))

    async def worker(http: httpx2.AsyncClient) -> None:
        for i in calls:
            if i % 2:
                params = {"name": f"{BACKEND}/slow_read", "arguments": {"seconds": 0.02}}
                outcomes.append(await _outcome(http, own_cluster.url, "tools/call", params, ATTEMPTS))
            else:
                outcomes.append(await _outcome(http, own_cluster.url, "tools/list", {}, 1))
            if len(outcomes) >= kill_after:
                halfway.set()

    async def killer() -> None:
        await halfway.wait()
        await anyio.to_thread.run_sync(own_cluster.kill, 1)

    with anyio.fail_after(120):
        async with httpx2.AsyncClient() as http, anyio.create_task_group() as tasks:
            tasks.start_soon(killer)
            for _ in range(concurrency):
                tasks.start_soon(worker, http)
    failed = [o for o in outcomes if o != "ok"]
    assert len(outcomes) == total and not failed, failed
    tried = own_cluster.served(total)
    assert any(1 in replicas for replicas in tried[kill_after:]), "the killed replica was never tried again"
    assert any(replicas[-1] == 1 for replicas in tried), "replica 1 served nothing before it was killed"


async def test_a_replica_drained_with_sigterm_finishes_the_calls_it_holds(own_cluster: Cluster) -> None:
    """Three slow calls at once land on the three replicas (round robin); replica 0 gets SIGTERM while they run."""
    params = {"name": f"{BACKEND}/slow_read", "arguments": {"seconds": 2}}
    outcomes: list[str] = []

    async def call(http: httpx2.AsyncClient) -> None:
        outcomes.append(await _outcome(http, own_cluster.url, "tools/call", params, 1))

    def started() -> int:
        return own_cluster.journal.read_text().count("read\n")

    with anyio.fail_after(60):
        async with httpx2.AsyncClient() as http, anyio.create_task_group() as tasks:
            for _ in range(REPLICAS):
                tasks.start_soon(call, http)
            while started() < REPLICAS:
                await anyio.sleep(0.02)
            replica = own_cluster.signal(0, signal.SIGTERM)
    assert outcomes == ["ok"] * REPLICAS
    assert sorted(replicas[-1] for replicas in own_cluster.served(REPLICAS)) == list(range(REPLICAS))
    assert await anyio.to_thread.run_sync(lambda: replica.wait(timeout=30)) == 0


class Heard:
    """The ``tools/list_changed`` notifications one client received."""

    def __init__(self) -> None:
        self.changed = anyio.Event()

    async def handle(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.changed.set()


async def test_list_changed_reaches_the_clients_of_every_replica(cluster: Cluster) -> None:
    """Each replica holds its own link to the backend; a tool added through one replica is announced by all three,
    to clients of both eras."""
    heard = {(index, era): Heard() for index in range(REPLICAS) for era in ("legacy", MODERN)}
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            listening = [anyio.Event() for _ in heard]
            for ((index, era), ear), ready in zip(heard.items(), listening, strict=True):
                tasks.start_soon(_listen, cluster.replica_url(index), era, ear, ready)
            for ready in listening:
                await ready.wait()
            async with Client(cluster.url, mode=MODERN) as client:
                assert _text(await client.call_tool(f"{BACKEND}/add_tool", {"tool_name": "fresh"})) == "added"
            for ear in heard.values():
                await ear.changed.wait()
            tasks.cancel_scope.cancel()
    for index in range(REPLICAS):
        async with Client(cluster.replica_url(index), mode=MODERN) as client:
            assert _text(await client.call_tool(f"{BACKEND}/fresh", {})) == "I am fresh"


async def _listen(url: str, era: str, heard: Heard, ready: anyio.Event) -> None:
    """A client of ``era`` on one replica, listening for tool list changes until cancelled."""
    async with Client(url, mode=era, message_handler=heard.handle) as client:
        if era == MODERN:
            async with client.listen(tools_list_changed=True):
                ready.set()
                await anyio.sleep_forever()
        await client.list_tools()
        ready.set()
        await anyio.sleep_forever()


async def test_a_2025_session_spread_over_every_replica_works_call_after_call(cluster: Cluster) -> None:
    start = len(cluster.served())
    async with Client(cluster.url, mode="legacy") as client:
        for i in range(3 * REPLICAS):
            assert _text(await client.call_tool(f"{BACKEND}/echo", {"text": f"call {i}"})) == f"call {i}"
    assert set(cluster.served_by(3 * REPLICAS, since=start)) == set(range(REPLICAS))


async def test_a_2025_session_outlives_the_replica_that_opened_it(own_cluster: Cluster) -> None:
    """A 2025 client's session, spread over the replicas, keeps working after one of them gets SIGKILL: no call
    after the kill fails (a session refused would fail them all: the SDK client does not initialize again)."""
    start = len(own_cluster.served())
    async with Client(own_cluster.url, mode="legacy") as client:
        for i in range(REPLICAS):
            assert _text(await client.call_tool(f"{BACKEND}/echo", {"text": f"before {i}"})) == f"before {i}"
        await anyio.to_thread.run_sync(own_cluster.kill, 0)
        for i in range(3 * REPLICAS):
            assert _text(await client.call_tool(f"{BACKEND}/echo", {"text": f"after {i}"})) == f"after {i}"
    assert 0 in own_cluster.served_by(REPLICAS, since=start), "the killed replica served nothing of the session"
