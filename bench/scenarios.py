"""The scenarios: tools/call throughput and latency, 1 MB results, a soak, idle sessions, and 100 backends.

Each returns plain data (dicts and lists of numbers) for ``report`` and ``goals``. Times are seconds and
memory bytes unless a key says otherwise (``_ms``, ``_mb``).
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.loadgen import ERA_2025, ERA_2026, Endpoint, Load, McpClient, RpcError, percentile, run_load
from bench.many import backend_path
from bench.procs import Proc, Processes, StartError, free_port, port_open, sampling_rss, wait_quiet, wait_until
from bench.settings import ERAS, Settings
from bench.stack import GATEWAY_PREFIX, ROOT, Target, start_gateway, url, wait_ready, write_gateway_config

MB = 1024 * 1024


def measure(
    target: Target,
    settings: Settings,
    concurrency: int,
    *,
    tool: str | None = None,
    arguments: dict[str, Any] | None = None,
    duration: float | None = None,
    rate: float | None = None,
    max_requests: int | None = None,
) -> dict[str, Any]:
    """One measured window against one target, with the CPU each process spent in it."""
    load = Load(
        url=target.url,
        era=target.era,
        tool=tool or target.tool,
        arguments=arguments if arguments is not None else {"text": "hello"},
        concurrency=concurrency,
        duration=duration if duration is not None else settings.duration,
        max_requests=max_requests or settings.max_requests,
        warmup=settings.warmup,
        timeout=settings.timeout,
        rate=rate,
    )
    row: dict[str, Any] = {"key": target.key, "system": target.system, "era": target.era, "mode": target.mode}
    row["c"] = concurrency
    row["busy_before"] = wait_quiet(limit=settings.quiet_wait) if settings.quiet_wait > 0 else 0.0
    try:
        result = asyncio.run(run_load(load, probe=target.cpu))
    except (RpcError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        return {**row, "requests": 0, "errors": 1, "rps": 0.0, "failed": f"{type(exc).__name__}: {exc}"[:300]}
    before, after = result.probes
    cpu = {role: after.get(role, 0.0) - before.get(role, 0.0) for role in after}
    cpu["loadgen"] = result.loadgen_cpu
    ms = [v * 1000 for v in result.latencies]
    return {
        **row,
        "requests": result.completed,
        "errors": result.errors,
        "elapsed": result.elapsed,
        "rps": result.throughput,
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "max": max(ms, default=0.0),
        "cpu": cpu,
        "error_samples": result.error_samples,
    }


def tool_calls(targets: Sequence[Target], settings: Settings, log: Any = print) -> list[dict[str, Any]]:
    """Every target at every concurrency level, interleaved: round r visits all targets before round r+1."""
    rows = []
    for level in settings.levels:
        for round_no in range(settings.rounds):
            shift = round_no % len(targets)
            for target in [*targets[shift:], *targets[:shift]]:
                row = measure(target, settings, level)
                row["round"] = round_no
                rows.append(row)
                log(f"  c={level:<3} round {round_no + 1}  {target.key:<28} {row['rps']:8.1f} req/s")
    return rows


def aggregate(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per target and level: medians over rounds of rate and percentiles; CPU per request over all rounds."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["key"], row["c"]), []).append(row)
    out = []
    for (_key, level), group in groups.items():
        ok = [r for r in group if "failed" not in r]
        first = group[0]
        requests = sum(r["requests"] for r in ok)
        cpu: dict[str, float] = {}
        for r in ok:
            for role, seconds in r["cpu"].items():
                cpu[role] = cpu.get(role, 0.0) + seconds
        entry: dict[str, Any] = {k: first[k] for k in ("key", "system", "era", "mode")}
        entry.update(c=level, rounds=len(group), requests=requests, errors=sum(r["errors"] for r in group))
        if ok:
            for stat in ("rps", "p50", "p90", "p99", "max"):
                entry[stat] = statistics.median(r[stat] for r in ok)
            entry["cpu_ms"] = {role: 1000 * s / requests for role, s in cpu.items()} if requests else {}
        else:
            entry.update(rps=0.0, p50=0.0, p90=0.0, p99=0.0, max=0.0, cpu_ms={})
        failures = [r["failed"] for r in group if "failed" in r] + [s for r in ok for s in r["error_samples"]]
        if failures:
            entry["failures"] = failures[:3]
        out.append(entry)
    return out


def big_payloads(targets: Sequence[Target], settings: Settings, procs: dict[str, Proc]) -> list[dict[str, Any]]:
    """1 MB tool results through each target; memory of the process in front before, at peak and after."""
    out = []
    for target in targets:
        front = procs[target.key]
        time.sleep(settings.settle)
        baseline = front.rss()
        with sampling_rss(front) as samples:
            row = measure(
                target,
                settings,
                settings.big_concurrency,
                tool=_tool(target, "big"),
                arguments={},
                duration=settings.big_duration,
            )
        time.sleep(settings.settle)
        after = front.rss()
        row.update(process=front.name, rss_before=baseline, rss_peak=max(samples, default=after), rss_after=after)
        out.append(row)
    return out


def soak(target: Target, settings: Settings, front: Proc, rate: float) -> dict[str, Any]:
    """A paced load at ``rate`` for the soak duration; the front process's RSS is sampled once a second."""
    with sampling_rss(front, interval=1.0) as samples:
        cap = max(settings.max_requests, int(rate * settings.soak_duration * 2))
        row = measure(
            target, settings, settings.soak_concurrency, duration=settings.soak_duration, rate=rate, max_requests=cap
        )
    series = [s / MB for s in samples if s]
    kept = series[len(series) // 5 :] if len(series) >= 5 else series  # the first fifth is warm-up
    row.update(target_rate=rate, rss_mb=series, slope_mb_per_min=_slope(kept) * 60, process=front.name)
    if len(kept) >= 4:
        quarter = len(kept) // 4
        row["growth_mb"] = statistics.median(kept[-quarter:]) - statistics.median(kept[:quarter])
    else:
        row["growth_mb"] = (kept[-1] - kept[0]) if len(kept) >= 2 else 0.0
    return row


def _slope(values: Sequence[float], step: float = 1.0) -> float:
    """Least-squares slope per ``step`` (units per second when sampled once a second)."""
    n = len(values)
    if n < 2:
        return 0.0
    xs = [i * step for i in range(n)]
    mx, my = sum(xs) / n, sum(values) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, values, strict=True)) / den if den else 0.0


def idle_sessions(procs: Processes, settings: Settings, gateway: tuple[Proc, int]) -> dict[str, Any]:
    """A fresh gateway's RSS before and after ``idle_sessions`` 2025 sessions are opened and left idle.

    The gateway was started (not yet used) by the caller, so its start overlaps others.
    """
    proc, port = gateway
    try:
        wait_ready(proc, port, settings.start_timeout)
        endpoint = Endpoint.parse(url(port))
        asyncio.run(_warm(endpoint))
        time.sleep(settings.settle)
        baseline = proc.rss()
        started = time.perf_counter()
        alive = asyncio.run(_open_idle(endpoint, settings.idle_sessions, settings.timeout))
        opened = time.perf_counter() - started
        time.sleep(settings.settle)
        loaded = proc.rss()
        return {
            "sessions": settings.idle_sessions,
            "rss_before": baseline,
            "rss_after": loaded,
            "cost_mb": (loaded - baseline) / MB,
            "per_session_kb": (loaded - baseline) / 1024 / max(settings.idle_sessions, 1),
            "open_seconds": opened,
            "still_alive": alive,
        }
    finally:
        procs.stop(proc)


async def _warm(endpoint: Endpoint) -> None:
    client = McpClient(endpoint, ERA_2025)
    try:
        await client.open()
        await client.call_tool(f"{GATEWAY_PREFIX}/echo", {"text": "warm"})
    finally:
        await client.close()


async def _open_idle(endpoint: Endpoint, count: int, limit: float) -> str:
    """Open ``count`` sessions (32 handshakes at a time), drop their connections, then prove some still answer."""
    clients = [McpClient(endpoint, ERA_2025) for _ in range(count)]
    gate = asyncio.Semaphore(32)

    async def handshake(client: McpClient) -> None:
        async with gate:
            await asyncio.wait_for(client.open(), limit)
            await client.connection.close()

    await asyncio.gather(*(handshake(c) for c in clients))
    sample = clients[:: max(1, count // 10)]
    answered = 0
    for client in sample:
        try:
            await asyncio.wait_for(client.call_tool(f"{GATEWAY_PREFIX}/echo", {"text": "still there?"}), limit)
            answered += 1
        except (RpcError, OSError, TimeoutError):
            pass
        finally:
            await client.connection.close()
    return f"{answered}/{len(sample)}"


def start_many(procs: Processes, settings: Settings) -> list[tuple[Proc, int, range]]:
    """Start the processes serving the many small backends (``many_procs`` of them); nobody waits here."""
    n, per_proc = settings.many_backends, math.ceil(settings.many_backends / settings.many_procs)
    started = []
    for first in range(0, n, per_proc):
        count = min(per_proc, n - first)
        port = free_port()
        command = [sys.executable, "-m", "bench.many", "--port", str(port), "--first", str(first)]
        command += ["--count", str(count), "--tools", str(settings.many_tools)]
        proc = procs.start(f"many-{first}", command, role="backend", cwd=ROOT)
        started.append((proc, port, range(first, first + count)))
    return started


def many_backends(
    procs: Processes, settings: Settings, workdir: Path, servers: Sequence[tuple[Proc, int, range]]
) -> dict[str, Any]:
    """``many_backends`` backends with ``many_tools`` tools each behind one gateway: start time and tools/list."""
    n = settings.many_backends
    started: list[Proc] = [proc for proc, _, _ in servers]
    backends: list[tuple[str, str, str]] = []
    try:
        for proc, port, indices in servers:
            backends += [(f"b{i:03d}", f"b{i:03d}", url(port, backend_path(i))) for i in indices]
            wait_until(port_open(port), settings.start_timeout, proc, "listening")
        connects = asyncio.run(_connect_times([u for _, _, u in backends], settings.timeout))
        config = write_gateway_config(workdir / "many.yaml", backends, settings.link)
        gateway, port = start_gateway(procs, "gateway-many", config, json_response=False)
        started.append(gateway)
        ready: float | None = None
        try:
            ready = wait_ready(gateway, port, settings.many_ready_timeout)
        except StartError:
            if not gateway.alive():
                raise
        backends_ready = _count_ready(url(port, "/readyz"))
        try:
            listing = asyncio.run(_list_tools(Endpoint.parse(url(port)), settings.list_reps, settings.timeout))
        except (RpcError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            listing = {"list_error": f"{type(exc).__name__}: {exc} (limit {settings.timeout:g} s a call)"[:300]}
        return {
            "backends": n,
            "backends_ready": backends_ready,
            "ready_timeout": settings.many_ready_timeout,
            "tools_per_backend": settings.many_tools,
            "processes": len(started) - 1,
            "ready_seconds": ready,
            "connect_max": max(connects),
            "connect_median": statistics.median(connects),
            "gateway_rss": gateway.rss(),
            **listing,
        }
    finally:
        for proc in reversed(started):
            procs.stop(proc)


def _count_ready(readyz: str) -> int:
    """How many backends ``/readyz`` reports ready (it answers 503 with the same body while some are not)."""
    try:
        with urllib.request.urlopen(readyz, timeout=5.0) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except OSError:
        return 0
    status = json.loads(body)
    return sum(1 for b in status.get("backends", []) if b.get("state") == "ready")


async def _connect_times(urls: Sequence[str], limit: float) -> list[float]:
    """Each backend alone: a fresh 2026 client's ``server/discover`` and ``tools/list``, one backend at a time."""
    times = []
    for backend in urls:
        client = McpClient(Endpoint.parse(backend), ERA_2026)
        started = time.perf_counter()
        try:
            await asyncio.wait_for(client.call("server/discover", {}), limit)
            await asyncio.wait_for(client.call("tools/list", {}), limit)
        finally:
            await client.close()
        times.append(time.perf_counter() - started)
    return times


async def _list_tools(endpoint: Endpoint, reps: int, limit: float) -> dict[str, Any]:
    """tools/list at the gateway in both eras, ``reps`` times each on one warm client; pages followed.

    Two times per walk: the whole walk as the client sees it, and the part spent waiting for answers (the walk
    without the client's own decoding of the ~2 MB of JSON, which on a busy machine is most of the walk).
    """
    result: dict[str, Any] = {}
    listings: list[list[str]] = []
    for era in ERAS:
        client = McpClient(endpoint, era)
        times, waits = [], []
        try:
            await asyncio.wait_for(client.open(), limit)
            for _ in range(reps + 1):
                started = time.perf_counter()
                waited = 0.0
                names: list[str] = []
                cursor: str | None = None
                while True:
                    params = {"cursor": cursor} if cursor else {}
                    page, wait = await asyncio.wait_for(client.call_timed("tools/list", params), limit)
                    waited += wait
                    names += [t["name"] for t in page.get("tools", [])]
                    cursor = page.get("nextCursor")
                    if not cursor:
                        break
                times.append(time.perf_counter() - started)
                waits.append(waited)
                listings.append(names)
        finally:
            await client.close()
        ms = [t * 1000 for t in times[1:]]  # the first call warms caches
        wait_ms = [t * 1000 for t in waits[1:]]
        result[f"list_{era}"] = {
            "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99),
            "max_ms": max(ms),
            "wait_p50_ms": percentile(wait_ms, 50),
            "wait_p99_ms": percentile(wait_ms, 99),
        }
    result["tools_listed"] = len(listings[0]) if listings else 0
    result["deterministic"] = all(names == listings[0] for names in listings)
    result["sorted"] = bool(listings) and listings[0] == sorted(listings[0])
    return result


def _tool(target: Target, name: str) -> str:
    return f"{GATEWAY_PREFIX}/{name}" if target.system == "gateway" else name
