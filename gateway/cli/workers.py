"""``serve --workers N``: N processes serving one port, and the parent that keeps them running.

The parent binds the port (``listeners``) and starts each worker as ``mcp-gateway serve`` again, the listening
socket passed as a file descriptor; the kernel hands each new connection to one of the workers accepting on it.
The parent serves nothing and holds no backend connection: it restarts a worker that exits (with backoff, one log
line), passes SIGHUP on (each worker reloads its config file), and on SIGTERM or SIGINT sends every worker SIGTERM,
gives each the drain of a single gateway (``shutdown_grace``) and a margin, kills what is left, and exits 0.

Workers are spawned, not forked: each starts as a single gateway does (configuration read, event loop, backends and
state of its own), and a restarted worker is the same fresh process as the first. uvicorn's own supervisor
(``uvicorn.supervisors.Multiprocess``) runs a bare ``uvicorn.Server`` in each process; the gateway's server owns its
lifecycle around uvicorn (backends connected before it serves, its own drain and signal handling), so it is not used.

Workers share a fresh, empty ``PROMETHEUS_MULTIPROC_DIR``, made by the parent and removed when it exits, so that
``/metrics`` from any of them sums the counters of all (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

import anyio

from gateway.cli.children import die_with_parent, exit_status
from gateway.config import GatewayConfig
from gateway.telemetry import metrics

logger = logging.getLogger(__name__)
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# A worker that exits is started again after RESTART_MIN seconds, doubling up to RESTART_MAX while it keeps
# exiting; one that had run for STEADY seconds failed afresh and waits RESTART_MIN again.
RESTART_MIN = 0.5
RESTART_MAX = 10.0
STEADY = 30.0
# Seconds past ``shutdown_grace`` a worker gets to close its backends before it is killed.
STOP_MARGIN = 5.0


def refusal(count: int, config: GatewayConfig) -> str | None:
    """Why ``count`` workers cannot serve ``config``, or None.

    A 2025 session lives where it was opened unless the processes share a store: with several workers its next
    request may reach another one, which does not know it. That is refused rather than served unreliably."""
    store = config.cluster.store
    if count > 1 and (store is None or store.get_secret_value() == "memory"):
        return (
            f"--workers {count} needs cluster.store (a redis:// URL): without a shared store a 2025 client's "
            "session is known only to the worker that opened it"
        )
    return None


def serve_workers(count: int, listener: socket.socket, argv: Sequence[str], config: GatewayConfig) -> None:
    """Run ``count`` workers on ``listener``, each ``mcp-gateway`` with ``argv`` (the parent's own arguments), until
    SIGTERM or SIGINT."""
    listener.listen(socket.SOMAXCONN)  # connections wait in the backlog while a worker starts or restarts
    command = [sys.executable, "-m", "gateway", *argv, "--worker-fd", str(listener.fileno())]
    with _metrics_dir() as directory:
        env = {**os.environ, METRICS_DIR: directory}
        workers = [Worker(index, command, env, listener) for index in range(1, count + 1)]
        anyio.run(_supervise, workers, config.shutdown_grace + STOP_MARGIN)


@contextmanager
def _metrics_dir() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="mcp-gateway-metrics-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _supervise(workers: Sequence[Worker], stop_timeout: float) -> None:
    """Start the workers, keep them running, pass SIGHUP on; on SIGTERM or SIGINT stop them all. Signals that
    arrive while they stop are taken and ignored, so the parent always reaps its workers and removes their
    metrics directory."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        try:
            async with anyio.create_task_group() as tg:
                for worker in workers:
                    worker.start()
                    tg.start_soon(worker.supervise)
                pids = ", ".join(str(worker.pid) for worker in workers)
                logger.info("started %d workers (pids %s)", len(workers), pids)
                async for sig in signals:
                    if sig != signal.SIGHUP:
                        break
                    for worker in workers:
                        worker.send(signal.SIGHUP)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(stop, workers, stop_timeout)


class Worker:
    """One worker: its process on the shared socket, started again with backoff whenever it exits."""

    def __init__(self, index: int, command: list[str], env: dict[str, str], listener: socket.socket) -> None:
        self.index = index
        self._command = command
        self._env = env
        self._fd = listener.fileno()
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self._proc is not None, "start() first"
        return self._proc

    def start(self) -> None:
        # A session of its own: Ctrl-C in a terminal reaches the parent alone, which passes SIGTERM on once (a
        # second signal would cut uvicorn's drain short).
        self._started = time.monotonic()
        self._proc = subprocess.Popen(
            self._command,
            env=self._env,
            pass_fds=(self._fd,),
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    async def supervise(self) -> None:
        """Reap the process whenever it exits, say so in one line, and start it again after the backoff, whatever
        the reason: the others keep serving meanwhile, and what failed its start (a required backend, a config
        file edited into an error) may be back by the next attempt."""
        delay = RESTART_MIN
        while True:
            status = await anyio.to_thread.run_sync(self.proc.wait, abandon_on_cancel=True)
            metrics.process_gone(self.pid, self._env[METRICS_DIR])
            if time.monotonic() - self._started >= STEADY:
                delay = RESTART_MIN
            how = exit_status(status)
            logger.warning("worker %d (pid %d) %s; starting it again in %gs", self.index, self.pid, how, delay)
            await anyio.sleep(delay)
            self.start()
            logger.info("worker %d started again as pid %d", self.index, self.pid)
            delay = min(delay * 2, RESTART_MAX)

    def send(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    def reap(self, deadline: float) -> None:
        """Wait for the process until ``deadline``, then kill it; either way it is reaped."""
        if self._proc is None:
            return
        try:
            self._proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("worker %d (pid %d) still running after the drain; killing it", self.index, self.pid)
            self.send(signal.SIGKILL)
            self._proc.wait()


def stop(workers: Sequence[Worker], timeout: float) -> None:
    """SIGTERM every worker at once (each drains its calls), SIGKILL what lingers after ``timeout``, reap all."""
    for worker in workers:
        worker.send(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.reap(deadline)
