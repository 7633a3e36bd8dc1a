"""Helpers for tests that run real servers: free ports, bounded polling, and subprocesses that are always reaped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.zygote import ZygotePopen

ROOT = Path(__file__).resolve().parent.parent.parent
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, timeout: float = START_TIMEOUT, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def run_python(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """This Python with ``args`` run to its end with its output captured, as ``subprocess.run`` would (`-m` forks
    from the zygote); killed with its group, and the test failed, at ``timeout``."""
    with ZygotePopen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), err.decode())


class Processes:
    """Starts subprocesses in their own process group; ``stop_all`` ends and reaps every one."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[bytes]:
        """This Python with ``args``."""
        return self.start_program(sys.executable, *args, env=env, **kwargs)

    def start_program(self, *argv: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Any program (a Node server, another venv's Python), reaped like the rest; `-m` of this Python forks."""
        full_env = {**os.environ, **(env or {})}
        proc = ZygotePopen(list(argv), cwd=ROOT, env=full_env, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        code = proc.wait(timeout=10)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        return code

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first, then the parent's id)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> set[int]:
    """The ids of the processes whose parent is ``pid``, read from the process table."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int(_stat(entry.name)[1])
            except OSError:
                continue
            if parent == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running, or at least not yet a zombie."""
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False
