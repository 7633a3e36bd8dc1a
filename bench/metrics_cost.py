"""What the Prometheus metrics cost: the gateway with ``telemetry.metrics.enabled`` on and off, in front of the same
echo backend, each measured against the backend directly.

The machine is shared, so rounds interleave: each round measures direct, metrics on and metrics off in a rotating
order, back to back, and each gateway's rate is taken as a ratio to the direct rate of its own round, so load that
comes and goes affects both alike. Reported per era: the median ratio with metrics on and off, and the change.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.procs import Processes
from bench.scenarios import measure
from bench.settings import ERAS, Settings
from bench.stack import (
    GATEWAY_PREFIX,
    Target,
    start_echo,
    start_gateway,
    url,
    wait_listening,
    wait_ready,
    write_gateway_config,
)

SYSTEMS = ("direct", "metrics-on", "metrics-off")


def metrics_cost(procs: Processes, settings: Settings, work: Path, log: Any = print) -> dict[str, Any]:
    """Interleaved rounds at the highest level up to 8 (where the gateway's own CPU shows), per era."""
    backend, backend_port = start_echo(procs, "json", name="echo-metrics")
    wait_listening(backend, backend_port, settings.start_timeout)
    direct_url = url(backend_port)
    gateways = {}
    for system, enabled in (("metrics-on", True), ("metrics-off", False)):
        telemetry = {"telemetry": {"metrics": {"enabled": enabled}}}
        config = write_gateway_config(
            work / f"{system}.yaml", [("bench", GATEWAY_PREFIX, direct_url)], settings.link, telemetry
        )
        gateways[system] = start_gateway(procs, f"gateway-{system}", config, json_response=True)
    for proc, port in gateways.values():
        wait_ready(proc, port, settings.start_timeout)
    level = max([c for c in settings.levels if c <= 8], default=min(settings.levels))
    rounds = max(settings.rounds, 3)
    result: dict[str, Any] = {"c": level, "rounds": rounds}
    for era in ERAS:
        targets = {"direct": Target("direct", era, "json", direct_url, "echo", [backend])}
        for system, (proc, port) in gateways.items():
            targets[system] = Target(system, era, "json", url(port), f"{GATEWAY_PREFIX}/echo", [proc, backend])
        ratios: dict[str, list[float]] = {"metrics-on": [], "metrics-off": []}
        for round_no in range(rounds):
            order = [*SYSTEMS[round_no % 3 :], *SYSTEMS[: round_no % 3]]
            rps = {system: measure(targets[system], settings, level)["rps"] for system in order}
            for system in ratios:
                if rps["direct"] > 0:
                    ratios[system].append(rps[system] / rps["direct"])
            log(f"  metrics {era} round {round_no + 1}: " + ", ".join(f"{s} {rps[s]:.0f} req/s" for s in order))
        on, off = (statistics.median(ratios[s]) if ratios[s] else 0.0 for s in ("metrics-on", "metrics-off"))
        change = (on - off) / off * 100 if off else 0.0
        result[era] = {"ratio_on": on, "ratio_off": off, "change_pct": change, "rounds_on": ratios["metrics-on"]}
        result[era]["rounds_off"] = ratios["metrics-off"]
    for system in gateways:
        procs.stop(gateways[system][0])
    procs.stop(backend)
    return result


def render(cost: dict[str, Any]) -> str:
    """The report's line."""
    parts = [
        f"{era}: gateway/direct {cost[era]['ratio_on']:.3f} with metrics, {cost[era]['ratio_off']:.3f} without "
        f"({cost[era]['change_pct']:+.1f} %)"
        for era in ERAS
        if era in cost
    ]
    return (
        f"**Metrics cost** (JSON mode, c={cost['c']}, {cost['rounds']} interleaved rounds of direct, metrics on and "
        f"metrics off; medians of each round's gateway/direct ratio): " + "; ".join(parts) + "."
    )
