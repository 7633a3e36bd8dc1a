"""``mcp-gateway demo`` watching its backends, and the demo and ``serve`` refusing a port in use before they start
anything."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from gateway.cli import demo as demo_stack
from tests.support.procs import Processes, children, free_port, run_python, wait_until

pytestmark = pytest.mark.processes
CLI = ["-m", "gateway"]
MODERN = "2026-07-28"
RESTARTED = re.compile(r"the ops backend \(pid (\d+)\) was killed by SIGKILL; restarting it in [0-9.]+s")
PORT_FLAGS = ("--port", "--ops-port", "--hr-port", "--finance-port")


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return run_python(*CLI, *args, timeout=timeout)


def command_line(pid: int | str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def backends_of(demo: int) -> dict[str, int]:
    """The demo's backend processes by name, read from their command lines."""
    found = {}
    for pid in children(demo):
        match = re.search(r"-m backends\.(\w+) ", command_line(pid))
        if match:
            found[match.group(1)] = pid
    return found


def exists(pid: int) -> bool:
    """Still in the process table, zombies included: an exited child nobody reaped still shows."""
    return Path(f"/proc/{pid}").exists()


def call_tool(port: int, name: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
    """A 2026 ``tools/call`` through the gateway: its result, or ``None`` when it failed."""
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    params = {"name": name, "arguments": arguments, "_meta": meta}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).encode()
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": name,
    }
    request = urllib.request.Request(f"http://127.0.0.1:{port}/mcp", body, headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
    except (urllib.error.HTTPError, OSError):
        return None
    data = [line[5:] for line in text.splitlines() if line.startswith("data:")]
    message = json.loads(data[-1] if data else text)
    result = message.get("result")
    return None if result is None or result.get("isError") else dict(result)


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port another server listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_killed_backend_is_reaped_restarted_with_one_log_line_and_served_again(
    processes: Processes, tmp_path: Path
) -> None:
    ports = dict(zip(PORT_FLAGS, (free_port() for _ in PORT_FLAGS), strict=True))
    log = tmp_path / "demo.log"
    with log.open("wb") as sink:
        args = [arg for flag, port in ports.items() for arg in (flag, str(port))]
        demo = processes.start(*CLI, "demo", *args, "--data-dir", str(tmp_path / "data"), stderr=sink)
    wait_until(lambda: "Ctrl-C stops" in log.read_text() or demo.poll() is not None, what="the demo banner")
    assert demo.poll() is None, log.read_text()
    gateway = ports["--port"]
    lookup = ("ops/lookup_inventory", {"sku": "SRV-R740-01"})
    first = backends_of(demo.pid)
    assert set(first) == {"ops", "hr", "finance"}
    assert call_tool(gateway, *lookup) is not None

    os.kill(first["ops"], signal.SIGKILL)
    line = wait_until(lambda: RESTARTED.search(log.read_text()), what="the restart line")
    assert int(line.group(1)) == first["ops"]
    wait_until(lambda: not exists(first["ops"]), what="the killed backend to be reaped")
    wait_until(lambda: call_tool(gateway, *lookup), what="the gateway to serve the ops tools again")
    second = backends_of(demo.pid)
    assert second["ops"] != first["ops"] and {k: v for k, v in second.items() if k != "ops"} == {
        k: v for k, v in first.items() if k != "ops"
    }
    assert len(RESTARTED.findall(log.read_text())) == 1

    os.killpg(demo.pid, signal.SIGINT)
    assert demo.wait(timeout=30) == 0
    assert not [pid for pid in {*first.values(), *second.values()} if exists(pid)]
    assert "Traceback" not in log.read_text()


@pytest.mark.anyio
@pytest.mark.parametrize(("steady", "delays"), [(60.0, ["0.01", "0.02", "0.04", "0.04"]), (0.0, ["0.01"] * 4)])
async def test_a_backend_that_keeps_exiting_waits_longer_each_time_up_to_the_cap_until_it_ran_steadily(
    steady: float, delays: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(demo_stack, "RESTART_MIN", 0.01)
    monkeypatch.setattr(demo_stack, "RESTART_MAX", 0.04)
    monkeypatch.setattr(demo_stack, "STEADY", steady)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        backend = demo_stack.Backend("ops", sock, tmp_path)
        backend._command = [sys.executable, "-c", "raise SystemExit(3)"]
        backend.start()
        pids = [backend.proc.pid]

        def restarts() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.name == demo_stack.__name__]

        async with anyio.create_task_group() as tg:
            tg.start_soon(backend.supervise)
            with anyio.fail_after(30):
                while len(restarts()) < len(delays):
                    if backend.proc.pid != pids[-1]:
                        pids.append(backend.proc.pid)
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
        demo_stack.stop([backend])
    pattern = r"the ops backend \(pid \d+\) exited with status 3; restarting it in ([0-9.]+)s"
    found = [re.fullmatch(pattern, line) for line in restarts()[: len(delays)]]
    assert [match.group(1) if match else line for match, line in zip(found, restarts(), strict=False)] == delays
    assert not [pid for pid in {*pids, backend.proc.pid} if exists(pid)]


def _nothing_started(data: Path) -> None:
    """No backend opened its database and no process runs on the data directory."""
    assert not list(data.glob("*.sqlite3"))
    running = [entry.name for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    assert not [pid for pid in running if str(data) in command_line(pid)]


@pytest.mark.parametrize("held", ["--port", "--ops-port", "--finance-port"])
def test_the_demo_refuses_a_port_in_use_in_one_line_with_status_2_before_starting_anything(
    held: str, taken: int, tmp_path: Path
) -> None:
    ports = {flag: taken if flag == held else free_port() for flag in PORT_FLAGS}
    data = tmp_path / "data"
    done = run("demo", *[arg for flag, port in ports.items() for arg in (flag, str(port))], "--data-dir", str(data))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {taken} " in lines[0] and held in lines[0]
    _nothing_started(data)


def test_serve_refuses_a_port_in_use_in_one_line_with_status_2_before_starting_anything(
    taken: int, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    touch = f"import pathlib; pathlib.Path({str(started)!r}).touch()"
    config = tmp_path / "gateway.yaml"
    backend = {"name": "local", "transport": "stdio", "command": sys.executable, "args": ["-c", touch]}
    config.write_text(json.dumps({"backends": [backend]}))
    done = run("serve", "--config", str(config), "--port", str(taken))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {taken} " in lines[0] and "--port" in lines[0]
    assert not started.exists(), "the gateway started its backends before finding the port taken"
