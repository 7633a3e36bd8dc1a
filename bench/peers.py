"""Peers measured beside the gateway, each installed from its registry into its own environment under the cache.

A peer is a recipe: what to install (a pinned PyPI or npm package, in its own venv or node folder), and the
command that serves the echo backend through it on a given port. Python peers in front of an HTTP backend get the
benchmark's JSON-mode echo backend; stdio bridges spawn the same echo server over stdio. Anything that fails to
install or start within its bound is skipped with the reason.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import installs

BENCH_DIR = Path(__file__).resolve().parent
ECHO_SERVER = BENCH_DIR / "echo_server.py"

FASTMCP = "fastmcp==4.1.0"  # newer 4.1.x releases need a certifi newer than the registry mirror may carry
MCP_PROXY = "mcp-proxy==0.13.0"
SUPERGATEWAY = "supergateway@4.0.0"


@dataclass(frozen=True)
class Peer:
    name: str
    package: str
    language: str  # "python" or "node"
    description: str
    command: Callable[[Path, int, str], list[str]]  # (environment, port, http backend url) -> argv
    http_backend: bool = False  # fronts the shared HTTP echo backend (else it spawns a stdio one)

    def stdio_backend(self) -> list[str]:
        return [sys.executable, str(ECHO_SERVER), "--stdio"]


def _fastmcp(reuse: bool) -> Callable[[Path, int, str], list[str]]:
    def command(env: Path, port: int, backend: str) -> list[str]:
        argv = [str(env / "bin" / "python"), str(BENCH_DIR / "peer_fastmcp.py"), "--backend", backend]
        return [*argv, "--port", str(port), *(["--reuse"] if reuse else [])]

    return command


def _mcp_proxy(env: Path, port: int, backend: str) -> list[str]:
    stdio = [sys.executable, str(ECHO_SERVER), "--stdio"]
    return [str(env / "bin" / "mcp-proxy"), "--host", "127.0.0.1", "--port", str(port), "--", *stdio]


def _supergateway(env: Path, port: int, backend: str) -> list[str]:
    node = shutil.which("node") or "node"
    script = env / "node_modules" / "supergateway" / "dist" / "index.js"
    stdio = f"{sys.executable} {ECHO_SERVER} --stdio"
    return [
        node,
        "-r",
        str(BENCH_DIR / "loopback.cjs"),  # supergateway has no bind-address flag; this keeps it on 127.0.0.1
        str(script),
        "--stdio",
        stdio,
        "--outputTransport",
        "streamableHttp",
        "--stateful",
        "--port",
        str(port),
        "--logLevel",
        "none",
    ]


PEERS: dict[str, Peer] = {
    "fastmcp-reuse": Peer(
        "fastmcp-reuse", FASTMCP, "python", "FastMCP proxy reusing one connected backend client", _fastmcp(True), True
    ),
    "fastmcp-default": Peer(
        "fastmcp-default",
        FASTMCP,
        "python",
        "FastMCP proxy, default (new backend session per call)",
        _fastmcp(False),
        True,
    ),
    "mcp-proxy": Peer("mcp-proxy", MCP_PROXY, "python", "mcp-proxy (PyPI) bridging a stdio backend", _mcp_proxy),
    "supergateway": Peer(
        "supergateway", SUPERGATEWAY, "node", "supergateway (npm), stateful, bridging a stdio backend", _supergateway
    ),
}


# Peers the suite knows of but does not start; each appears in the results as skipped, with the reason.
NOT_AUTOMATED: dict[str, dict[str, str]] = {
    "contextforge": {
        "package": "mcp-contextforge-gateway",
        "description": "IBM ContextForge",
        "skipped": "optional and not automated: serving MCP through it takes registering each backend through its "
        "admin API behind JWT auth and creating a virtual server, which this suite does not do yet",
    },
}


def install(peer: Peer, cache: Path, timeout: float) -> Path:
    """The peer's environment, installed on first use."""
    slug = peer.package.replace("==", "-").replace("@", "-")
    return installs.install(cache / slug, (peer.package,), peer.language, timeout)
