"""The backends as real processes: stdio, streamable HTTP and SSE, database location, Host checks and shutdown."""

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client

from backends import _cli

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0
EXIT_TIMEOUT = 10.0

# A read-only call per backend and a key its structured result must carry.
SMOKE_CALLS: dict[str, tuple[str, dict[str, Any], str]] = {
    "ops": ("lookup_inventory", {"sku": "SSD-1TB-NVME"}, "items"),
    "hr": ("get_employee", {"employee_id": "E1001"}, "balances"),
    "finance": ("calculate_budget", {"department": "Sales", "quarter": "2026-Q1"}, "remaining"),
}
BACKENDS = sorted(SMOKE_CALLS)

pytestmark = [pytest.mark.anyio, pytest.mark.processes]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Backend:
    process: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    def stop(self) -> int:
        """SIGTERM, then the exit status; the fixture kills and reaps it if this is never reached."""
        self.process.terminate()
        return self.process.wait(timeout=EXIT_TIMEOUT)

    async def wait_until_listening(self) -> None:
        with anyio.fail_after(STARTUP_TIMEOUT):
            while True:
                assert self.process.poll() is None, f"backend exited early:\n{self.stderr.read_text()}"
                try:
                    stream = await anyio.connect_tcp("127.0.0.1", self.port)
                except OSError:
                    await anyio.sleep(0.05)
                else:
                    await stream.aclose()
                    return


@pytest.fixture
def start_backend(tmp_path: Path) -> Iterator[Callable[..., Backend]]:
    """Starts `python -m backends.<name>` over HTTP on a free port; every process is reaped at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str, host: str = "127.0.0.1", env: dict[str, str] | None = None) -> Backend:
        port = free_port(host)
        stdout, stderr = tmp_path / f"{name}-{port}.out", tmp_path / f"{name}-{port}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", f"backends.{name}", "--host", host, "--port", str(port), *args],
                cwd=REPO_ROOT,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        started.append(process)
        return Backend(process, port, stdout, stderr)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=EXIT_TIMEOUT)


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


async def smoke_test(client: Client, name: str) -> None:
    tool, arguments, key = SMOKE_CALLS[name]
    tools = {t.name for t in (await client.list_tools()).tools}
    result = await client.call_tool(tool, arguments)

    assert {"search", tool} <= tools
    assert not result.is_error, result.content
    assert result.structured_content is not None and key in result.structured_content


@pytest.mark.parametrize("name", BACKENDS)
async def test_stdio_with_the_default_database_location(name: str, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", f"backends.{name}", "--stdio", "--log-level", "warning"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO_ROOT)},
    )
    async with Client(params) as client:
        await smoke_test(client, name)

    assert (tmp_path / ".data" / f"{name}.sqlite3").is_file()


@pytest.mark.parametrize("name", BACKENDS)
async def test_streamable_http_with_the_database_from_the_environment(
    name: str, tmp_path: Path, start_backend: Callable[..., Backend]
) -> None:
    db = tmp_path / "from-env" / f"{name}.sqlite3"
    backend = start_backend(name, env={f"{name.upper()}_DB": str(db)})
    await backend.wait_until_listening()

    async with Client(f"http://127.0.0.1:{backend.port}/mcp") as client:
        await smoke_test(client, name)

    assert backend.stop() == 0, backend.stderr.read_text()
    assert db.is_file()
    assert backend.stdout.read_bytes() == b"", "logs must go to stderr"
    assert f"{name} backend stopped" in backend.stderr.read_text()


async def test_sse_transport(tmp_path: Path, start_backend: Callable[..., Backend]) -> None:
    backend = start_backend("ops", "--transport", "sse", "--db", str(tmp_path / "ops.sqlite3"))
    await backend.wait_until_listening()

    async with Client(sse_client(f"http://127.0.0.1:{backend.port}/sse")) as client:
        await smoke_test(client, "ops")

    assert backend.stop() == 0, backend.stderr.read_text()


async def test_loopback_bind_keeps_dns_rebinding_protection(
    tmp_path: Path, start_backend: Callable[..., Backend]
) -> None:
    backend = start_backend("ops", "--db", str(tmp_path / "ops.sqlite3"))
    await backend.wait_until_listening()

    foreign = await post_initialize(backend.port, "ops:8001")
    local = await post_initialize(backend.port, f"127.0.0.1:{backend.port}")

    assert (foreign, local) == (421, 200)
    assert backend.stop() == 0, backend.stderr.read_text()


async def test_wildcard_bind_accepts_the_compose_service_name(
    tmp_path: Path, start_backend: Callable[..., Backend]
) -> None:
    backend = start_backend("ops", "--db", str(tmp_path / "ops.sqlite3"), host="0.0.0.0")
    await backend.wait_until_listening()

    assert await post_initialize(backend.port, "ops:8001") == 200
    assert backend.stop() == 0, backend.stderr.read_text()


async def post_initialize(port: int, host_header: str) -> int:
    """The status of a bare initialize POST carrying the given Host header."""
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"http://127.0.0.1:{port}/mcp",
            headers={"Host": host_header, "Accept": "application/json, text/event-stream"},
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "host-check", "version": "1"},
                },
            },
        )
    return response.status_code


@pytest.mark.parametrize("spelling", ["streamable-http", "streamable_http"])
def test_both_spellings_of_the_streamable_http_transport_are_one(spelling: str) -> None:
    assert _cli._parser("ops", 8001).parse_args(["--transport", spelling]).transport == "streamable_http"
