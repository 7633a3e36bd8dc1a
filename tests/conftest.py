"""Shared fixtures: the anyio backend, reaped subprocesses, and the whole stack on real sockets."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from tests.support.procs import ROOT, Processes, free_port, http_get, listening, wait_until
from tests.support.stack import Stack
from tests.support.zygote import install

install()

pytest_plugins = ["pytester", "tests.support.lanes", "tests.support.order"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True, scope="session")
def state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Gateways the tests start keep their runtime changes in a directory of the run, not the user's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
        yield


@pytest.fixture
def processes() -> Iterator[Processes]:
    procs = Processes()
    try:
        yield procs
    finally:
        procs.stop_all()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Three sample backends and a gateway, started once per test module."""
    procs = Processes()
    try:
        yield Stack(tmp_path_factory.mktemp("stack"), procs).start()
    finally:
        procs.stop_all()


@pytest.fixture(scope="session")
def toy_links(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The toy backend directly (``direct``) and through a gateway (``gateway``, ``/readyz`` at ``ready``) over four
    links: ``web`` (streamable HTTP, 2025 session, raw forwarding), ``modern`` (streamable HTTP, 2026), ``local``
    (stdio, the SDK's client, shared) and ``own`` (stdio, a session per client). Started once for the suite."""
    root = tmp_path_factory.mktemp("toy-links")
    procs = Processes()
    try:
        toy = free_port()
        procs.start("-m", "tests.support.toy_server", "--port", str(toy))
        wait_until(lambda: listening(toy))
        direct = f"http://127.0.0.1:{toy}/mcp"
        stdio = {"transport": "stdio", "command": sys.executable, "cwd": str(ROOT), "connect_timeout": 30,
                 "args": ["-m", "tests.support.toy_server", "--stdio"]}  # fmt: skip
        backends = [
            {"name": "web", "url": direct, "protocol": "legacy"},
            {"name": "modern", "url": direct, "protocol": "2026-07-28"},
            {"name": "local", "protocol": "legacy", **stdio},
            {"name": "own", "protocol": "legacy", "session": "per_client", **stdio},
        ]
        (root / "gateway.json").write_text(json.dumps({"backends": backends, "reconnect_min": 0.05}))
        port = free_port()
        procs.start("-m", "gateway", "serve", "--config", str(root / "gateway.json"), "--port", str(port))
        ready = f"http://127.0.0.1:{port}/readyz"
        wait_until(lambda: listening(port) and http_get(ready)[0] == 200, timeout=60)
        yield {"direct": direct, "gateway": f"http://127.0.0.1:{port}/mcp", "ready": ready}
    finally:
        procs.stop_all()
