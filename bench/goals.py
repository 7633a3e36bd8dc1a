"""The issue's targets, each checked against one run's results: measured value, goal, met or missed by how much."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.settings import ERAS, MODES

PYTHON_PEERS = ("fastmcp-reuse", "fastmcp-default", "mcp-proxy")


@dataclass(frozen=True)
class Check:
    name: str
    measured: str
    goal: str
    met: bool | None  # None: not measured in this run
    margin: str  # how far from the goal, in the goal's unit

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "not measured"
        return f"met ({self.margin})" if self.met else f"missed by {self.margin}"


def _cell(summary: Sequence[dict[str, Any]], system: str, era: str, mode: str, level: int) -> dict[str, Any] | None:
    for row in summary:
        if (row["system"], row["era"], row["mode"], row["c"]) == (system, era, mode, level) and row["rps"] > 0:
            return row
    return None


def _ratio_check(name: str, value: float | None, goal: float, unit: str = "x") -> Check:
    if value is None:
        return Check(name, "n/a", f">= {goal:g}{unit}", None, "")
    met = value >= goal
    margin = f"{abs(value - goal):.2f}{unit} {'above' if met else ''}".strip()
    return Check(name, f"{value:.2f}{unit}", f">= {goal:g}{unit}", met, margin)


def _max_check(name: str, value: float | None, goal: float, unit: str, fmt: str = ".2f") -> Check:
    if value is None:
        return Check(name, "n/a", f"<= {goal:g} {unit}", None, "")
    met = value <= goal
    margin = f"{abs(goal - value):{fmt}} {unit}" + (" to spare" if met else "")
    return Check(name, f"{value:{fmt}} {unit}", f"<= {goal:g} {unit}", met, margin)


def evaluate(results: dict[str, Any]) -> list[Check]:
    summary = results.get("summary", [])
    levels = sorted({row["c"] for row in summary})
    high = [c for c in levels if c > 1][-2:] if len(levels) > 1 else []
    checks: list[Check] = []
    for era in ERAS:
        for mode in MODES:
            for level in high:
                direct, gateway = (_cell(summary, s, era, mode, level) for s in ("direct", "gateway"))
                ratio = gateway["rps"] / direct["rps"] if direct and gateway else None
                checks.append(_ratio_check(f"throughput {era} {mode} c={level}: gateway / direct", ratio, 0.7))
    for era in ERAS:
        for mode in MODES:
            direct, gateway = (_cell(summary, s, era, mode, 1) for s in ("direct", "gateway"))
            added = gateway["p50"] - direct["p50"] if direct and gateway else None
            checks.append(_max_check(f"added p50 latency {era} {mode} c=1", added, 1.5, "ms"))
    if high:
        top = high[-1]
        for era in ERAS:
            for mode in MODES:
                direct, gateway = (_cell(summary, s, era, mode, top) for s in ("direct", "gateway"))
                ratio = gateway["p99"] / direct["p99"] if direct and gateway and direct["p99"] else None
                checks.append(_max_check(f"p99 {era} {mode} c={top}: gateway / direct", ratio, 2.0, "x"))
    checks += _peer_checks(summary, levels)
    checks += _scenario_checks(results)
    return checks


def _peer_checks(summary: Sequence[dict[str, Any]], levels: Sequence[int]) -> list[Check]:
    checks = []
    for level in levels:
        gateway = _cell(summary, "gateway", "2025", "sse", level)
        peers = [row for p in PYTHON_PEERS if (row := _cell(summary, p, "2025", "peer", level))]
        best = max(peers, key=lambda r: r["rps"], default=None)
        if best is not None:
            ratio = gateway["rps"] / best["rps"] if gateway else None
            checks.append(_ratio_check(f"c={level}: gateway / best Python peer ({best['system']})", ratio, 4.0))
        supergateway = _cell(summary, "supergateway", "2025", "peer", level)
        if supergateway is not None:
            ratio = gateway["rps"] / supergateway["rps"] if gateway else None
            checks.append(_ratio_check(f"c={level}: gateway / supergateway", ratio, 2.0))
    return checks


def _scenario_checks(results: dict[str, Any]) -> list[Check]:
    checks = []
    many = results.get("many")
    if many and "list_error" in many:
        name = f"tools/list, {many['backends']} backends"
        checks.append(Check(name, many["list_error"], "<= 50 ms", False, "no answer"))
    if many and "list_2025" in many:
        eras = (many["list_2025"], many["list_2026"])
        worst = max(era.get("wait_p50_ms", era["p50_ms"]) for era in eras)
        name = (
            f"tools/list, {many['backends']} backends / {many['tools_listed']} tools, every page, p50 (worse era), "
            "at the gateway (the client's own JSON decoding excluded)"
        )
        checks.append(_max_check(name, worst, 50, "ms", ".1f"))
        order = many["deterministic"]
        checks.append(Check("tools/list order deterministic", str(order), "True", order, "same order every call"))
    if many and "connect_max" in many:
        limit = 3.0 + many["connect_max"]
        name = f"ready with {many['backends']} backends (3 s + slowest connect {many['connect_max']:.3f} s)"
        if many["ready_seconds"] is None:
            measured = f"not ready within {many['ready_timeout']:g} s ({many['backends_ready']}/{many['backends']})"
            checks.append(
                Check(name, measured, f"<= {limit:.3f} s", False, f"more than {many['ready_timeout'] - limit:.0f} s")
            )
        else:
            checks.append(_max_check(name, many["ready_seconds"], round(limit, 3), "s", ".3f"))
    idle = results.get("idle")
    if idle:
        checks.append(_max_check(f"{idle['sessions']} idle sessions: extra RSS", idle["cost_mb"], 100, "MB", ".1f"))
    soak = results.get("soak")
    if soak and "slope_mb_per_min" in soak:
        name = f"soak {soak.get('elapsed', 0):.0f} s at {soak['target_rate']:.0f} req/s: RSS slope"
        checks.append(_max_check(name, soak["slope_mb_per_min"], 1.0, "MB/min"))
    found = results.get("search")
    if found and "p95_ms" in found:
        name = f"tool search over {found['tools']} tools (in-process), p95"
        checks.append(_max_check(name, found["p95_ms"], 20, "ms"))
    served = results.get("search_gateway")
    if served and "gateway_p95_ms" in served:
        name = f"tool search over {served['tools']} tools at the gateway (access log), p95"
        checks.append(_max_check(name, served["gateway_p95_ms"], 20, "ms"))
        name = f"tool search over {served['tools']} tools, round trip over loopback, p95"
        checks.append(_max_check(name, served["rtt_p95_ms"], 20, "ms"))
    for row in results.get("big", []):
        if row["system"] != "gateway":
            continue
        checks.append(_ratio_check(f"1 MB results through the gateway ({row['mode']})", row.get("rps"), 50, "/s"))
        back = (row["rss_after"] - row["rss_before"]) / 1024 / 1024
        checks.append(_max_check(f"1 MB results ({row['mode']}): RSS after - before", back, 10, "MB", ".1f"))
    return checks
