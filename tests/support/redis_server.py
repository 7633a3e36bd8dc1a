"""A throwaway redis-server on a free loopback port (``make test`` installs Debian's package when missing), which a
test may kill by its PID and start again on the same port."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.procs import Processes, free_port, listening, wait_until


class RedisServer:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed; `make test` installs it"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: listening(self.port), timeout=10, what="redis-server to listen")

    def kill(self) -> None:
        """SIGKILL, as a crash would end it; reaped."""
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait(timeout=10)
        self._proc = None

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def start_redis(procs: Processes) -> str:
    """A redis-server reaped with ``procs`` (it lives as long as they do); its ``redis://`` URL."""
    server = RedisServer()
    procs.start_program(*server.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: listening(server.port), timeout=10, what="redis-server to listen")
    return server.url
