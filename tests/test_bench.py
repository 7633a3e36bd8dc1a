"""The benchmark suite runs end to end in its tiniest setting and writes its table and chart.

Each run is ``python -m bench``'s ``main`` in this process, with its processes started through the harness's
zygote (``tests.support.zygote``): the gateways and backends it starts are the same, without each importing the
SDK afresh.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from bench.procs import Processes
from bench.run import main
from tests.support.zygote import ZygotePopen

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def forked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Processes, "popen", ZygotePopen)


def bench(*args: str, timeout: float = 90) -> None:
    """``python -m bench *args``, failing the test if it raises or has not finished within ``timeout`` seconds."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            main(list(args))
        except BaseException as exc:  # re-raised in the test's own thread
            failed.append(exc)

    thread = threading.Thread(target=run, name="bench", daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"python -m bench {' '.join(args)} did not finish within {timeout:g} s"
    if failed:
        raise failed[0]


def test_the_tiny_benchmark_writes_a_table_with_direct_and_gateway_rows_and_a_png_chart(tmp_path: Path) -> None:
    bench("--tiny", "--out", str(tmp_path), "--name", "smoke")
    report = (tmp_path / "smoke.md").read_text()
    for system in ("direct", "gateway"):
        for era in ("2025", "2026"):
            assert f"| {system} | {era} | json | 1 |" in report
            assert f"| {system} | {era} | sse | 2 |" in report
    assert "## Targets" in report
    assert (tmp_path / "smoke.png").read_bytes().startswith(PNG_SIGNATURE)


def test_the_many_backends_scenario_runs_alone(tmp_path: Path) -> None:
    bench("--tiny", "--only", "many", "--no-chart", "--out", str(tmp_path), "--name", "many")
    report = (tmp_path / "many.md").read_text()
    assert "**3 backends x 4 tools**" in report and "| ready with 3 backends" in report
    assert "| gateway | 2025 |" not in report and not (tmp_path / "many.png").exists()


def test_the_metrics_cost_scenario_runs_alone(tmp_path: Path) -> None:
    bench("--tiny", "--only", "metrics", "--no-chart", "--out", str(tmp_path), "--name", "metrics")
    report = (tmp_path / "metrics.md").read_text()
    assert "**Metrics cost**" in report
    assert "2025: gateway/direct" in report and "2026: gateway/direct" in report
    assert "the control, a second gateway without metrics" in report and "gateway CPU per call" in report


def test_the_scale_scenario_runs_alone_with_one_and_two_workers(tmp_path: Path) -> None:
    bench("--tiny", "--only", "scale", "--no-chart", "--out", str(tmp_path), "--name", "scale", timeout=120)
    report = (tmp_path / "scale.md").read_text()
    assert "**Workers**" in report and "| 1 | " in report and "| 2 | " in report
    # None per call: what the store serves meanwhile (heartbeats, leases) comes and goes by a command or two
    # between the window with calls and the one without, which is 0.01 a call over 200 calls; one round trip a call
    # would be 1.00.
    trips = re.search(r"Store round trips per plain 2026 tools/call \(no rate limit\): (\d+\.\d+) over 200", report)
    assert trips is not None and float(trips.group(1)) <= 0.02, report


def test_the_search_scenario_runs_alone_and_reports_its_times(tmp_path: Path) -> None:
    bench("--tiny", "--only", "search", "--no-chart", "--out", str(tmp_path), "--name", "search")
    report = (tmp_path / "search.md").read_text()
    assert "**Tool search** (in-process index, 500 generated tools, 19 queries x 2)" in report
    assert "| tool search over 500 tools (in-process), p95 |" in report
    assert "**Tool search at the gateway** (one backend of 500 generated tools" in report
    assert "| tool search over 500 tools at the gateway (access log), p95 |" in report
