"""The scale scenario: one gateway with 1, 2 and 4 workers (``serve --workers``) in front of the same backend.

Throughput of plain 2026 ``tools/call`` for each worker count, interleaved round by round, with the CPU each call
cost the gateway's processes (the parent and its workers) and the backend; and the shared store's round trips per
call, counted by the Redis server the workers share (its ``total_commands_processed`` over a run of sequential
calls, less the same count over as long a time with no call).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from redis import Redis

from bench.loadgen import ERA_2026, Endpoint, McpClient
from bench.procs import Proc, Processes, StartError, free_port, port_open, wait_until
from bench.scenarios import aggregate, measure
from bench.settings import Settings
from bench.stack import GATEWAY_PREFIX, ROOT, Target, start_echo, url, wait_listening

BANNER = b"mcp-gateway listening on"
STORE_CALLS = 200


def run_scale(procs: Processes, settings: Settings, work: Path, log: Any = print) -> dict[str, Any]:
    """Every worker count at the highest concurrency level, ``rounds`` interleaved rounds; then round trips."""
    store = start_redis(procs, settings)
    echo, echo_port = start_echo(procs, "json", name="echo-scale")
    wait_listening(echo, echo_port, settings.start_timeout)
    config = work / "scale.yaml"
    backend = {"name": "bench", "prefix": GATEWAY_PREFIX, "url": url(echo_port)}
    config.write_text(
        yaml.safe_dump(
            {"backends": [backend], "cluster": {"store": store, "session_keys": ["bench-session-key-" + "0" * 32]}},
            sort_keys=False,
        )
    )
    gateways = {n: start_workers(procs, config, n) for n in settings.scale_workers}
    for n, (proc, _) in gateways.items():
        wait_until(lambda p=proc, n=n: p.log.read_bytes().count(BANNER) >= n, settings.start_timeout, proc, "serving")
    targets = {
        n: Target(f"gateway-w{n}", ERA_2026, "json", url(port), f"{GATEWAY_PREFIX}/echo", [proc, echo])
        for n, (proc, port) in gateways.items()
    }
    level = max(settings.levels)
    rows = []
    for round_no in range(settings.rounds):
        for n, target in targets.items():
            row = measure(target, settings, level)
            row.update(round=round_no, workers=n)
            rows.append(row)
            log(f"  {n} worker(s)  round {round_no + 1}  {row['rps']:8.1f} req/s")
    summary = aggregate(rows)
    workers = {target.key: n for n, target in targets.items()}
    for entry in summary:
        entry["workers"] = workers[entry["key"]]
    first = targets[min(targets)]
    return {"level": level, "rows": rows, "summary": summary, "store_round_trips": store_round_trips(store, first)}


def start_redis(procs: Processes, settings: Settings) -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise StartError("redis-server is not installed (make redis-server installs Debian's package)")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = procs.start("redis-scale", command, role="store")
    wait_until(port_open(port), settings.start_timeout, proc, "listening")
    return f"redis://127.0.0.1:{port}/0"


def start_workers(procs: Processes, config: Path, workers: int) -> tuple[Proc, int]:
    """``mcp-gateway serve --workers N``; the caller waits for every worker's banner so the starts overlap."""
    port = free_port()
    command = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)]
    command += ["--log-level", "warning", "--workers", str(workers)]
    return procs.start(f"gateway-w{workers}", command, role="gateway", cwd=ROOT), port


def store_round_trips(store: str, target: Target) -> dict[str, Any]:
    """Commands the store served per sequential 2026 tools/call, net of what it serves meanwhile without calls."""
    redis = Redis.from_url(store, socket_timeout=5)
    try:
        before = _served(redis)
        started = time.perf_counter()
        asyncio.run(_calls(target, STORE_CALLS))
        elapsed = time.perf_counter() - started
        during = _served(redis) - before - 1
        before = _served(redis)
        time.sleep(elapsed)
        idle = _served(redis) - before - 1
    finally:
        redis.close()
    return {"calls": STORE_CALLS, "per_call": max(during - idle, 0) / STORE_CALLS, "idle_commands": idle}


def _served(redis: Redis) -> int:
    """Commands the server has processed: the INFO that asks is counted by the next one, hence the 1 taken off."""
    return int(redis.info("stats")["total_commands_processed"])


async def _calls(target: Target, count: int) -> None:
    client = McpClient(Endpoint.parse(target.url), target.era)
    try:
        for _ in range(count):
            await client.call_tool(target.tool, {"text": "hello"})
    finally:
        await client.close()
