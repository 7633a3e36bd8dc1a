"""What the Prometheus metrics cost: the gateway with ``telemetry.metrics.enabled`` on and off, in front of the same
echo backend, each measured against the backend directly.

The machine is shared, so rounds interleave: each round measures direct, metrics on, metrics off and a control (a
second gateway with metrics off) in a rotating order, back to back, and each gateway's rate is taken as a ratio to
the direct rate of its own round, so load that comes and goes affects all alike. Reported per era: the median ratio
with metrics on and off and the change, the same change between the two gateways without metrics (the noise floor:
two identical processes differ by this much in the same run), and each gateway's CPU per call (the steadier number).
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

GATEWAYS = {"metrics-on": True, "metrics-off": False, "control": False}
SYSTEMS = ("direct", *GATEWAYS)


def metrics_cost(procs: Processes, settings: Settings, work: Path, log: Any = print) -> dict[str, Any]:
    """Interleaved rounds at the highest level up to 8 (where the gateway's own CPU shows), per era."""
    backend, backend_port = start_echo(procs, "json", name="echo-metrics")
    wait_listening(backend, backend_port, settings.start_timeout)
    direct_url = url(backend_port)
    gateways = {}
    for system, enabled in GATEWAYS.items():
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
        ratios: dict[str, list[float]] = {system: [] for system in GATEWAYS}
        cpu: dict[str, list[float]] = {system: [] for system in GATEWAYS}
        for round_no in range(rounds):
            shift = round_no % len(SYSTEMS)
            rows = {
                system: measure(targets[system], settings, level) for system in [*SYSTEMS[shift:], *SYSTEMS[:shift]]
            }
            for system in GATEWAYS:
                if rows["direct"]["rps"] > 0:
                    ratios[system].append(rows[system]["rps"] / rows["direct"]["rps"])
                if rows[system]["requests"]:
                    cpu[system].append(rows[system]["cpu"].get("gateway", 0.0) / rows[system]["requests"] * 1e6)
            log(
                f"  metrics {era} round {round_no + 1}: "
                + ", ".join(f"{s} {r['rps']:.0f} req/s" for s, r in rows.items())
            )
        result[era] = _summary(ratios, cpu)
    for system in gateways:
        procs.stop(gateways[system][0])
    procs.stop(backend)
    return result


def _summary(ratios: dict[str, list[float]], cpu: dict[str, list[float]]) -> dict[str, Any]:
    """Medians over rounds, the changes against metrics off, and every round's ratios."""
    ratio = {system: _median(values) for system, values in ratios.items()}
    off = ratio["metrics-off"]
    return {
        "ratio_on": ratio["metrics-on"],
        "ratio_off": off,
        "ratio_control": ratio["control"],
        "change_pct": (ratio["metrics-on"] - off) / off * 100 if off else 0.0,
        "noise_pct": (ratio["control"] - off) / off * 100 if off else 0.0,
        "cpu_on_us": _median(cpu["metrics-on"]),
        "cpu_off_us": _median(cpu["metrics-off"]),
        "cpu_control_us": _median(cpu["control"]),
        "rounds_on": ratios["metrics-on"],
        "rounds_off": ratios["metrics-off"],
        "rounds_control": ratios["control"],
    }


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def render(cost: dict[str, Any]) -> str:
    """The report's line."""
    parts = [
        f"{era}: gateway/direct {cost[era]['ratio_on']:.3f} with metrics, {cost[era]['ratio_off']:.3f} without "
        f"({cost[era]['change_pct']:+.1f} %; the control, a second gateway without metrics: "
        f"{cost[era]['noise_pct']:+.1f} %), gateway CPU per call {cost[era]['cpu_on_us']:.0f} µs "
        f"with metrics, {cost[era]['cpu_off_us']:.0f} µs without, {cost[era]['cpu_control_us']:.0f} µs the control"
        for era in ERAS
        if era in cost
    ]
    return (
        f"**Metrics cost** (JSON mode, c={cost['c']}, {cost['rounds']} interleaved rounds of direct, metrics on, "
        f"metrics off and the control; medians of each round's gateway/direct ratio, and of CPU per call): "
        + "; ".join(parts)
        + "."
    )
