"""Failing fast and healing fast, with the default supervision settings: a backend killed while idle costs its next
caller about a second, the gateway serves it again moments after it listens, and meanwhile it is not hammered."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketStream
from mcp import Client, MCPError

from gateway.errors import BACKEND_UNAVAILABLE
from gateway.upstream.backend import CHECK_INTERVAL
from tests.support.procs import Processes, free_port, http_get, listening, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.processes]
# What the gateway promises, with a margin for a loaded 2-core machine: -32050 within about a second, and back in
# service within 2 s of the backend listening again.
FIRST_CALL_LIMIT = 2.5
BACK_LIMIT = 3.0
# How long a listener that accepts and closes stands in for the backend while the connections it gets are counted.
WINDOW = 6.0
# How long the port then stays closed, as a restarting backend's does, before the backend listens again: several TCP
# checks' worth, so that the gateway sees it refuse (what ends the backoff early is a refusing port that accepts).
REFUSING = 4 * CHECK_INTERVAL


class Counted:
    """Connections to a listener that accepts and closes: those that sent nothing (a reachability check) and those
    that sent a request (a full connection attempt)."""

    def __init__(self) -> None:
        self.checks = 0
        self.attempts = 0

    async def handle(self, stream: SocketStream) -> None:
        async with stream:
            try:
                with anyio.fail_after(1):
                    await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, TimeoutError):
                self.checks += 1
                return
            self.attempts += 1


def start_gateway(processes: Processes, root: Path, backend: dict[str, object]) -> str:
    """A gateway process in front of ``backend``, with every other setting at its default; its MCP endpoint."""
    config = root / "gateway.json"
    config.write_text(json.dumps({"backends": [backend]}))
    port = free_port()
    processes.start("-m", "gateway", "serve", "--config", str(config), "--port", str(port), "--log-level", "warning")
    wait_until(lambda: listening(port) and http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, timeout=60)
    return f"http://127.0.0.1:{port}/mcp"


def start_toy(processes: Processes, port: int) -> subprocess.Popen[bytes]:
    proc = processes.start("-m", "tests.support.toy_server", "--port", str(port))
    wait_until(lambda: listening(port), what="the toy backend to listen")
    return proc


@pytest.mark.parametrize("protocol", ["legacy", "2026-07-28"])
async def test_a_backend_killed_while_idle_fails_fast_is_not_hammered_and_is_served_again_soon_after_it_listens(
    processes: Processes, tmp_path: Path, protocol: str
) -> None:
    port = free_port()
    toy = start_toy(processes, port)
    backend = {"name": "toy", "url": f"http://127.0.0.1:{port}/mcp", "protocol": protocol}
    url = start_gateway(processes, tmp_path, backend)
    async with Client(url) as client:
        await client.call_tool("toy/echo", {"text": "before"})
        processes.stop(toy, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(MCPError) as first:
            await client.call_tool("toy/echo", {"text": "after"})
        first_call = time.monotonic() - started

        counted = Counted()
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, counted.handle)
            await anyio.sleep(WINDOW)  # an observation window, not a wait for anything
            tg.cancel_scope.cancel()

        await anyio.sleep(REFUSING)  # a phase of the scenario, not a wait for anything
        await anyio.to_thread.run_sync(start_toy, processes, port)
        with anyio.fail_after(BACK_LIMIT):  # from the moment it listens
            while True:
                try:
                    back = await client.call_tool("toy/echo", {"text": "back"})
                    break
                except MCPError as exc:
                    assert exc.code == BACKEND_UNAVAILABLE
                    await anyio.sleep(0.05)
    assert first.value.code == BACKEND_UNAVAILABLE and first.value.data == {"backend": "toy"}
    assert first_call < FIRST_CALL_LIMIT
    assert back.content[0].text == "back"  # type: ignore[union-attr]
    # A check every quarter second at most; full attempts backing off from 0.5 s (about four in the window).
    assert counted.checks <= 5 * WINDOW
    assert counted.attempts <= 8
