"""What traces cost a gateway: CPU per ``tools/call`` on the 2026 fast path with tracing off and on (100 %
sampling, OTLP/HTTP export to a receiver on loopback that discards what it gets), and optionally the same gateway
from another source tree (``--base``, e.g. a ``git worktree`` of the commit before traces), to check that off
costs nothing. Variants are measured in interleaved rounds, so drift on a shared machine hits them all alike.

    python -m bench.tracing_cost [--base DIR] [--rounds 5] [--duration 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

from bench.loadgen import ERA_2026, Load, run_load
from bench.peers import ECHO_SERVER
from bench.procs import free_port, http_ok, port_open, wait_until
from bench.stack import ROOT


class _Discard(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that reads each export and answers with an empty (valid) response."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def _gateway(config: Path, tree: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    command = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)]
    full = {**os.environ, "PYTHONPATH": str(tree), **env}
    proc = subprocess.Popen([*command, "--log-level", "warning"], cwd=tree, env=full, start_new_session=True)
    return proc, port


def _measure(url: str, pid: int, duration: float, concurrency: int) -> tuple[float, float, float]:
    """CPU microseconds of the gateway per request, requests per second and the median latency (ms), over one
    window."""
    process, marks = psutil.Process(pid), []

    def probe() -> None:
        times = process.cpu_times()
        marks.append(times.user + times.system)

    load = Load(url=url, era=ERA_2026, tool="echo__echo", concurrency=concurrency, duration=duration)
    result = asyncio.run(run_load(load, probe))
    cpu = 1e6 * (marks[1] - marks[0]) / max(result.completed, 1)
    return cpu, result.throughput, 1000 * statistics.median(result.latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base", type=Path, help="another source tree to measure (tracing unknown to it)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("-c", "--concurrency", type=int, default=4)
    args = parser.parse_args()
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Discard)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}"
    echo_port = free_port()
    procs = [subprocess.Popen([sys.executable, str(ECHO_SERVER), "--port", str(echo_port), "--json-response"])]
    variants: dict[str, tuple[Path, dict[str, str]]] = {
        "off": (ROOT, {}),
        "on": (ROOT, {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER": "always_on"}),
    }
    if args.base:
        variants["base"] = (args.base.resolve(), {})
    try:
        wait_until(port_open(echo_port), 30, what="listening")
        with tempfile.TemporaryDirectory() as folder:
            config = Path(folder) / "gateway.json"
            backend = {"name": "echo", "url": f"http://127.0.0.1:{echo_port}/mcp"}
            config.write_text(json.dumps({"backends": [backend], "json_response": True}))
            gateways = {name: _gateway(config, tree, env) for name, (tree, env) in variants.items()}
            procs += [proc for proc, _ in gateways.values()]
            for _, port in gateways.values():
                wait_until(http_ok(f"http://127.0.0.1:{port}/readyz"), 60)
            samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in gateways}
            for round_ in range(args.rounds):
                order = list(gateways)[round_ % len(gateways) :] + list(gateways)[: round_ % len(gateways)]
                for name in order:
                    proc, port = gateways[name]
                    url = f"http://127.0.0.1:{port}/mcp"
                    samples[name].append(_measure(url, proc.pid, args.duration, args.concurrency))
        for name, found in samples.items():
            cpu, rate, p50 = (statistics.median(s[i] for s in found) for i in range(3))
            print(
                f"{name:5} gateway CPU {cpu:6.0f} µs/call  {rate:5.0f} calls/s  p50 {p50:.2f} ms  ({len(found)} rounds)"
            )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        receiver.shutdown()


if __name__ == "__main__":
    main()
