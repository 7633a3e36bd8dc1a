"""Tool search through the gateway, end to end: a backend with the generated catalogue (``bench.catalogue_server``,
``settings.search_tools`` tools), the gateway in front of it with ``search`` enabled, and one 2026 client calling
``search_tools`` over loopback with the queries of ``bench.search`` (each ``settings.search_reps`` times).

Reported:
- the gateway's own time per search: the ``duration_ms`` of the call's access line (``--log-format json``), which
  the guard times from the call's admission to its result (policy, rate limit, the search, audit), HTTP and JSON
  aside;
- the round trip of each search at the client, and of a ``describe_tool`` call sent after each: the same path
  through the gateway (HTTP, the fast path, the guard, the index) without the search, so the difference is the
  search's own;
- the first search after start, which builds the index;
- the first search after a catalogue change (the backend adds a tool and says so; the gateway relists it), which
  rebuilds the index in a worker thread, and what a client sees meanwhile: how many searches were still answered
  from the old index, and the round trips of calls to a backend's tool, sent every few milliseconds on a
  connection of their own while the rebuild ran (the event loop keeps serving them).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.loadgen import ERA_2026, Endpoint, McpClient, percentile
from bench.procs import Proc, Processes, free_port
from bench.search import QUERIES, generated_tools
from bench.settings import Settings
from bench.stack import ROOT, start_gateway, url, wait_listening, wait_ready, write_gateway_config

TOOL = "search_tools"
PREFIX = "cat"
ADDED = "zebra_quagga_lookup"  # words no generated tool has
PROBE_EVERY = 0.005


def gateway_search(procs: Processes, settings: Settings, work: Path, log: Any = print) -> dict[str, Any]:
    port = free_port()
    command = [sys.executable, "-m", "bench.catalogue_server", "--port", str(port)]
    backend = procs.start("catalogue", [*command, "--tools", str(settings.search_tools)], role="backend", cwd=ROOT)
    wait_listening(backend, port, settings.start_timeout)
    # A 2025 link, so that the backend's list_changed reaches the gateway on the session's stream.
    search = {"search": {"enabled": True}}
    config = write_gateway_config(work / "search.yaml", [("catalogue", PREFIX, url(port))], "legacy", search)
    gateway, gateway_port = start_gateway(procs, "gateway-search", config, json_response=True, json_logs=True)
    wait_ready(gateway, gateway_port, settings.start_timeout)
    measured = asyncio.run(_measure(url(gateway_port), settings))
    procs.stop(gateway)  # its log is complete once it has stopped
    durations = _search_durations(gateway)
    searches = len(measured["round_trips"])
    if len(durations) != 1 + searches + measured["change_searches"]:
        raise RuntimeError(f"{len(durations)} access lines for {1 + searches} searches and the change's")
    own, rtt, describes = durations[1 : 1 + searches], measured["round_trips"], measured["describes"]
    result = {
        "tools": settings.search_tools,
        "queries": len(QUERIES),
        "searches": searches,
        "gateway_p50_ms": statistics.median(own),
        "gateway_p95_ms": percentile(own, 95),
        "gateway_max_ms": max(own),
        "rtt_p50_ms": statistics.median(rtt),
        "rtt_p95_ms": percentile(rtt, 95),
        "describe_p50_ms": statistics.median(describes),
        "describe_p95_ms": percentile(describes, 95),
        "first_ms": measured["first_ms"],
        "first_gateway_ms": durations[0],
        "rebuild_ms": measured["rebuild_ms"],
        "rebuild_gateway_ms": durations[-1],
        "stale_searches": measured["change_searches"] - 1,
        "probes_during_rebuild": measured["probes_during_rebuild"],
        "probe_max_during_rebuild_ms": measured["probe_max_during_rebuild_ms"],
        "probe_max_before_rebuild_ms": measured["probe_max_before_rebuild_ms"],
        "relist_ms": measured["relist_ms"],
    }
    log(f"  search at the gateway: p95 {result['gateway_p95_ms']:.2f} ms, round trip p95 {result['rtt_p95_ms']:.2f} ms")
    return result


async def _measure(gateway_url: str, settings: Settings) -> dict[str, Any]:
    client = McpClient(Endpoint.parse(gateway_url), ERA_2026)
    prober = McpClient(Endpoint.parse(gateway_url), ERA_2026)
    # The 2026 client gets strict names: the backend's first tool as it is listed to it.
    known = f"{PREFIX}__{generated_tools(1, separator='_')[0].name}"
    try:
        first, _ = await _search(client, "open incidents", settings.timeout)
        round_trips, describes = [], []
        for _ in range(settings.search_reps):
            for query in QUERIES:
                round_trips.append((await _search(client, query, settings.timeout))[0])
                describes.append(await _call(client, "describe_tool", {"name": known}, settings.timeout))
        change = await _after_change(client, prober, known, settings.timeout)
    finally:
        await client.close()
        await prober.close()
    return {"first_ms": first, "round_trips": round_trips, "describes": describes, **change}


async def _call(client: McpClient, tool: str, arguments: dict[str, Any], limit: float) -> float:
    """One successful call's round trip in ms."""
    started = time.perf_counter()
    await asyncio.wait_for(client.call_tool(tool, arguments), limit)
    return (time.perf_counter() - started) * 1000


async def _search(client: McpClient, query: str, limit: float) -> tuple[float, list[Any]]:
    """One search: its round trip in ms, and its hits."""
    started = time.perf_counter()
    arguments = {"query": query}
    result = await asyncio.wait_for(client.call("tools/call", {"name": TOOL, "arguments": arguments}, TOOL), limit)
    elapsed = (time.perf_counter() - started) * 1000
    if result.get("isError"):
        raise RuntimeError(f"search {query[:40]!r} failed: {str(result.get('content'))[:200]}")
    return elapsed, list(result["structuredContent"]["tools"])


async def _after_change(client: McpClient, prober: McpClient, known: str, limit: float) -> dict[str, Any]:
    """Add a tool at the backend, then search for it until found (the search that rebuilt the index), calling a
    backend's tool all the while on a connection of its own."""
    probes: list[tuple[float, float]] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            sent = time.perf_counter()
            await asyncio.wait_for(prober.call_tool(known, {}), limit)
            probes.append((sent, time.perf_counter() - sent))
            await asyncio.sleep(PROBE_EVERY)

    probing = asyncio.create_task(probe())
    changed = time.perf_counter()
    await asyncio.wait_for(client.call_tool(f"{PREFIX}__grow", {"name": ADDED}), limit)
    searches, deadline = 0, time.perf_counter() + limit
    started, elapsed = time.perf_counter(), 0.0
    try:
        while True:
            started = time.perf_counter()
            elapsed, hits = await _search(client, ADDED.replace("_", " "), limit)
            searches += 1
            if hits:
                break
            if time.perf_counter() > deadline:
                raise TimeoutError(f"the added tool was not found within {limit:g} s")
            await asyncio.sleep(0.01)
    finally:
        done.set()
        await probing
    ended = started + elapsed / 1000
    during = [rtt for sent, rtt in probes if started <= sent < ended]
    before = [rtt for sent, rtt in probes if changed <= sent < started]
    return {
        "change_searches": searches,
        "rebuild_ms": elapsed,
        "probes_during_rebuild": len(during),
        "probe_max_during_rebuild_ms": max(during, default=0.0) * 1000,
        "probe_max_before_rebuild_ms": max(before, default=0.0) * 1000,
        "relist_ms": (started - changed) * 1000,
    }


def _search_durations(gateway: Proc) -> list[float]:
    """The gateway's own time of each ``search_tools`` call, in order, from its access lines."""
    found = []
    for line in gateway.log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("logger") == "gateway.access" and entry.get("name") == TOOL:
            found.append(float(entry["duration_ms"]))
    return found


def render(cost: dict[str, Any]) -> str:
    """The report's line."""
    return (
        f"**Tool search at the gateway** (one backend of {cost['tools']} generated tools, a 2026 client over "
        f"loopback, {cost['queries']} queries x {cost['searches'] // cost['queries']}): the gateway's own time per "
        f"search (access log) p50 {cost['gateway_p50_ms']:.2f} ms, p95 {cost['gateway_p95_ms']:.2f} ms, max "
        f"{cost['gateway_max_ms']:.2f} ms; round trip p50 {cost['rtt_p50_ms']:.2f} ms, p95 {cost['rtt_p95_ms']:.2f} "
        f"ms (a describe_tool's, the same path without the search: p50 {cost['describe_p50_ms']:.2f} ms, p95 "
        f"{cost['describe_p95_ms']:.2f} ms). First search after "
        f"start (builds the index): {cost['first_ms']:.0f} ms round trip, {cost['first_gateway_ms']:.0f} ms at the "
        f"gateway. First search after a catalogue change (rebuilds it): {cost['rebuild_ms']:.0f} ms round trip, "
        f"{cost['rebuild_gateway_ms']:.0f} ms at the gateway; before it, for {cost['relist_ms']:.0f} ms while the "
        f"gateway relisted, {cost['stale_searches']} search(es) answered from the old index. Calls of a backend's "
        f"tool on another connection meanwhile: the slowest {cost['probe_max_before_rebuild_ms']:.0f} ms while "
        f"the gateway relisted, {cost['probe_max_during_rebuild_ms']:.0f} ms during the rebuild "
        f"({cost['probes_during_rebuild']} sent then)."
    )
