"""Per-client backend sessions: each downstream session its own upstream session, opened on first use, closed
with the downstream session or when idle, and capped."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError, types
from mcp.client.streamable_http import streamable_http_client

from gateway.config import BackendConfig, GatewayConfig
from gateway.core import Gateway
from gateway.errors import OUTCOME_UNKNOWN, BackendUnavailable
from gateway.upstream.client_sessions import ClientSessions
from tests.support import toy_server
from tests.support.inproc import serving
from tests.support.procs import ROOT, Processes, alive, children, free_port, http_get, listening, wait_until

pytestmark = pytest.mark.anyio


def text(result: Any) -> str:
    return str(result.content[0].text)


def readyz(port: int) -> dict[str, Any]:
    return {b["name"]: b for b in http_get(f"http://127.0.0.1:{port}/readyz")[1]["backends"]}


def serve(processes: Processes, tmp_path: Path, backends: list[dict[str, Any]]) -> int:
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps({"backends": backends}))
    port = free_port()
    processes.start("-m", "gateway", "serve", "--config", str(config), "--port", str(port))
    wait_until(lambda: listening(port) and http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, timeout=60)
    return port


async def test_each_client_keeps_its_own_backend_state_and_its_session_closes_with_it(
    processes: Processes, tmp_path: Path
) -> None:
    toy = free_port()
    processes.start("-m", "tests.support.toy_server", "--port", str(toy))
    wait_until(lambda: listening(toy))
    url = f"http://127.0.0.1:{toy}/mcp"
    port = serve(processes, tmp_path, [
        {"name": "own", "url": url, "protocol": "legacy", "session": "per_client"},
        {"name": "shared", "url": url, "protocol": "legacy"},
    ])  # fmt: skip
    gateway = f"http://127.0.0.1:{port}/mcp"
    async with Client(gateway, mode="legacy") as a:
        async with Client(gateway, mode="legacy") as b:
            for client, value in ((a, "a"), (b, "b")):
                await client.call_tool("own/remember", {"value": value})
                await client.call_tool("shared/remember", {"value": value})
            assert text(await a.call_tool("own/recall", {})).startswith("a@")
            assert text(await b.call_tool("own/recall", {})).startswith("b@")
            # The shared connection is one backend session: the last writer wins for everybody.
            assert text(await a.call_tool("shared/recall", {})).startswith("b@")
            assert readyz(port)["own"]["sessions"] == 2
        wait_until(lambda: readyz(port)["own"]["sessions"] == 1, what="b's backend session to close")
        assert text(await a.call_tool("own/recall", {})).startswith("a@")
    async with Client(gateway, mode="2026-07-28") as stateless:
        await stateless.call_tool("own/remember", {"value": "c"})
        # A stateless client has no session to keep: each of its requests gets a backend session of its own.
        assert text(await stateless.call_tool("own/recall", {})).startswith("@")
    wait_until(lambda: readyz(port)["own"]["sessions"] == 0, what="every backend session to close")


async def test_stdio_backend_runs_one_process_per_client_and_ends_it_with_the_client(
    processes: Processes, tmp_path: Path
) -> None:
    args = ["-m", "tests.support.toy_server", "--stdio", "--name", "local"]
    backend = {"name": "local", "transport": "stdio", "command": sys.executable, "args": args, "cwd": str(ROOT),
               "session": "per_client", "connect_timeout": 30}  # fmt: skip
    port = serve(processes, tmp_path, [backend])
    gateway_pid = processes.procs[-1].pid
    shared = children(gateway_pid)
    gateway = f"http://127.0.0.1:{port}/mcp"
    async with Client(gateway, mode="legacy") as a:
        async with Client(gateway, mode="legacy") as b:
            await a.call_tool("local/remember", {"value": "a"})
            await b.call_tool("local/remember", {"value": "b"})
            value_a, pid_a = text(await a.call_tool("local/recall", {})).split("@")
            value_b, pid_b = text(await b.call_tool("local/recall", {})).split("@")
            assert (value_a, value_b) == ("a", "b")
            assert len({pid_a, pid_b, *map(str, shared)}) == 3
        wait_until(lambda: not alive(int(pid_b)), what="b's backend process to end")
        assert alive(int(pid_a))
        with pytest.raises(MCPError) as crashed:
            await a.call_tool("local/crash", {})
        assert crashed.value.code == OUTCOME_UNKNOWN
        # The broken session is dropped; the next call opens a fresh one (and a fresh process, with no memory).
        value, pid = text(await a.call_tool("local/recall", {})).split("@")
        assert value == "" and pid != pid_a and not alive(int(pid_a))
        processes.stop(processes.procs[-1])  # SIGTERM with a client session open
    assert processes.procs[-1].returncode == 0
    assert not any(alive(p) for p in (int(pid), *shared))


@asynccontextmanager
async def pool(**fields: Any) -> AsyncIterator[ClientSessions]:
    async def connect(config: BackendConfig, stack: AsyncExitStack, hooks: Any) -> Any:
        return toy_server.build()

    config = BackendConfig(name="toy", url="http://toy.invalid/mcp", session="per_client", **fields)
    sessions = ClientSessions(config, connect, lambda line: None)
    async with anyio.create_task_group() as tg:
        await tg.start(sessions.run)
        yield sessions
        tg.cancel_scope.cancel()


async def test_the_cap_replaces_the_least_recently_used_idle_session_and_refuses_when_all_are_busy() -> None:
    async with pool(max_sessions=2) as sessions:
        for key in ("a", "b"):
            async with sessions.lease(("p", key)) as lease:
                await lease.client.call_tool("remember", {"value": key})
        async with sessions.lease(("p", "a")) as lease:
            assert text(await lease.client.call_tool("recall", {})).startswith("a@")
        async with sessions.lease(("p", "c")) as lease:  # "b" is the least recently used
            await lease.client.call_tool("remember", {"value": "c"})
        assert sessions.count == 2
        async with sessions.lease(("p", "b")) as lease:  # "a" made way this time; "b" starts afresh
            assert text(await lease.client.call_tool("recall", {})).startswith("@")
        async with sessions.lease(("p", "b")), sessions.lease(("p", "c")):
            with pytest.raises(BackendUnavailable, match="all 2 client sessions are busy"):
                async with sessions.lease(("p", "d")):
                    pass


async def test_sessionless_requests_hold_at_most_the_cap_of_connections_at_once() -> None:
    async with pool(max_sessions=2) as sessions:
        async with sessions.lease(None), sessions.lease(None):
            with pytest.raises(BackendUnavailable, match="sessionless requests are busy"):
                async with sessions.lease(None):
                    pass
            async with sessions.lease(("p", "a")) as lease:  # a session of a client's own is counted apart
                await lease.client.call_tool("echo", {"text": "x"})
        async with sessions.lease(None) as lease:  # the two ended, so there is room again
            await lease.client.call_tool("echo", {"text": "x"})


async def test_idle_sessions_close_and_a_sessionless_request_leaves_nothing_open() -> None:
    async with pool(session_idle_timeout=0.2) as sessions:
        async with sessions.lease(None) as lease:
            await lease.client.call_tool("echo", {"text": "x"})
            assert sessions.count == 0
        async with sessions.lease(("p", "a")) as lease:
            await lease.client.call_tool("echo", {"text": "x"})
        assert sessions.count == 1
        with anyio.fail_after(5):
            while sessions.count:
                await anyio.sleep(0.05)


ALICE_KEY, BOB_KEY = "alice-key-0123456789abcdef", "bob-key-0123456789abcdef00"
OWNERS = {
    "auth": {"api_keys": [{"principal": "alice", "key": ALICE_KEY}, {"principal": "bob", "key": BOB_KEY}]},
    "policy": {"default": "allow"},
}


@asynccontextmanager
async def owned(processes: Processes, max_sessions: int) -> AsyncIterator[str]:
    """A gateway with API keys on a real socket, in front of a toy backend over HTTP with per-client sessions."""
    toy = free_port()
    processes.start("-m", "tests.support.toy_server", "--port", str(toy))
    wait_until(lambda: listening(toy))
    backend = BackendConfig(
        name="own",
        url=f"http://127.0.0.1:{toy}/mcp",
        protocol="legacy",
        session="per_client",
        max_sessions=max_sessions,
    )
    config = GatewayConfig.model_validate({"backends": [backend], "security": OWNERS})
    async with Gateway(config) as gateway, serving(gateway) as url:
        yield url


@asynccontextmanager
async def session_client(url: str, token: str) -> AsyncIterator[tuple[Client, list[str]]]:
    """A 2025 client, and the session ids the gateway gave it."""
    issued: list[str] = []

    async def remember(response: httpx2.Response) -> None:
        if (session := response.headers.get("mcp-session-id")) and session not in issued:
            issued.append(session)

    auth, hooks = {"Authorization": f"Bearer {token}"}, {"response": [remember]}
    async with (
        httpx2.AsyncClient(headers=auth, event_hooks=hooks) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,  # type: ignore[arg-type]
    ):
        yield client, issued


async def stateless(
    url: str, token: str, name: str, session: str, arguments: dict[str, Any] | None = None, **meta: Any
) -> dict[str, Any]:
    """A raw 2026 ``tools/call`` carrying ``Mcp-Session-Id: session``; the JSON-RPC response."""
    envelope = {types.PROTOCOL_VERSION_META_KEY: "2026-07-28", types.CLIENT_CAPABILITIES_META_KEY: {}, **meta}
    params = {"name": name, "arguments": arguments or {}, "_meta": envelope}
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": name,
        "Mcp-Session-Id": session,
    }
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(url, json=message, headers=headers)
    body = response.text if "json" in response.headers["content-type"] else _last_event(response.text)
    return dict(json.loads(body))


def _last_event(stream: str) -> str:
    return [line[5:] for line in stream.splitlines() if line.startswith("data:")][-1]


async def test_another_principal_naming_a_session_never_reaches_its_backend_session(processes: Processes) -> None:
    async with owned(processes, max_sessions=4) as url, session_client(url, ALICE_KEY) as (alice, issued):
        await alice.call_tool("own/remember", {"value": "alice-secret"})
        before = text(await alice.call_tool("own/recall", {}))
        assert before.startswith("alice-secret@")
        (session,) = issued
        # The fast path serves a plain call; one asking for log messages goes through the SDK's handlers.
        plain = await stateless(url, BOB_KEY, "own/recall", session)
        logged = await stateless(url, BOB_KEY, "own/recall", session, **{types.LOG_LEVEL_META_KEY: "debug"})
        for answer in (plain, logged):
            assert answer["result"]["content"][0]["text"].startswith("@")
        # Her own 2026 call naming her session is no different: a 2026 request has no session.
        assert (await stateless(url, ALICE_KEY, "own/recall", session))["result"]["content"][0]["text"][0] == "@"
        assert text(await alice.call_tool("own/recall", {})) == before


async def test_made_up_session_ids_evict_no_clients_backend_session(processes: Processes) -> None:
    async with owned(processes, max_sessions=4) as url, session_client(url, ALICE_KEY) as (alice, _):
        await alice.call_tool("own/remember", {"value": "alice-secret"})
        before = text(await alice.call_tool("own/recall", {}))
        # Each opens a backend session for that request alone, and takes no place among the four.
        for n in range(6):
            answer = await stateless(url, BOB_KEY, "own/remember", f"made-up-{n}", {"value": "bob"})
            assert answer["result"]["content"][0]["text"] == "remembered"
        assert text(await alice.call_tool("own/recall", {})) == before


async def test_a_2025_session_of_another_principal_is_refused_before_any_backend(processes: Processes) -> None:
    async with owned(processes, max_sessions=4) as url, session_client(url, ALICE_KEY) as (alice, issued):
        await alice.call_tool("own/remember", {"value": "alice-secret"})
        headers = {
            "Authorization": f"Bearer {BOB_KEY}",
            "Accept": "application/json, text/event-stream",
            "Mcp-Session-Id": issued[0],
            "MCP-Protocol-Version": "2025-11-25",
        }
        call = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "own/recall", "arguments": {}}}
        async with httpx2.AsyncClient(timeout=30) as http:
            refused = await http.post(url, json=call, headers=headers)
        assert refused.status_code == 404
        assert text(await alice.call_tool("own/recall", {})).startswith("alice-secret@")
