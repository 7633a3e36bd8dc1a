"""The order pytest-xdist hands test modules out in: the longest first.

With ``--dist loadfile`` a module runs whole on one worker, so the run lasts at least as long as the module started
last takes. xdist's own order (most tests first) can start a long module of a few tests at the very end; here the
modules measured longest (wall time on 2 cores) go first, and the rest keep their collection order behind them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
# Longest first: each of these takes from about ten seconds to over a minute on a 2-core machine.
LONGEST = (
    "test_interop.py",
    "test_lifecycle.py",
    "test_cli.py",
    "test_bench.py",
    "test_fidelity.py",
    "test_cluster.py",
    "test_demo.py",
    "backends/test_cli.py",
    "test_e2e.py",
    "test_client_sessions.py",
    "test_cli_workers.py",
    "test_transports.py",
    "test_telemetry_e2e.py",
    "test_operations_reload.py",
    "test_calls.py",
    "test_recovery.py",
    "test_security_e2e.py",
    "test_subscriptions.py",
    "test_auto_link.py",
    "test_fuzz.py",
    "test_tracing_e2e.py",
    "test_compose.py",
    "test_audit.py",
    "backends/test_hr.py",
    "backends/test_finance.py",
    "test_portable_sessions.py",
    "backends/test_ops.py",
)
RANK = {name: rank for rank, name in enumerate(LONGEST)}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A stable sort by module rank: a module's own tests stay together and in their order."""
    items.sort(key=lambda item: RANK.get(_name(item.path), len(LONGEST)))


def _name(path: Path) -> str:
    try:
        return path.relative_to(TESTS).as_posix()
    except ValueError:
        return path.name
