"""Processes the benchmark starts: each in its own process group on 127.0.0.1, watched, and always reaped.

``Processes`` is a context manager: whatever was started inside it is stopped on the way out (SIGTERM to the
group, SIGKILL after a timeout, then reaped), errors included. ``Proc`` reads a process tree's CPU seconds and
resident memory through psutil, split by role when a tree holds both a proxy and the backend it spawned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psutil

STOP_TIMEOUT = 5.0
BACKEND_MARK = "echo_server"


class StartError(RuntimeError):
    """A process exited or did not become ready in time; the message carries the tail of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Proc:
    """One started process (and whatever it spawns)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    role: str = "server"
    started_at: float = field(default_factory=time.perf_counter)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds (user + system) so far of each live process in the tree, by role.

        A spawned stdio backend (its command line names the echo server) counts as ``backend``; the rest of the
        tree counts as this process's own role.
        """
        out: dict[str, float] = {}
        for proc in self.tree():
            try:
                times = proc.cpu_times()
                role = self.role
                if proc.pid != self.pid and any(BACKEND_MARK in part for part in proc.cmdline()):
                    role = "backend"
            except psutil.Error:
                continue
            out[role] = out.get(role, 0.0) + times.user + times.system
        return out

    def rss(self) -> int:
        """Resident bytes of the process itself (not its children)."""
        try:
            return int(psutil.Process(self.pid).memory_info().rss)
        except psutil.Error:
            return 0

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Processes:
    """Starts processes and guarantees they are stopped and reaped.

    ``popen`` starts each one; the smoke test swaps in the test harness's, which forks `python -m` starts from a
    process that has imported the SDK already.
    """

    popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[Proc] = []

    def __enter__(self) -> Processes:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        command: Sequence[str],
        *,
        role: str = "server",
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Proc:
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            popen = self.popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        proc = Proc(name, popen, log, role)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        """SIGTERM the group, SIGKILL it if it lingers, and reap."""
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        # Grandchildren that left the group (or outlived their parent) are killed too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.popen.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        """Stop everything at once: SIGTERM to every group first, then wait, kill and reap each."""
        for proc in self.procs:
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in list(reversed(self.procs)):
            self.stop(proc)


def wait_until(
    check: Callable[[], bool], timeout: float, proc: Proc | None = None, what: str = "ready", interval: float = 0.02
) -> float:
    """Poll ``check`` until it holds; returns the seconds waited. Raises ``StartError`` on exit or timeout."""
    start = time.perf_counter()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        if proc is not None and not proc.alive():
            raise StartError(f"{proc.name} exited with status {proc.popen.returncode}:\n{proc.tail()}")
        if check():
            return time.perf_counter() - start
        time.sleep(interval)
    tail = f":\n{proc.tail()}" if proc is not None else ""
    raise StartError(f"{proc.name if proc else 'process'} not {what} within {timeout:g} s{tail}")


def port_open(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    return check


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    return check


def wait_quiet(threshold: float = 20.0, limit: float = 10.0) -> float:
    """Wait (bounded) until the whole machine's CPU use drops below ``threshold`` percent; returns the last reading.

    A peer that spawns a process per session (supergateway) is still starting or reaping them after its window;
    the next target must not pay for that.
    """
    deadline = time.perf_counter() + limit
    busy = psutil.cpu_percent(interval=0.2)
    while busy >= threshold and time.perf_counter() < deadline:
        busy = psutil.cpu_percent(interval=0.25)
    return float(busy)


@contextlib.contextmanager
def sampling_rss(proc: Proc, interval: float = 0.1) -> Iterator[list[int]]:
    """Collects the peak RSS seen while the block runs, by polling from a thread."""
    import threading

    samples: list[int] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            samples.append(proc.rss())
            done.wait(interval)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join(timeout=2.0)
