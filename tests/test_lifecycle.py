"""A pool that heals itself: backends that die, hang, crash, restart or never come, with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError, types

from gateway.config import BackendConfig, GatewayConfig
from gateway.core import Gateway
from gateway.errors import BACKEND_UNAVAILABLE, OUTCOME_UNKNOWN
from gateway.front.server import build_server
from tests.support.inproc import READER_INFO
from tests.support.procs import ROOT, Processes, alive, children, free_port, http_get, listening, wait_until
from tests.support.stack import Stack

pytestmark = [pytest.mark.anyio, pytest.mark.processes]
FAST = {"health_interval": 0.5, "reconnect_min": 0.1, "reconnect_max": 0.5}


class Toy:
    """A toy backend over streamable HTTP on a fixed port, so it can be killed and started again."""

    def __init__(self, processes: Processes, journal: Path, name: str = "toy") -> None:
        self.processes, self.journal, self.name = processes, journal, name
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> Toy:
        args = ["-m", "tests.support.toy_server", "--port", str(self.port), "--name", self.name]
        self.proc = self.processes.start(*args, "--journal", str(self.journal))
        wait_until(lambda: listening(self.port), what="the toy backend to listen")
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.processes.stop(self.proc, signal.SIGKILL)


@asynccontextmanager
async def gateway_for(*backends: BackendConfig, **settings: Any) -> AsyncIterator[tuple[Gateway, Client]]:
    config = GatewayConfig(backends=backends, **{**FAST, **settings})
    async with (
        Gateway(config) as gateway,
        Client(build_server(gateway), mode="legacy", client_info=READER_INFO) as client,
    ):
        yield gateway, client


async def until(predicate: Any, limit: float = 20) -> None:
    with anyio.fail_after(limit):
        while not predicate():
            await anyio.sleep(0.02)


def stdio_toy(name: str, *extra: str, **fields: Any) -> BackendConfig:
    args = ["-m", "tests.support.toy_server", "--stdio", "--name", name, *extra]
    fields = {"connect_timeout": 30, **fields}  # a Python MCP server can take seconds to start on a busy machine
    return BackendConfig(name=name, transport="stdio", command=sys.executable, args=args, cwd=str(ROOT), **fields)


async def test_a_killed_backend_fails_fast_the_others_never_fail_and_it_rejoins_by_itself(stack: Stack) -> None:
    changes = 0

    async def on_message(message: Any) -> None:
        nonlocal changes
        if isinstance(message, types.ToolListChangedNotification):
            changes += 1

    failures: list[str] = []
    down_errors: list[MCPError] = []

    async def hammer(client: Client, tool: str, arguments: dict[str, Any], stop: anyio.Event) -> None:
        while not stop.is_set():
            try:
                result = await client.call_tool(tool, arguments)
                if result.is_error:
                    failures.append(tool)
            except MCPError as exc:
                if tool.startswith("ops/"):
                    down_errors.append(exc)
                else:
                    failures.append(f"{tool}: {exc}")

    async with Client(stack.url, mode="legacy", message_handler=on_message, client_info=READER_INFO) as client:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(hammer, client, "hr/get_employee", {"employee_id": "E1002"}, stop)
            tg.start_soon(hammer, client, "fin/calculate_budget", {"department": "Sales", "quarter": "2026-Q2"}, stop)
            tg.start_soon(hammer, client, "ops/lookup_inventory", {"sku": "SRV-R740-01"}, stop)
            stack.stop_backend_hard("ops")
            await until(lambda: len(down_errors) >= 5)
            started = time.monotonic()
            with pytest.raises(MCPError) as fast:
                await client.call_tool("ops/list_tickets", {})
            fail_time = time.monotonic() - started
            heard_before = changes
            stack.start_backend("ops")
            await anyio.to_thread.run_sync(stack.wait_ready)
            await until(lambda: changes > heard_before)
            back = await client.call_tool("ops/lookup_inventory", {"sku": "SRV-R740-01"})
            stop.set()
        names = {t.name for t in (await client.list_tools()).tools}
    assert failures == []
    assert fast.value.code == BACKEND_UNAVAILABLE and fast.value.data == {"backend": "ops"}
    assert fail_time < 1.0
    assert all(e.code in (BACKEND_UNAVAILABLE, OUTCOME_UNKNOWN) for e in down_errors)
    assert not back.is_error and "ops/lookup_inventory" in names


async def test_the_first_call_after_a_backend_restart_succeeds_without_client_action(
    processes: Processes, tmp_path: Path
) -> None:
    toy = Toy(processes, tmp_path / "journal").start()
    async with gateway_for(BackendConfig(name="toy", url=toy.url, protocol="legacy"), health_interval=60) as (_gw, c):
        assert (await c.call_tool("toy/echo", {"text": "before"})).content[0].text == "before"  # type: ignore[union-attr]
        toy.kill()
        toy.start()
        after = await c.call_tool("toy/record", {"tag": "after", "seconds": 0})
    assert not after.is_error
    assert toy.journal.read_text().splitlines() == ["after"]


async def test_a_call_that_never_answers_times_out_at_its_deadline_and_is_cancelled_at_the_backend(
    processes: Processes, tmp_path: Path
) -> None:
    toy = Toy(processes, tmp_path / "journal").start()
    other = Toy(processes, tmp_path / "other", "other").start()
    backends = (
        BackendConfig(name="toy", url=toy.url, tool_timeouts={"slow": 1.0}),
        BackendConfig(name="other", url=other.url),
    )
    async with gateway_for(*backends) as (_gw, c):
        latencies: list[float] = []

        async def meanwhile() -> None:
            for _ in range(10):
                started = time.monotonic()
                await c.call_tool("other/echo", {"text": "x"})
                await c.call_tool("toy/echo", {"text": "x"})
                latencies.append(time.monotonic() - started)

        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(meanwhile)
            with pytest.raises(MCPError) as timed_out:
                await c.call_tool("toy/slow", {"seconds": 60})
        took = time.monotonic() - started
        cancelled = await c.call_tool("toy/cancellations", {})
    assert timed_out.value.code == types.REQUEST_TIMEOUT and timed_out.value.data == {"backend": "toy"}
    assert 0.9 < took < 5
    assert cancelled.structured_content == {"result": 1}
    assert max(latencies) < 0.9


async def test_a_client_cancelling_its_call_cancels_it_at_the_backend(processes: Processes, tmp_path: Path) -> None:
    toy = Toy(processes, tmp_path / "journal").start()
    async with gateway_for(BackendConfig(name="toy", url=toy.url)) as (_gw, c):
        with anyio.move_on_after(0.5):
            await c.call_tool("toy/slow", {"seconds": 60})
        cancelled: list[Any] = []

        async def seen() -> bool:
            cancelled.append((await c.call_tool("toy/cancellations", {})).structured_content)
            return cancelled[-1] == {"result": 1}

        with anyio.fail_after(10):
            while not await seen():
                await anyio.sleep(0.05)


async def test_a_stdio_backend_that_crashes_on_a_call_is_respawned() -> None:
    async with gateway_for(stdio_toy("local")) as (gw, c):
        with pytest.raises(MCPError) as crashed:
            await c.call_tool("local/crash", {})
        await until(lambda: gw.upstreams["local"].ready.is_set())
        again = await c.call_tool("local/echo", {"text": "alive"})
    assert crashed.value.code in (BACKEND_UNAVAILABLE, OUTCOME_UNKNOWN)
    assert again.content[0].text == "alive"  # type: ignore[union-attr]


async def test_a_stdio_backend_that_crashes_at_every_start_is_down_with_its_stderr_and_no_busy_loop(
    tmp_path: Path,
) -> None:
    starts = tmp_path / "starts"
    script = (
        f"open({str(starts)!r}, 'a').write('x'); import sys; sys.stderr.write('fatal: missing API key\\n'); sys.exit(3)"
    )
    broken = BackendConfig(name="broken", transport="stdio", command=sys.executable, args=["-c", script])
    async with gateway_for(broken, stdio_toy("fine"), reconnect_min=0.2, reconnect_max=1.0) as (gw, c):
        first = len(starts.read_text())
        started = time.monotonic()
        await until(lambda: len(starts.read_text()) >= first + 2)
        two_more = time.monotonic() - started
        status = {b["name"]: b for b in gw.status()["backends"]}
        names = {t.name for t in (await c.list_tools()).tools}
    assert status["broken"]["state"] == "down"
    assert "fatal: missing API key" in status["broken"]["stderr"]
    assert two_more > 0.4  # at least two backoff pauses of 0.2 s and up (jitter 0.8-1.2): no busy loop
    assert "fine/echo" in names


async def test_a_backend_speaking_garbage_is_isolated_and_reported() -> None:
    garbage = BackendConfig(
        name="garbage",
        transport="stdio",
        command=sys.executable,
        args=["-c", "import time; print('this is not json-rpc', flush=True); time.sleep(30)"],
        connect_timeout=2,
    )
    async with gateway_for(garbage, stdio_toy("fine")) as (gw, c):
        result = await c.call_tool("fine/echo", {"text": "ok"})
        status = {b["name"]: b for b in gw.status()["backends"]}
    assert result.content[0].text == "ok"  # type: ignore[union-attr]
    assert status["garbage"]["state"] == "down" and status["garbage"]["error"]


async def test_a_backend_absent_at_start_is_reported_and_joins_when_it_appears(
    processes: Processes, tmp_path: Path
) -> None:
    late = Toy(processes, tmp_path / "journal", "late")
    async with gateway_for(BackendConfig(name="late", url=late.url), stdio_toy("fine")) as (gw, c):
        await until(lambda: gw.upstreams["fine"].ready.is_set())
        status = gw.status()
        assert status["status"] == "degraded"
        assert {b["name"]: b["state"] for b in status["backends"]} == {"late": "down", "fine": "ready"}
        assert "ConnectError" in status["backends"][0]["error"]
        late.start()
        await until(lambda: gw.ready)
        result = await c.call_tool("late/echo", {"text": "joined"})
    assert result.content[0].text == "joined"  # type: ignore[union-attr]


async def test_a_required_backend_that_cannot_connect_stops_the_start() -> None:
    gone = BackendConfig(name="gone", url=f"http://127.0.0.1:{free_port()}/mcp", required=True)
    with pytest.raises(BaseException) as failed:
        async with Gateway(GatewayConfig(backends=(gone, stdio_toy("fine")), **FAST)):
            pass
    assert "required backend 'gone'" in repr(failed.value)


async def test_a_tools_breaker_opens_after_its_repeated_timeouts_then_half_opens_and_closes_and_no_other_tool_waits(
    processes: Processes, tmp_path: Path
) -> None:
    toy = Toy(processes, tmp_path / "journal").start()
    backend = BackendConfig(
        name="toy", url=toy.url, breaker_threshold=2, breaker_cooldown=1.0, tool_timeouts={"slow": 0.3}
    )
    async with gateway_for(backend) as (gw, c):
        upstream = gw.upstreams["toy"]
        for _ in range(2):
            with pytest.raises(MCPError):
                await c.call_tool("toy/slow", {"seconds": 30})
        started = time.monotonic()
        with pytest.raises(MCPError) as refused:
            await c.call_tool("toy/slow", {"seconds": 0})
        refused_in = time.monotonic() - started
        echoed = await c.call_tool("toy/echo", {"text": "x"})
        status = gw.status()["backends"][0]
        await until(lambda: upstream.call_breakers.states().get("tools/call slow") != "open", limit=5)
        trial = await c.call_tool("toy/slow", {"seconds": 0})
        closed = upstream.call_breakers.states()
    assert refused.value.code == BACKEND_UNAVAILABLE and "circuit open" in refused.value.message
    assert refused_in < 0.2
    assert echoed.content[0].text == "x"  # type: ignore[union-attr]
    assert status["breaker"] == "closed" and status["call_breakers"] == {"tools/call slow": "open"}
    assert trial.content[0].text == "done" and closed == {}  # type: ignore[union-attr]


@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])
async def test_an_idempotent_call_survives_a_restart_mid_call_and_another_gets_outcome_unknown_once(
    processes: Processes, tmp_path: Path, protocol: str
) -> None:
    toy = Toy(processes, tmp_path / "journal").start()
    async with gateway_for(BackendConfig(name="toy", url=toy.url, protocol=protocol, connect_timeout=10)) as (gw, c):

        async def restart_mid_call() -> None:
            await until(lambda: toy.journal.exists() and toy.journal.read_text().strip() != "")
            toy.kill()
            toy.start()

        async with anyio.create_task_group() as tg:
            tg.start_soon(restart_mid_call)
            with pytest.raises(MCPError) as unknown:
                await c.call_tool("toy/record", {"tag": "once", "seconds": 30})
        await until(lambda: gw.ready)
        replayed: dict[str, Any] = {}

        async def read_during_restart() -> None:
            replayed["result"] = await c.call_tool("toy/slow_read", {"seconds": 1})

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_during_restart)
            await until(lambda: "read" in toy.journal.read_text().splitlines())
            toy.kill()
            toy.start()
    assert unknown.value.code == OUTCOME_UNKNOWN and "'toy/record'" in unknown.value.message
    assert toy.journal.read_text().splitlines().count("once") == 1
    assert replayed["result"].content[0].text == "read done"


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_sigterm_lets_the_call_in_flight_finish_then_exits_0_leaving_no_process(
    processes: Processes, tmp_path: Path, mode: str
) -> None:
    journal = tmp_path / "journal"
    config = tmp_path / "gateway.yaml"
    args = ["-m", "tests.support.toy_server", "--stdio", "--name", "local", "--journal", str(journal)]
    config.write_text(json.dumps({"backends": [{"name": "local", "transport": "stdio", "command": sys.executable,
                                                "args": args, "cwd": str(ROOT), "connect_timeout": 30}]}))  # fmt: skip
    port = free_port()
    gateway = processes.start("-m", "gateway", "serve", "--config", str(config), "--port", str(port))
    wait_until(lambda: listening(port) and http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, timeout=40)
    backends = children(gateway.pid)
    assert backends
    outcome: dict[str, Any] = {}

    async def call_across_the_signal() -> None:
        async with Client(f"http://127.0.0.1:{port}/mcp", mode=mode, client_info=READER_INFO) as client:
            await client.list_tools()  # the client checks results against output schemas it has listed

            async def terminate_once_the_backend_runs_it() -> None:
                await until(lambda: journal.exists() and journal.read_text() == "in-flight\n")
                os.kill(gateway.pid, signal.SIGTERM)

            async with anyio.create_task_group() as tg:
                tg.start_soon(terminate_once_the_backend_runs_it)
                outcome["result"] = await client.call_tool("local/record", {"tag": "in-flight", "seconds": 1})
            await anyio.to_thread.run_sync(lambda: gateway.wait(timeout=30))

    anyio.run(call_across_the_signal)
    assert outcome["result"].content[0].text == "recorded"
    assert gateway.returncode == 0
    assert not any(alive(pid) for pid in backends)


async def test_two_hundred_start_stop_cycles_leave_no_process_and_no_descriptor() -> None:
    raw = ["-S", str(ROOT / "tests" / "support" / "raw_stdio_server.py")]
    backend = BackendConfig(name="raw", transport="stdio", command=sys.executable, args=raw, protocol="legacy")
    config = GatewayConfig(backends=(backend,), **FAST)
    me = os.getpid()
    before_children = children(me)
    before_fds = len(os.listdir("/proc/self/fd"))
    for _ in range(200):
        async with Gateway(config) as gw:
            assert gw.ready
    await until(lambda: children(me) <= before_children, limit=10)
    assert len(os.listdir("/proc/self/fd")) <= before_fds + 2
