"""What the benchmark runs against: echo backends, gateways in front of them, peers, and the load targets.

A ``Target`` is one thing to measure (direct, gateway or a peer, in one protocol era and response mode) with
the processes whose CPU it costs. Every process goes through ``Processes``, so it is stopped and reaped.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.installs import InstallError
from bench.loadgen import ERA_2025, Endpoint, McpClient, RpcError
from bench.peers import PEERS, install
from bench.procs import Proc, Processes, StartError, free_port, http_ok, port_open, wait_until

ROOT = Path(__file__).resolve().parent.parent
GATEWAY_PREFIX = "b"


@dataclass
class Target:
    system: str  # "direct", "gateway" or a peer's name
    era: str
    mode: str  # "json", "sse" or "peer" (a peer answers however it answers)
    url: str
    tool: str
    watch: list[Proc] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.system}/{self.era}/{self.mode}"

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of every watched process, by role."""
        total: dict[str, float] = {}
        for proc in self.watch:
            for role, seconds in proc.cpu_by_role().items():
                total[role] = total.get(role, 0.0) + seconds
        return total


def url(port: int, path: str = "/mcp") -> str:
    return f"http://127.0.0.1:{port}{path}"


def start_echo(procs: Processes, mode: str, name: str | None = None) -> tuple[Proc, int]:
    """Start an echo backend; the caller waits for it (``wait_listening``) so starts can overlap."""
    port = free_port()
    command = [sys.executable, "-m", "bench.echo_server", "--port", str(port)]
    command += ["--json-response"] if mode == "json" else []
    return procs.start(name or f"echo-{mode}", command, role="backend", cwd=ROOT), port


def wait_listening(proc: Proc, port: int, timeout: float) -> float:
    return wait_until(port_open(port), timeout, proc, "listening")


def write_gateway_config(
    path: Path, backends: Sequence[tuple[str, str, str]], link: str | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """A gateway config file for ``(name, prefix, url)`` backends, each with ``protocol: link`` if given, and the
    ``extra`` top-level settings."""
    protocol = {} if link is None else {"protocol": link}
    data = {"backends": [{"name": n, "prefix": p, "url": u, **protocol} for n, p, u in backends], **(extra or {})}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start_gateway(
    procs: Processes, name: str, config: Path, json_response: bool, json_logs: bool = False
) -> tuple[Proc, int]:
    """Start a gateway; the caller waits for it (``wait_ready``) so starts can overlap. ``json_logs``: JSON log
    lines with an access line per call, in its log."""
    port = free_port()
    command = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)]
    logs = ["--log-format", "json", "--log-level", "info"] if json_logs else ["--log-level", "warning"]
    command += [*logs, *(["--json-response"] if json_response else [])]
    proc = procs.start(name, command, role="gateway", cwd=ROOT)
    return proc, port


def wait_ready(proc: Proc, port: int, timeout: float) -> float:
    return wait_until(http_ok(url(port, "/readyz")), timeout, proc, "ready")


async def check_call(target: Target, limit: float) -> None:
    """One handshake and one call, so a target that cannot serve is found before it is measured."""
    client = McpClient(Endpoint.parse(target.url), target.era)
    try:
        await asyncio.wait_for(client.open(), limit)
        await asyncio.wait_for(client.call_tool(target.tool, {"text": "ready?"}), limit)
    finally:
        await client.close()


def start_peer(
    procs: Processes,
    name: str,
    cache: Path,
    backend: tuple[Proc, str] | None,
    install_timeout: float,
    start_timeout: float,
) -> Target:
    """Install and start one peer; raises ``InstallError`` or ``StartError`` with the reason it cannot run."""
    peer = PEERS[name]
    env = install(peer, cache, install_timeout)
    port = free_port()
    proc = procs.start(f"peer-{name}", peer.command(env, port, backend[1] if backend else ""), role="proxy")
    wait_until(port_open(port), start_timeout, proc, "listening")
    target = Target(name, ERA_2025, "peer", url(port), "echo", [proc, *([backend[0]] if backend else [])])
    deadline_error: Exception | None = None
    for _ in range(3):
        try:
            asyncio.run(check_call(target, start_timeout / 3))
            return target
        except (RpcError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            deadline_error = exc
    procs.stop(proc)
    raise StartError(f"{name} started but did not answer a call: {deadline_error}")


__all__ = ["InstallError", "StartError", "Target", "start_echo", "start_gateway", "start_peer", "wait_listening"]
