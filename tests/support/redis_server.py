"""A throwaway real redis-server on a free loopback port, always reaped (``make test`` installs Debian's package)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.procs import free_port, listening, wait_until


@contextmanager
def redis_server() -> Iterator[str]:
    """Yield the ``redis://`` URL of a fresh, empty redis-server that keeps nothing on disk."""
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
