"""Hot reload of the config file: on SIGHUP, and when the file changes on disk.

The file is read and validated as at start (the command line's own loader, so its flags still apply); a file that
fails is refused with one log line naming the field, and the running configuration stays. One that passes goes to
``Runtime.reload``, which applies only what changed. The file is watched with ``watchfiles`` through its directory,
because editors save by renaming a new file over the old one, which a watch on the file itself would lose; its
debounce makes a save in several writes one reload.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
from watchfiles import Change, awatch

from gateway.config import GatewayConfig
from gateway.errors import ConfigError
from gateway.operations.runtime import Runtime

logger = logging.getLogger(__name__)
# Milliseconds the watcher's thread waits at most before it looks whether it should stop: bounds the shutdown.
WATCH_STEP_TIMEOUT = 500


@dataclass(frozen=True)
class ConfigFile:
    """The config file in use, and how the command line turns it into a configuration."""

    path: Path
    load: Callable[[], GatewayConfig]


@asynccontextmanager
async def reloading(source: ConfigFile, runtime: Runtime) -> AsyncIterator[None]:
    """Reload on SIGHUP and on every change of the file while the block runs."""
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        await tg.start(_on_signal, source, runtime)
        tg.start_soon(_on_change, source, runtime, stop)
        try:
            yield
        finally:
            stop.set()
            tg.cancel_scope.cancel()


async def reload(source: ConfigFile, runtime: Runtime, why: str) -> None:
    """Read the file and apply it, or refuse it with one log line and keep what runs."""
    try:
        config = source.load()
    except ConfigError as exc:
        problems = "; ".join(str(exc).splitlines())
        logger.error("config reload (%s) refused, still serving the previous configuration: %s", why, problems)
        return
    await runtime.reload(config)


async def _on_signal(source: ConfigFile, runtime: Runtime, *, task_status: anyio.abc.TaskStatus[None]) -> None:
    with anyio.open_signal_receiver(signal.SIGHUP) as signals:
        task_status.started()
        async for _ in signals:
            await reload(source, runtime, "SIGHUP")


async def _on_change(source: ConfigFile, runtime: Runtime, stop: anyio.Event) -> None:
    target = source.path.resolve()

    def ours(change: Change, path: str) -> bool:
        return Path(path) == target

    async for _ in awatch(
        target.parent, watch_filter=ours, recursive=False, stop_event=stop, rust_timeout=WATCH_STEP_TIMEOUT
    ):
        await reload(source, runtime, f"{source.path} changed")
