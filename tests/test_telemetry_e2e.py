"""Metrics and logs of a real ``mcp-gateway serve``: a real Prometheus server scrapes ``/metrics`` and reads a call's
series back, ``--log-format json`` makes every stderr line a JSON object with one access line per call, and the
default (human) format writes what it always wrote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from mcp import Client, MCPError, types

from tests.support.inproc import READER_INFO
from tests.support.procs import ROOT, Processes, free_port, http_get, listening, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.processes]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@dataclass
class Served:
    url: str
    base: str
    stderr: Path
    proc: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def procs() -> Iterator[Processes]:
    started = Processes()
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture(scope="module")
def toy(procs: Processes) -> str:
    port = free_port()
    procs.start("-m", "tests.support.toy_server", "--port", str(port))
    wait_until(lambda: listening(port), what="the toy backend")
    return f"http://127.0.0.1:{port}/mcp"


def serve(procs: Processes, root: Path, toy: str, *flags: str) -> Served:
    root.mkdir(exist_ok=True)
    config = root / "gateway.yaml"
    config.write_text(yaml.safe_dump({"backends": [{"name": "toy", "url": toy}]}))
    port, stderr = free_port(), root / "stderr.log"
    with stderr.open("wb") as log:
        proc = procs.start("-m", "gateway", "serve", "--config", str(config), "--port", str(port), *flags, stderr=log)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: listening(port) and http_get(f"{base}/readyz")[0] == 200, what="the gateway")
    return Served(f"{base}/mcp", base, stderr, proc)


async def calls(url: str) -> None:
    """One call of each era that succeeds, and one unknown tool."""
    for mode in ("legacy", "2026-07-28"):
        async with Client(url, mode=mode, client_info=READER_INFO) as client:
            await client.call_tool("toy/echo", {"text": "hello"})
    async with Client(url, mode="2026-07-28", client_info=READER_INFO) as client:
        with pytest.raises(MCPError):
            await client.call_tool("toy/no-such-tool", {})


def lines(served: Served, procs: Processes) -> list[str]:
    assert procs.stop(served.proc) == 0
    return served.stderr.read_text().splitlines()


async def test_json_logs_are_json_lines_with_one_access_line_per_request(
    procs: Processes, toy: str, tmp_path: Path
) -> None:
    served = serve(procs, tmp_path / "json", toy, "--log-format", "json")
    await calls(served.url)
    written = lines(served, procs)
    parsed = [json.loads(line) for line in written]  # every line, the banner and uvicorn's included
    assert any(line["message"].startswith("mcp-gateway listening on") for line in parsed)
    every = [line for line in parsed if line["logger"] == "gateway.access"]
    access = [line for line in every if line["method"] == "tools/call"]
    # Every request has its line: the handshake and whatever else the clients asked, not the calls alone.
    assert ("initialize", "2025", "ok") in {(a["method"], a["era"], a["outcome"]) for a in every}
    assert [(a["method"], a["name"], a["era"], a["outcome"]) for a in access] == [
        ("tools/call", "toy/echo", "2025", "ok"),
        ("tools/call", "toy/echo", "2026", "ok"),
        ("tools/call", "toy/no-such-tool", "2026", "unknown"),
    ]
    for entry in access:
        assert {"time", "level", "principal", "backend", "duration_ms", "trace_id", "session"} <= entry.keys()
        assert entry["principal"] == "anonymous:anonymous"
    assert access[0]["backend"] == "toy" and access[2]["backend"] is None
    assert access[0]["session"].startswith("s-") and access[1]["session"] is None


async def test_an_access_line_carries_the_trace_id_of_the_requests_traceparent(
    procs: Processes, toy: str, tmp_path: Path
) -> None:
    served = serve(procs, tmp_path / "trace", toy, "--log-format", "json")
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "toy/echo",
        "traceparent": TRACEPARENT,
    }
    meta = {
        types.PROTOCOL_VERSION_META_KEY: "2026-07-28",
        types.CLIENT_CAPABILITIES_META_KEY: {},
        types.CLIENT_INFO_META_KEY: {"name": "probe", "version": "1"},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "toy/echo", "arguments": {"text": "x"}, "_meta": meta}}  # fmt: skip
    request = urllib.request.Request(served.url, json.dumps(body).encode(), headers, method="POST")
    answer = await anyio.to_thread.run_sync(lambda: urllib.request.urlopen(request, timeout=10).read())
    assert "result" in json.loads(answer)
    access = [json.loads(line) for line in lines(served, procs) if '"gateway.access"' in line]
    assert [a["trace_id"] for a in access] == [TRACE]


async def test_the_human_format_is_unchanged_by_default(procs: Processes, toy: str, tmp_path: Path) -> None:
    served = serve(procs, tmp_path / "human", toy)
    await calls(served.url)
    written = lines(served, procs)
    assert any(line.startswith("mcp-gateway listening on http://") for line in written)
    assert not [line for line in written if line.startswith("{")]
    assert not [line for line in written if "gateway.access" in line]


def query(prometheus: str, expression: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            answer = json.loads(response.read())
    except OSError:
        return []
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


async def test_a_real_prometheus_scrapes_the_calls_series(procs: Processes, toy: str, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    assert binary is not None, "prometheus is not installed: `make prometheus` installs Debian's package"
    served = serve(procs, tmp_path / "scraped", toy)
    await calls(served.url)
    port = free_port()
    target = served.base.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {"job_name": "gateway", "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    procs.start_program(
        binary,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    prometheus = f"http://127.0.0.1:{port}"
    ok = 'mcp_gateway_requests_total{job="gateway",name="toy/echo",outcome="ok"}'
    found = wait_until(lambda: query(prometheus, f"sum({ok})"), timeout=60, what="prometheus to scrape the gateway")
    assert float(found[0]["value"][1]) == 2
    unknown = query(prometheus, 'mcp_gateway_requests_total{name="(unknown)",outcome="unknown"}')
    assert [float(series["value"][1]) for series in unknown] == [1]
    state = wait_until(lambda: query(prometheus, 'mcp_gateway_backend_state{backend="toy",state="ready"}'))
    assert float(state[0]["value"][1]) == 1


RECORD_ONE_CALL = """
from prometheus_client import CollectorRegistry
from gateway.telemetry import metrics
assert metrics.MULTIPROCESS
metrics.call("tools/call", "toy", "toy/echo", "2026", "ok", "", 0.01)
print(metrics.render(CollectorRegistry())[0].decode())
"""


def test_in_multiprocess_mode_a_scrape_sums_what_every_process_recorded(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    series = (
        'mcp_gateway_requests_total{backend="toy",code="",era="2026",method="tools/call",name="toy/echo",outcome="ok"}'
    )
    scraped = []
    for _ in range(2):  # two workers, each recording one call; the second one's scrape sees both
        done = subprocess.run(
            [sys.executable, "-c", RECORD_ONE_CALL], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        scraped.append(next(line for line in done.stdout.splitlines() if line.startswith(series)))
    assert scraped == [f"{series} 1.0", f"{series} 2.0"]
