"""Writes one run's results: ``<date>.md`` (tables and targets), ``<date>.png`` (chart) and ``<date>.json``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import metrics_cost, search, search_gateway
from bench.goals import evaluate
from bench.settings import ERAS, MODES

MB = 1024 * 1024
ROLES = ("loadgen", "gateway", "proxy", "backend")


def write(out_dir: Path, stem: str, results: dict[str, Any], chart: bool = True) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / f"{stem}.md", "json": out_dir / f"{stem}.json"}
    if chart:
        paths["png"] = out_dir / f"{stem}.png"
        write_chart(paths["png"], results)
    paths["json"].write_text(json.dumps(results, indent=1, default=str))
    paths["md"].write_text(markdown(results, paths.get("png")))
    return paths


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(results: dict[str, Any], png: Path | None) -> str:
    env = results["environment"]
    lines = [
        f"# Benchmark results, {results['date']}",
        "",
        f"Machine: {env['cpus']} CPUs, {env['platform']}; Python {env['python']}; mcp {env['mcp']}. "
        f"Profile: {results['profile']}; {results['settings']['rounds']} interleaved round(s) of "
        f"{results['settings']['duration']} s per target and concurrency; medians over rounds. "
        f"Run took {results['wall_seconds']:.0f} s; 1-minute load average {env['loadavg'][0]} at the start and "
        f"{env['loadavg'][1]} at the end (anything above what the benchmark itself runs is other work on the "
        f"machine). Command: `{results['command']}`.",
        "",
    ]
    if png is not None:
        lines += [f"![throughput and latency against concurrency]({png.name})", ""]
    lines += ["## Targets", "", "| target | measured | goal | verdict |", "|---|---|---|---|"]
    for check in evaluate(results):
        lines.append(f"| {check.name} | {check.measured} | {check.goal} | {check.verdict} |")
    rows = results.get("rows", [])
    busy = [r for r in rows if r.get("busy_before", 0) >= 20]
    lines += [
        "",
        f"Before each window the suite waits (at most {results['settings']['quiet_wait']:g} s) for the machine's CPU "
        f"use to drop below 20 %; {len(busy)} of {len(rows)} windows started above it (other work on the machine).",
        "",
    ]
    lines += [*_calls_table(results["summary"]), "", *_ratios_table(results["summary"]), ""]
    lines += _peers_section(results)
    lines += _scenarios_section(results)
    return "\n".join(lines).rstrip() + "\n"


def _calls_table(summary: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "## tools/call",
        "",
        "CPU columns are milliseconds of CPU per request spent by each process over the measured windows "
        "(loadgen = the load generator itself; proxy = a peer's own process tree less the backend it spawned).",
        "",
        "| system | era | mode | c | req/s | p50 ms | p90 ms | p99 ms | errors | CPU loadgen | CPU gateway/proxy "
        "| CPU backend |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in sorted(summary, key=lambda r: (r["c"], r["era"], r["mode"], r["system"])):
        cpu = row.get("cpu_ms", {})
        front = cpu.get("gateway", cpu.get("proxy"))
        lines.append(
            f"| {row['system']} | {row['era']} | {row['mode']} | {row['c']} | {_f(row['rps'])} | {_f(row['p50'], 2)} "
            f"| {_f(row['p90'], 2)} | {_f(row['p99'], 2)} | {row['errors']} | {_f(cpu.get('loadgen'), 2)} "
            f"| {_f(front, 2)} | {_f(cpu.get('backend'), 2)} |"
        )
    failures = [(r["key"], r["c"], f) for r in summary for f in r.get("failures", [])]
    if failures:
        lines += ["", "Errors seen:", ""] + [f"- {k} c={c}: `{f}`" for k, c, f in failures[:10]]
    return lines


def _ratios_table(summary: Sequence[dict[str, Any]]) -> list[str]:
    cells = {(r["system"], r["era"], r["mode"], r["c"]): r for r in summary}
    lines = [
        "## Gateway against direct",
        "",
        "| era | mode | c | direct req/s | gateway req/s | ratio | direct p50 ms | added p50 ms | direct p99 ms "
        "| gateway p99 ms | p99 ratio |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for era in ERAS:
        for mode in MODES:
            for level in sorted({r["c"] for r in summary}):
                d, g = cells.get(("direct", era, mode, level)), cells.get(("gateway", era, mode, level))
                if not d or not g or not d["rps"]:
                    continue
                p99 = g["p99"] / d["p99"] if d["p99"] else None
                lines.append(
                    f"| {era} | {mode} | {level} | {_f(d['rps'])} | {_f(g['rps'])} | {_f(g['rps'] / d['rps'], 2)} "
                    f"| {_f(d['p50'], 2)} | {_f(g['p50'] - d['p50'], 2)} | {_f(d['p99'], 2)} | {_f(g['p99'], 2)} "
                    f"| {_f(p99, 2)} |"
                )
    return lines


def _peers_section(results: dict[str, Any]) -> list[str]:
    lines = ["## Peers", ""]
    for name, info in results.get("peers", {}).items():
        state = f"skipped: {info['skipped']}" if "skipped" in info else "measured"
        lines.append(f"- **{name}** ({info['package']}): {info['description']}; {state}")
    if not results.get("peers"):
        lines.append("- none in this run")
    summary = results["summary"]
    measured = [n for n, i in results.get("peers", {}).items() if "skipped" not in i]
    if measured:
        cells = {(r["system"], r["c"]): r for r in summary if r["era"] == "2025" and r["mode"] in ("sse", "peer")}
        lines += ["", "2025-era tools/call req/s; the gateway in its default SSE mode.", ""]
        lines += ["| c | gateway | " + " | ".join(measured) + " |", "|--:|--:|" + "--:|" * len(measured)]
        for level in sorted({r["c"] for r in summary}):
            gw = cells.get(("gateway", level))
            peers = [cells.get((n, level)) for n in measured]
            lines.append(
                f"| {level} | {_f(gw['rps'] if gw else None)} | "
                + " | ".join(_f(p["rps"] if p else None) for p in peers)
                + " |"
            )
    return [*lines, ""]


def _scenarios_section(results: dict[str, Any]) -> list[str]:
    lines = ["## Other scenarios", ""]
    for key, render in (
        ("many", _many),
        ("idle", _idle),
        ("soak", _soak),
        ("metrics", metrics_cost.render),
        ("scale", _scale),
        ("search", search.render),
        ("search_gateway", search_gateway.render),
    ):
        found = results.get(key)
        if found and "error" in found:
            lines += [f"**{key}**: failed: `{found['error']}`", ""]
        elif found:
            lines += [render(found), ""]
    return lines + _big(results.get("big", []))


def _many(many: dict[str, Any]) -> str:
    if "list_error" in many:
        listed = f"tools/list at the gateway failed: {many['list_error']}."
    else:
        l25, l26 = many["list_2025"], many["list_2026"]
        listed = (
            f"tools/list at the gateway ({many['tools_listed']} tools listed, every page followed), the whole walk "
            f"as the client sees it: 2025 p50 {l25['p50_ms']:.1f} ms / p99 {l25['p99_ms']:.1f} ms; "
            f"2026 p50 {l26['p50_ms']:.1f} ms / p99 {l26['p99_ms']:.1f} ms; of which waiting for the answers "
            f"(the client's JSON decoding excluded): 2025 p50 {l25.get('wait_p50_ms', float('nan')):.1f} ms, "
            f"2026 p50 {l26.get('wait_p50_ms', float('nan')):.1f} ms. "
            f"Same order every call: {many['deterministic']}; sorted by name: {many['sorted']}."
        )
    ready = (
        f"gateway ready {many['ready_seconds']:.3f} s after its process started"
        if many["ready_seconds"] is not None
        else f"gateway NOT ready within {many['ready_timeout']:g} s ({many['backends_ready']} of {many['backends']} "
        "backends ready then)"
    )
    return (
        f"**{many['backends']} backends x {many['tools_per_backend']} tools** ({many['processes']} backend "
        f"processes): {ready}; each backend alone answers discover + tools/list in "
        f"{many['connect_median'] * 1000:.1f} ms (median), {many['connect_max'] * 1000:.1f} ms (slowest). {listed} "
        f"Gateway RSS {many['gateway_rss'] / MB:.0f} MB."
    )


def _idle(idle: dict[str, Any]) -> str:
    return (
        f"**{idle['sessions']} idle 2025 sessions** on a fresh gateway: RSS {idle['rss_before'] / MB:.1f} MB to "
        f"{idle['rss_after'] / MB:.1f} MB (+{idle['cost_mb']:.1f} MB, {idle['per_session_kb']:.1f} KB per session); "
        f"opened in {idle['open_seconds']:.1f} s; sampled sessions still answering: {idle['still_alive']}."
    )


def _soak(soak: dict[str, Any]) -> str:
    series = soak.get("rss_mb", []) or [0.0]
    return (
        f"**Soak** ({soak.get('elapsed', 0):.0f} s, {soak['key']}, c={soak['c']}, paced at "
        f"{soak['target_rate']:.0f} req/s = half the gateway's peak at c=8 or above): "
        f"achieved {soak.get('rps', 0):.0f} req/s, "
        f"{soak['errors']} errors, p99 {soak.get('p99', 0):.1f} ms; gateway RSS {series[0]:.1f} to "
        f"{series[-1]:.1f} MB, slope after warm-up {soak['slope_mb_per_min']:+.2f} MB/min, "
        f"last quarter minus first quarter {soak['growth_mb']:+.2f} MB."
    )


def _scale(scale: dict[str, Any]) -> str:
    """Throughput and CPU per call by worker count, and what the gateway's own CPU per call allows per core."""
    rows = sorted(scale["summary"], key=lambda r: r["workers"])
    base = rows[0]["rps"] or None
    lines = [
        f"**Workers** (`serve --workers N`, 2026 `tools/call` at c={scale['level']}, one JSON-mode backend, the "
        "workers sharing one redis-server; CPU in ms per call):",
        "",
        "| workers | req/s | vs 1 | p50 ms | p99 ms | errors | gateway CPU | backend CPU | load generator CPU |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        cpu = row.get("cpu_ms", {})
        ratio = f"{row['rps'] / base:.2f}x" if base else "-"
        lines.append(
            f"| {row['workers']} | {_f(row['rps'])} | {ratio} | {_f(row['p50'])} | {_f(row['p99'])} | "
            f"{row['errors']} | {_f(cpu.get('gateway'), 2)} | {_f(cpu.get('backend'), 2)} | "
            f"{_f(cpu.get('loadgen'), 2)} |"
        )
    trips = scale["store_round_trips"]
    gateway_ms = rows[0].get("cpu_ms", {}).get("gateway")
    per_core = f"{1000 / gateway_ms:,.0f}" if gateway_ms else "-"
    lines += [
        "",
        f"Store round trips per plain 2026 tools/call (no rate limit): {trips['per_call']:.2f} over "
        f"{trips['calls']} sequential calls ({trips['idle_commands']} commands in as long a time without calls). "
        f"One core spent on gateway processes serves at most {per_core} calls/s at the one-worker CPU cost.",
    ]
    return "\n".join(lines)


def _big(big: Sequence[dict[str, Any]]) -> list[str]:
    if not big:
        return []
    lines = [
        "**1 MB tool results** (2025 era; memory of the process in front: the gateway, or the backend when direct):",
        "",
        "| system | mode | c | results/s | p50 ms | p99 ms | errors | RSS before MB | peak MB | after MB |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in big:
        rss = f"{row['rss_before'] / MB:.1f} | {row['rss_peak'] / MB:.1f} | {row['rss_after'] / MB:.1f}"
        lines.append(
            f"| {row['system']} | {row['mode']} | {row['c']} | {_f(row.get('rps'))} | {_f(row.get('p50'), 1)} "
            f"| {_f(row.get('p99'), 1)} | {row['errors']} | {rss} |"
        )
    return [*lines, ""]


def write_chart(path: Path, results: dict[str, Any]) -> None:
    """Throughput, p50 and p99 against concurrency; one row per era; gateway beside direct and each peer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    summary = results["summary"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), squeeze=False)
    labels = sorted({_label(row) for row in summary})
    palette = plt.get_cmap("tab10")
    colors = {label: palette(i % 10) for i, label in enumerate(labels)}
    for row_no, era in enumerate(ERAS):
        series: dict[str, list[dict[str, Any]]] = {}
        for row in summary:
            if row["era"] == era and row["rps"] > 0:
                series.setdefault(_label(row), []).append(row)
        for col, (stat, title) in enumerate((("rps", "tools/call req/s"), ("p50", "p50 ms"), ("p99", "p99 ms"))):
            ax = axes[row_no][col]
            for label, rows in sorted(series.items()):
                rows.sort(key=lambda r: r["c"])
                style = "-" if label.startswith("gateway") else "--" if label.startswith("direct") else ":"
                xs, ys = [r["c"] for r in rows], [r[stat] for r in rows]
                ax.plot(xs, ys, style, marker="o", label=label, color=colors[label])
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.set_xticks(sorted({r["c"] for r in summary}))
            ax.set_xlabel("concurrent clients")
            ax.set_title(f"{era}-era {title}")
            ax.grid(True, which="both", alpha=0.3)
        axes[row_no][0].legend(fontsize=8)
    fig.suptitle(f"MCP gateway benchmark {results['date']} ({results['profile']})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _label(row: dict[str, Any]) -> str:
    return str(row["system"]) if row["mode"] == "peer" else f"{row['system']} ({row['mode']})"
