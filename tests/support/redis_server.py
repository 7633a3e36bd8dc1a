"""A throwaway redis-server for tests that share state through Redis (``make test`` installs Debian's package)."""

from __future__ import annotations

import shutil
import subprocess

from tests.support.procs import Processes, free_port, listening, wait_until


def start_redis(procs: Processes) -> str:
    """A redis-server on a free loopback port, without persistence, reaped with ``procs``; its ``redis://`` URL."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed; `make test` installs it"
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    procs.start_program(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: listening(port), timeout=10, what="redis-server to listen")
    return f"redis://127.0.0.1:{port}/0"
