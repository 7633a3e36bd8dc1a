"""Health probes judge the backend, not the gateway: a stall of the gateway's own event loop takes nobody down, and
a backend that stops answering still goes down."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

import anyio
import pytest
from mcp import MCPError
from mcp.client.session import ClientSession

from gateway.config import BackendConfig
from gateway.errors import BACKEND_UNAVAILABLE
from gateway.upstream.backend import State
from tests.support.procs import Processes
from tests.test_lifecycle import Toy, gateway_for, until

pytestmark = pytest.mark.anyio
PROBE_TIMEOUT = 1.0
STALL = 3 * PROBE_TIMEOUT


async def test_a_probe_starved_by_a_stalled_gateway_loop_does_not_take_the_backend_down(
    processes: Processes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    toy = Toy(processes, tmp_path / "journal").start()
    backend = BackendConfig(name="toy", url=toy.url, protocol="legacy", connect_timeout=PROBE_TIMEOUT)
    pings = 0
    ping = ClientSession.send_ping

    async def stalled_ping(session: ClientSession) -> object:
        """The first probe finds the loop blocked (a synchronous step) just after its deadline began."""
        nonlocal pings
        pings += 1
        if pings == 1:
            asyncio.get_running_loop().call_soon(time.sleep, STALL)
        return await ping(session)

    monkeypatch.setattr(ClientSession, "send_ping", stalled_ping)
    caplog.set_level(logging.WARNING, logger="gateway.upstream.backend")
    async with gateway_for(backend, health_interval=0.2) as (gw, c):
        await until(lambda: pings >= 3)
        state = gw.upstreams["toy"].state
        echoed = await c.call_tool("toy/echo", {"text": "fine"})
    assert state is State.READY
    assert not [r for r in caplog.records if "down" in r.getMessage()]
    assert echoed.content[0].text == "fine"  # type: ignore[union-attr]


@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])
async def test_a_backend_that_stops_answering_probes_still_goes_down(
    processes: Processes, tmp_path: Path, protocol: str
) -> None:
    toy = Toy(processes, tmp_path / "journal").start()
    backend = BackendConfig(name="toy", url=toy.url, protocol=protocol, connect_timeout=PROBE_TIMEOUT)
    async with gateway_for(backend, health_interval=0.2) as (gw, c):
        assert toy.proc is not None
        os.kill(toy.proc.pid, signal.SIGSTOP)
        try:
            await until(lambda: gw.upstreams["toy"].state is State.DOWN)
            with anyio.fail_after(1), pytest.raises(MCPError) as refused:
                await c.call_tool("toy/echo", {"text": "x"})
        finally:
            toy.kill()
    assert refused.value.code == BACKEND_UNAVAILABLE
