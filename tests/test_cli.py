"""``mcp-gateway`` as a user runs it: help, the catalogue print, status, and the demo stack from start to Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from gateway.cli.running import _print_table
from gateway.cli.status import render
from tests.support.procs import Processes, alive, children, free_port, http_get, listening, run_python, wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.processes
CLI = ["-m", "gateway"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_python(*CLI, *args, timeout=timeout)


@pytest.mark.parametrize("command", ["serve", "stdio", "demo", "tools"])
def test_every_command_has_help(command: str) -> None:
    done = run(command, "--help")
    assert done.returncode == 0 and "--config" in done.stdout


def test_status_shows_every_backend_ready_with_its_breaker(stack: Stack) -> None:
    done = run("status", "--url", f"http://127.0.0.1:{stack.gateway_port}")
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines[0] == "gateway: ready"
    assert lines[1].split() == ["BACKEND", "STATE", "BREAKER", "TOOLS", "PROTOCOL", "REASON"]
    rows = {line.split()[0]: line.split()[1:4] for line in lines[2:]}
    assert set(rows) == {"ops", "hr", "finance"}
    assert all(state == "ready" and breaker == "closed" and int(tools) > 0 for state, breaker, tools in rows.values())


def test_status_of_a_degraded_gateway_exits_1_with_the_reason(processes: Processes, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"backends:\n  - name: gone\n    url: http://127.0.0.1:{free_port()}/mcp\n    connect_timeout: 2\n"
    )
    port = free_port()
    processes.start(*CLI, "serve", "--config", str(config), "--port", str(port))
    wait_until(lambda: listening(port), what="the gateway")
    done = run("status", "--url", f"http://127.0.0.1:{port}", "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 1 and report["status"] == "degraded"
    assert report["backends"][0]["state"] == "down" and report["backends"][0]["breaker"] == "closed"
    table = run("status", "--url", f"http://127.0.0.1:{port}")
    row = table.stdout.splitlines()[2]
    assert row.split()[:3] == ["gone", "down", "closed"] and "All connection attempts failed" in row


def test_status_says_when_no_gateway_answers() -> None:
    done = run("status", "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "2")
    assert done.returncode == 3
    assert "cannot read the status" in done.stderr and "Traceback" not in done.stderr


def test_tools_prints_the_aggregated_catalogue(stack: Stack) -> None:
    done = run("tools", "--config", str(stack.config_path), "--json")
    listing = json.loads(done.stdout)
    names = {row["name"] for row in listing["tools"]}
    assert done.returncode == 0
    assert {"ops/search", "hr/search", "fin/search", "ops/lookup_inventory"} <= names
    strict = run("tools", "--config", str(stack.config_path), "--style", "strict")
    assert "fin__calculate_budget" in strict.stdout and "fin/calculate_budget" not in strict.stdout


def test_tools_exits_1_and_says_why_when_a_backend_is_unreachable(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"backends:\n  - name: gone\n    url: http://127.0.0.1:{free_port()}/mcp\n    connect_timeout: 2\n"
    )
    done = run("tools", "--config", str(config))
    assert done.returncode == 1
    assert "gone is down" in done.stderr and "Traceback" not in done.stderr


def test_demo_starts_three_backends_and_the_gateway_and_ctrl_c_stops_them_all(
    processes: Processes, tmp_path: Path
) -> None:
    ports = [free_port() for _ in range(4)]
    demo = processes.start(
        *CLI,
        "demo",
        "--port", str(ports[0]),
        "--ops-port", str(ports[1]),
        "--hr-port", str(ports[2]),
        "--finance-port", str(ports[3]),
        "--data-dir", str(tmp_path / "data"),
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert demo.stderr is not None
    banner: list[str] = []

    def endpoint_printed() -> bool:
        line = demo.stderr.readline().decode()  # type: ignore[union-attr]
        banner.append(line)
        return "Ctrl-C stops" in line or demo.poll() is not None

    wait_until(endpoint_printed, what="the demo banner")
    text = "".join(banner)
    assert f"http://127.0.0.1:{ports[0]}/mcp" in text
    desktop = json.loads(text[text.index("{") : text.index("}\n}") + 3])
    entry = desktop["mcpServers"]["gateway"]
    assert entry["args"][:2] == ["stdio", "--config"] and Path(entry["args"][2]).exists()
    status, body = http_get(f"http://127.0.0.1:{ports[0]}/readyz")
    assert status == 200 and [b["state"] for b in body["backends"]] == ["ready"] * 3
    backends = children(demo.pid)
    assert len(backends) == 3

    os.killpg(demo.pid, signal.SIGINT)
    assert demo.wait(timeout=30) == 0
    assert not any(alive(pid) for pid in backends)
    assert not any(listening(port) for port in ports)


def test_serve_json_response_answers_2025_requests_with_plain_json(stack: Stack, processes: Processes) -> None:
    port = free_port()
    processes.start(*CLI, "serve", "--config", str(stack.config_path), "--port", str(port), "--json-response")
    wait_until(lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200 if listening(port) else False)
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/mcp", json.dumps(body).encode(), headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        assert json.loads(response.read())["result"]["serverInfo"]["name"] == "mcp-gateway"


def test_demo_backends_end_even_when_the_demo_is_killed(processes: Processes, tmp_path: Path) -> None:
    ports = [free_port() for _ in range(4)]
    demo = processes.start(
        *CLI, "demo", "--port", str(ports[0]), "--ops-port", str(ports[1]), "--hr-port", str(ports[2]),
        "--finance-port", str(ports[3]), "--data-dir", str(tmp_path / "data"),
    )  # fmt: skip
    wait_until(lambda: listening(ports[0]), what="the demo gateway")
    backends = children(demo.pid)
    assert len(backends) == 3
    os.kill(demo.pid, signal.SIGKILL)
    demo.wait(timeout=10)
    wait_until(lambda: not any(alive(pid) for pid in backends), what="the orphaned backends to end")


def test_serving_beyond_loopback_without_authentication_is_refused_with_status_2() -> None:
    done = run("serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert done.returncode == 2
    assert "without authentication" in done.stderr and "--allow-unauthenticated" in done.stderr


def test_allow_unauthenticated_serves_beyond_loopback_and_says_so(processes: Processes, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("backends: []\n")
    port = free_port()
    log = tmp_path / "gateway.log"
    with log.open("wb") as sink:
        args = ("serve", "--config", str(config), "--host", "0.0.0.0", "--port", str(port), "--allow-unauthenticated")
        proc = processes.start(*CLI, *args, stderr=sink)
    wait_until(lambda: listening(port), what="the gateway to listen")
    assert processes.stop(proc) == 0
    assert "AUTHENTICATION IS OFF on 0.0.0.0" in log.read_text()


def test_status_names_the_tools_whose_own_breaker_is_open() -> None:
    calls = {"tools/call cut": "open"}
    backend = {"name": "toy", "state": "ready", "breaker": "closed", "tools": 3, "call_breakers": calls}
    lines = render({"status": "ready", "backends": [backend]}).splitlines()
    assert lines[2].split() == ["toy", "ready", "closed", "3", "-", "breakers:", "tools/call", "cut", "open"]


def test_status_says_when_the_shared_store_is_unreachable_and_why() -> None:
    store = {"state": "unreachable", "error": "Connection refused"}
    lines = render({"status": "ready", "backends": [], "store": store}).splitlines()
    assert lines[-1] == "store: unreachable (Connection refused)"
    assert "store" not in render({"status": "ready", "backends": []})


def test_tools_marks_a_description_it_cuts_with_an_ellipsis(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        {"name": "ops/long", "backend": "ops", "description": "x" * 79 + "yz"},
        {"name": "ops/fits", "backend": "ops", "description": "y" * 80},
    ]
    _print_table(rows, {"backends": [], "conflicts": []})
    long, fits = (line.split()[-1] for line in capsys.readouterr().out.splitlines()[1:])
    assert long == "x" * 79 + "…"
    assert fits == "y" * 80
