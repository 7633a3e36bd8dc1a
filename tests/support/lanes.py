"""The test lanes: which tests stay in this process and which start others, and a watch that keeps that honest.

``processes`` marks a test that starts processes or talks to them over real sockets; ``make test-fast`` runs only
the tests without it. ``interop`` (the installed reference servers and node) and ``bench`` (the benchmark's smoke
run) are kinds of process test. Marks come from evidence: a module's ``pytestmark``, a decorator, or here, the
shared fixtures that start processes. Any test that starts a process without the mark fails at teardown, so the
fast lane cannot quietly grow a slow test.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from typing import Any

import pytest

PROCESS_FIXTURES = frozenset({"processes", "stack", "toy_links"})
MODULE_LANES = {"test_bench.py": "bench"}
LANES_IMPLYING_PROCESSES = ("interop", "bench")
SPAWN_EVENTS = frozenset({"subprocess.Popen", "os.posix_spawn", "os.fork", "os.forkpty", "os.system"})


class SpawnWatch:
    """The processes started while one test runs, seen through the interpreter's audit events (asyncio's and
    anyio's subprocesses are ``subprocess.Popen`` underneath)."""

    def __init__(self) -> None:
        self.watching = False
        self.started: list[str] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.watching and event in SPAWN_EVENTS:
            self.started.append(f"{event} {args[0]!s:.100}")

    def begin(self) -> None:
        self.started, self.watching = [], True

    def end(self) -> list[str]:
        self.watching = False
        return self.started


WATCH = SpawnWatch()
sys.addaudithook(WATCH)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        lane = MODULE_LANES.get(item.path.name)
        if lane is not None:
            item.add_marker(lane)
        implied = any(item.get_closest_marker(name) for name in LANES_IMPLYING_PROCESSES)
        if implied or PROCESS_FIXTURES.intersection(item.fixturenames):
            item.add_marker("processes")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    WATCH.begin()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    yield
    started = WATCH.end()
    if started and item.get_closest_marker("processes") is None:
        pytest.fail(f"started a process without the `processes` mark: {started[0]}", pytrace=False)
