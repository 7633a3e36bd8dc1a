"""The demo stack: the three sample backends as child processes the demo watches, and the gateway in front of them.

Each backend serves on a socket the demo bound before anything started (``--fd``): whatever answers on its port
is the process the demo started, and a restarted one takes the same socket over, so connections made meanwhile
wait in its backlog instead of reaching someone else's server.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import anyio
import yaml

from gateway.cli.children import die_with_parent, exit_status
from gateway.cli.running import serve_http
from gateway.config import GatewayConfig
from gateway.errors import StartupError
from gateway.front.app import MCP_PATH, server_path

logger = logging.getLogger(__name__)
SAMPLE_BACKENDS = ("ops", "hr", "finance")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
# A backend that exits is started again after RESTART_MIN seconds, doubling up to RESTART_MAX while it keeps
# exiting; one that had run for STEADY seconds failed afresh and waits RESTART_MIN again.
RESTART_MIN = 0.5
RESTART_MAX = 10.0
STEADY = 30.0


def run_demo(
    listener: socket.socket,
    host: str,
    backend_sockets: Mapping[str, socket.socket],
    data_dir: Path,
    config: GatewayConfig,
    path: Path | None,
) -> None:
    """Start the sample backends on their sockets, then the gateway on ``listener``; Ctrl-C stops all of it.

    Without a config file the effective one is written to ``data_dir``, so the printed stdio entry for Claude
    Desktop reaches the same backends on the same ports.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    if path is None:
        path = data_dir / "gateway.yaml"
        path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True), sort_keys=False))
    backends = [Backend(name, sock, data_dir) for name, sock in backend_sockets.items()]
    banner = _demo_banner(host, listener.getsockname()[1], path.resolve(), list(config.servers))
    anyio.run(_serve_demo, config, listener, host, backends, banner)


async def _serve_demo(
    config: GatewayConfig, listener: socket.socket, host: str, backends: Sequence[Backend], banner: str
) -> None:
    async with supervised(backends):
        await serve_http(config, listener, host, banner)


@asynccontextmanager
async def supervised(backends: Sequence[Backend]) -> AsyncIterator[None]:
    """Start every backend and wait until each answers; restart any that exits until the block ends; then end and
    reap them all."""
    try:
        for backend in backends:
            backend.start()
        for backend in backends:
            await backend.ready()
        async with anyio.create_task_group() as tg:
            for backend in backends:
                tg.start_soon(backend.supervise)
            yield
            tg.cancel_scope.cancel()
    finally:
        stop(backends)


class Backend:
    """One sample backend: its process on the demo's socket, restarted with backoff whenever it exits."""

    def __init__(self, name: str, listener: socket.socket, data_dir: Path) -> None:
        self.name = name
        self._listener = listener
        self._address = listener.getsockname()[:2]
        host, fd = self._address[0], str(listener.fileno())
        self._command = [sys.executable, "-m", f"backends.{name}", "--host", host, "--fd", fd]
        self._command += ["--db", str(data_dir / f"{name}.sqlite3"), "--log-level", "warning"]
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self._proc is not None, "start() first"
        return self._proc

    def start(self) -> None:
        self._started = time.monotonic()
        self._proc = subprocess.Popen(
            self._command, pass_fds=(self._listener.fileno(),), start_new_session=True, preexec_fn=die_with_parent
        )

    async def ready(self) -> None:
        """Return once the backend answers HTTP on its socket; one that exits or stays silent stops the demo."""
        with anyio.move_on_after(START_TIMEOUT):
            while not await self._answers():
                if self.proc.poll() is not None:
                    raise StartupError(f"the {self.name} backend exited with status {self.proc.returncode}")
                await anyio.sleep(0.1)
            return
        host, port = self._address
        raise StartupError(f"the {self.name} backend did not answer on {host}:{port} within {START_TIMEOUT:g}s")

    async def _answers(self) -> bool:
        """Whether an HTTP request on the socket gets an answer: only a process holding the socket can give one."""
        host, port = self._address
        with anyio.move_on_after(1):
            try:
                async with await anyio.connect_tcp(host, port) as stream:
                    await stream.send(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                    return (await stream.receive()).startswith(b"HTTP/")
            except (OSError, anyio.EndOfStream, anyio.BrokenResourceError):
                return False
        return False

    async def supervise(self) -> None:
        """Reap the process whenever it exits, say so, and start it again after the backoff."""
        delay = RESTART_MIN
        while True:
            status = await anyio.to_thread.run_sync(self.proc.wait, abandon_on_cancel=True)
            if time.monotonic() - self._started >= STEADY:
                delay = RESTART_MIN
            how = exit_status(status)
            logger.warning("the %s backend (pid %d) %s; restarting it in %gs", self.name, self.proc.pid, how, delay)
            await anyio.sleep(delay)
            self.start()
            delay = min(delay * 2, RESTART_MAX)

    def terminate(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            _signal_group(self._proc, signal.SIGTERM)

    def reap(self, deadline: float) -> None:
        """Wait for the process until ``deadline``, then kill it; either way it is reaped."""
        if self._proc is None:
            return
        try:
            self._proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(self._proc, signal.SIGKILL)
            self._proc.wait()


def stop(backends: Sequence[Backend]) -> None:
    """SIGTERM every backend's process group at once, SIGKILL what lingers after ``STOP_TIMEOUT``, reap all."""
    for backend in backends:
        backend.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for backend in backends:
        backend.reap(deadline)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _demo_banner(host: str, port: int, config: Path, servers: Sequence[str]) -> str:
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    url = f"{base}{MCP_PATH}"
    executable = shutil.which("mcp-gateway") or str(Path(sys.executable).with_name("mcp-gateway"))
    desktop = {"mcpServers": {"gateway": {"command": executable, "args": ["stdio", "--config", str(config)]}}}
    remote = {"mcpServers": {"gateway": {"command": "npx", "args": ["-y", "mcp-remote", url]}}}
    return "\n".join(
        [
            f"\nMCP endpoint: {url}",
            *(f"Virtual server {name}: {base}{server_path(name)}" for name in servers),
            "Claude Desktop (claude_desktop_config.json), the gateway on stdio:",
            json.dumps(desktop, indent=2),
            "or through mcp-remote:",
            json.dumps(remote, indent=2),
            "Ctrl-C stops the gateway and the three backends.",
        ]
    )
