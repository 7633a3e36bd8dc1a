"""Shared fixtures: the anyio backend, reaped subprocesses, and the whole stack on real sockets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.procs import Processes
from tests.support.stack import Stack


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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
