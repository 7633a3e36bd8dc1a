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
import pytest
from mcp import Client, MCPError

from gateway.config import BackendConfig
from gateway.errors import OUTCOME_UNKNOWN, BackendUnavailable
from gateway.sessions import ClientSessions
from tests.support import toy_server
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
            async with sessions.lease(key) as lease:
                await lease.client.call_tool("remember", {"value": key})
        async with sessions.lease("a") as lease:
            assert text(await lease.client.call_tool("recall", {})).startswith("a@")
        async with sessions.lease("c") as lease:  # "b" is the least recently used
            await lease.client.call_tool("remember", {"value": "c"})
        assert sessions.count == 2
        async with sessions.lease("b") as lease:  # "a" made way this time; "b" starts afresh
            assert text(await lease.client.call_tool("recall", {})).startswith("@")
        async with sessions.lease("b"), sessions.lease("c"):
            with pytest.raises(BackendUnavailable, match="all 2 client sessions are busy"):
                async with sessions.lease("d"):
                    pass


async def test_idle_sessions_close_and_a_sessionless_request_leaves_nothing_open() -> None:
    async with pool(session_idle_timeout=0.2) as sessions:
        async with sessions.lease(None) as lease:
            await lease.client.call_tool("echo", {"text": "x"})
            assert sessions.count == 0
        async with sessions.lease("a") as lease:
            await lease.client.call_tool("echo", {"text": "x"})
        assert sessions.count == 1
        with anyio.fail_after(5):
            while sessions.count:
                await anyio.sleep(0.05)
