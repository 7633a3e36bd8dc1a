"""``serve --workers N``: N processes answering on one port, a worker killed and replaced, SIGTERM draining all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
import yaml
from mcp import Client

from gateway.cli.workers import METRICS_DIR, refusal
from gateway.config import GatewayConfig
from tests.support.inproc import READER_INFO
from tests.support.procs import ROOT, Processes, alive, children, free_port, listening, wait_until

pytestmark = pytest.mark.processes
BANNER = "mcp-gateway listening on"
WORKERS = 3


def test_more_than_one_worker_without_a_shared_store_is_refused() -> None:
    assert refusal(1, GatewayConfig()) is None
    assert (
        refusal(
            2,
            GatewayConfig.model_validate(
                {"cluster": {"store": "redis://127.0.0.1:6379/0", "session_keys": ["k" * 32]}}
            ),
        )
        is None
    )
    problem = refusal(2, GatewayConfig())
    assert problem is not None and "cluster.store" in problem
    assert (
        refusal(2, GatewayConfig.model_validate({"cluster": {"store": "memory", "session_keys": ["k" * 32]}}))
        is not None
    )


def test_serve_refuses_workers_without_a_shared_store_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("backends: []\n")
    args = ["serve", "--config", str(config), "--port", str(free_port()), "--workers", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "cluster.store" in done.stderr


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (``make test`` installs Debian's package when missing)."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed; `make test` installs it"
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: listening(port), timeout=10, what="redis-server to listen")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Workers:
    """A toy backend and ``serve --workers 3`` in front of it, its log in a file."""

    def __init__(self, root: Path, procs: Processes, redis_url: str) -> None:
        self.procs = procs
        self.journal = root / "journal"
        self.log = root / "gateway.log"
        toy = free_port()
        procs.start("-m", "tests.support.toy_server", "--port", str(toy), "--journal", str(self.journal))
        wait_until(lambda: listening(toy), what="the toy backend")
        backend = {"name": "toy", "url": f"http://127.0.0.1:{toy}/mcp"}
        config = root / "gateway.yaml"
        config.write_text(
            yaml.safe_dump({"backends": [backend], "cluster": {"store": redis_url, "session_keys": ["k" * 32]}})
        )
        self.port = free_port()
        args = ["serve", "--config", str(config), "--port", str(self.port), "--workers", str(WORKERS)]
        with self.log.open("wb") as sink:
            self.parent = procs.start("-m", "gateway", *args, stderr=sink)
        wait_until(lambda: self.text().count(BANNER) >= WORKERS, what="every worker to listen")

    def text(self) -> str:
        return self.log.read_text()

    def pids(self) -> set[int]:
        return children(self.parent.pid)

    def owner(self, client: socket.socket) -> int | None:
        """The worker whose process holds the server side of ``client``'s connection."""
        mine = client.getsockname()[1]
        for pid in self.pids():
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.laddr and conn.laddr.port == self.port and conn.raddr and conn.raddr.port == mine:
                    return pid
        return None


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Workers]:
    procs = Processes()
    try:
        yield Workers(tmp_path_factory.mktemp("workers"), procs, redis_url)
    finally:
        procs.stop_all()


def healthz(client: socket.socket) -> bytes:
    """One keep-alive request on ``client``; the connection stays open, held by the worker that accepted it."""
    client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return client.recv(4096)


def test_connections_are_served_by_more_than_one_worker(workers: Workers) -> None:
    assert len(workers.pids()) == WORKERS
    owners: set[int] = set()
    held: list[socket.socket] = []
    try:
        # Which worker accepts a connection is the kernel's choice; keep connecting until two have.
        while len(owners) < 2 and len(held) < 200:
            client = socket.create_connection(("127.0.0.1", workers.port), timeout=10)
            held.append(client)
            assert healthz(client).startswith(b"HTTP/1.1 200")
            owner = workers.owner(client)
            assert owner is not None
            owners.add(owner)
    finally:
        for client in held:
            client.close()
    assert len(owners) >= 2 and owners <= workers.pids()


def test_every_worker_gets_the_same_fresh_metrics_directory(workers: Workers) -> None:
    directories = metrics_dirs(workers.pids())
    assert len(directories) == 1
    (directory,) = directories
    assert Path(directory).is_dir() and directory != os.environ.get(METRICS_DIR)


def test_a_worker_killed_is_started_again_and_the_port_keeps_answering(workers: Workers) -> None:
    before = workers.pids()
    victim = min(before)
    (directory,) = map(Path, metrics_dirs(before))
    live = directory / f"gauge_livesum_{victim}.db"  # its calls in flight, summed over live workers
    wait_until(live.exists, what="the worker's live gauge file")
    os.kill(victim, signal.SIGKILL)
    line = wait_until(
        lambda: next((x for x in workers.text().splitlines() if f"(pid {victim}) was killed by SIGKILL" in x), None),
        what="the parent to say the worker died",
    )
    assert "starting it again" in line
    assert not live.exists()  # a dead worker's calls in flight are not counted any more

    def replaced() -> set[int] | None:
        now = workers.pids()
        return now if len(now) == WORKERS and victim not in now else None

    (new,) = wait_until(replaced, what="a new worker in place of the killed one") - before
    wait_until(lambda: f"started again as pid {new}" in workers.text(), what="the new worker's pid in the log")
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", workers.port), timeout=10) as client:
            assert healthz(client).startswith(b"HTTP/1.1 200")


def test_sigterm_lets_the_call_in_flight_finish_then_every_worker_exits(
    tmp_path: Path, processes: Processes, redis_url: str
) -> None:
    stack = Workers(tmp_path, processes, redis_url)
    pids = stack.pids()
    (directory,) = map(Path, metrics_dirs(pids))
    outcome: dict[str, Any] = {}

    async def call_across_the_signal() -> None:
        url = f"http://127.0.0.1:{stack.port}/mcp"
        with anyio.fail_after(60):
            async with Client(url, mode="2026-07-28", client_info=READER_INFO) as client:
                await client.list_tools()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(terminate_once_the_backend_runs_it)
                    outcome["result"] = await client.call_tool("toy/record", {"tag": "in-flight", "seconds": 1})

    async def terminate_once_the_backend_runs_it() -> None:
        while not (stack.journal.exists() and stack.journal.read_text() == "in-flight\n"):
            await anyio.sleep(0.05)
        os.kill(stack.parent.pid, signal.SIGTERM)
        os.kill(stack.parent.pid, signal.SIGTERM)  # a second signal while the workers drain changes nothing

    anyio.run(call_across_the_signal)
    assert stack.parent.wait(timeout=60) == 0
    assert outcome["result"].content[0].text == "recorded"
    assert not any(alive(pid) for pid in pids)
    assert not directory.exists()


def metrics_dirs(pids: set[int]) -> set[str]:
    """The ``PROMETHEUS_MULTIPROC_DIR`` each of these processes was started with."""
    found = set()
    for pid in pids:
        for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            if entry.startswith(METRICS_DIR.encode() + b"="):
                found.add(entry.split(b"=", 1)[1].decode())
    return found


def tool_call_on_a_fresh_connection(port: int, index: int) -> None:
    """A plain 2026 call on a connection of its own, so the kernel may hand it to any worker."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "probe", "version": "1"},
    }
    body = {
        "jsonrpc": "2.0",
        "id": index,
        "method": "tools/call",
        "params": {"name": "toy/echo", "arguments": {"text": "hi"}, "_meta": meta},
    }
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "toy/echo",
        "connection": "close",
    }
    request = urllib.request.Request(f"http://127.0.0.1:{port}/mcp", json.dumps(body).encode(), headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def tool_calls_counted(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mcp_gateway_requests_total{") and 'method="tools/call"' in line
    )


def test_metrics_from_any_worker_count_the_calls_of_all(workers: Workers) -> None:
    before = tool_calls_counted(workers.port)
    for index in range(40):
        tool_call_on_a_fresh_connection(workers.port, index)
    (directory,) = metrics_dirs(workers.pids())
    assert len({p.stem.rsplit("_", 1)[1] for p in Path(directory).glob("counter_*.db")}) >= 2
    assert {tool_calls_counted(workers.port) - before for _ in range(6)} == {40}
