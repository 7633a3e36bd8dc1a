"""Reference MCP software nobody on the team wrote, pinned in one place and installed from the registries.

Each PyPI package (a server, or an agent framework's client) gets its own venv (their ``mcp`` pin must not meet
ours); the npm packages share one prefix (one ``npm install``: a quarter of the CPU of one per package, and npm
keeps apart what their pins would not share), all under ``tests/.cache/interop``. Installing is idempotent (a marker
names what was installed) and bounded in time, so a warm cache needs no registry and a test never needs the network.
``python -m tests.support.interop`` installs everything up front (the Makefile's test target does this); the tests'
fixture calls the same function.

The ``*_backend`` helpers give the gateway's config for each server (the same command lines the tests use to talk
to the servers directly).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import installs
from bench.installs import InstallError
from tests.support.procs import ROOT

CACHE = ROOT / "tests" / ".cache" / "interop"
LOOPBACK = Path(__file__).resolve().parent / "loopback.cjs"
NODE_HOME = CACHE / "node"
INSTALL_TIMEOUT = 240.0  # seconds for one package; they install in parallel, so this bounds the whole install

MCP_SERVER_TIME = "mcp-server-time==2026.10.19"
MCP_SERVER_GIT = "mcp-server-git==2026.10.19"
SERVER_EVERYTHING = "@modelcontextprotocol/server-everything@2026.8.31"
SERVER_MEMORY = "@modelcontextprotocol/server-memory@2026.8.31"
SERVER_FILESYSTEM = "@modelcontextprotocol/server-filesystem@2026.8.31"
TS_SDK = "@modelcontextprotocol/sdk@1.32.2"
# Agent frameworks whose MCP clients hand the gateway's names to a model API (no model is called in the tests).
OPENAI_AGENTS = "openai-agents==0.24.0"
LANGCHAIN_MCP_ADAPTERS = "langchain-mcp-adapters==0.3.2"


@dataclass(frozen=True)
class Package:
    spec: str  # "name==version" (PyPI) or "name@version" (npm)
    language: str  # "python" or "node"

    @property
    def name(self) -> str:
        return self.spec.split("==")[0] if self.language == "python" else self.spec.rsplit("@", 1)[0]

    @property
    def home(self) -> Path:
        if self.language == "node":
            return NODE_HOME
        return CACHE / self.spec.replace("==", "-")

    def module(self) -> Path:
        """An npm package's installed folder."""
        return self.home / "node_modules" / self.name


PACKAGES = [
    Package(MCP_SERVER_TIME, "python"),
    Package(MCP_SERVER_GIT, "python"),
    Package(SERVER_EVERYTHING, "node"),
    Package(SERVER_MEMORY, "node"),
    Package(SERVER_FILESYSTEM, "node"),
    Package(TS_SDK, "node"),
    Package(OPENAI_AGENTS, "python"),
    Package(LANGCHAIN_MCP_ADAPTERS, "python"),
]
BY_SPEC = {package.spec: package for package in PACKAGES}


def install_all(timeout: float = INSTALL_TIMEOUT) -> dict[str, Path]:
    """Every pinned package, installed on first use in parallel; the spec -> its environment."""
    node = tuple(package.spec for package in PACKAGES if package.language == "node")
    python = [package for package in PACKAGES if package.language == "python"]
    with ThreadPoolExecutor(max_workers=len(python) + 1) as pool:
        pending = [
            pool.submit(installs.install, package.home, (package.spec,), "python", timeout) for package in python
        ]
        pending.append(pool.submit(installs.install, NODE_HOME, node, "node", timeout))
        for future in pending:
            future.result()
    return {package.spec: package.home for package in PACKAGES}


def node() -> str:
    return shutil.which("node") or "node"


def _node_script(spec: str, *relative: str) -> str:
    return str(BY_SPEC[spec].module().joinpath(*relative))


def time_command() -> tuple[str, list[str]]:
    """``mcp-server-time`` with a fixed local timezone, so both sides agree whatever the machine says."""
    python = BY_SPEC[MCP_SERVER_TIME].home / "bin" / "python"
    return str(python), ["-m", "mcp_server_time", "--local-timezone", "Europe/Paris"]


def git_command(repository: Path) -> tuple[str, list[str]]:
    python = BY_SPEC[MCP_SERVER_GIT].home / "bin" / "python"
    return str(python), ["-m", "mcp_server_git", "--repository", str(repository)]


def everything_command(transport: str = "stdio") -> tuple[str, list[str]]:
    """server-everything's CLI: ``stdio``, ``sse`` or ``streamableHttp`` (the HTTP ones read ``PORT``)."""
    script = _node_script(SERVER_EVERYTHING, "dist", "index.js")
    return node(), ["-r", str(LOOPBACK), script, transport]


def memory_command() -> tuple[str, list[str]]:
    """server-memory; its graph file comes from ``MEMORY_FILE_PATH``."""
    return node(), [_node_script(SERVER_MEMORY, "dist", "index.js")]


def filesystem_command(folder: Path) -> tuple[str, list[str]]:
    return node(), [_node_script(SERVER_FILESYSTEM, "dist", "index.js"), str(folder)]


def ts_sdk_modules() -> Path:
    """The ``node_modules`` folder holding the TypeScript SDK, for ``NODE_PATH``-free imports by file URL."""
    return BY_SPEC[TS_SDK].home / "node_modules"


def stdio_backend(name: str, command: tuple[str, list[str]], **extra: Any) -> dict[str, Any]:
    """A gateway backend entry that spawns ``command`` over stdio."""
    program, args = command
    return {"name": name, "transport": "stdio", "command": program, "args": args, "connect_timeout": 60, **extra}


def main() -> int:
    started = time.monotonic()
    try:
        homes = install_all()
    except InstallError as exc:
        print(f"interop: {exc}", file=sys.stderr)
        return 1
    where = os.path.relpath(CACHE, ROOT)
    print(f"interop: {len(homes)} reference packages ready in {where} ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
