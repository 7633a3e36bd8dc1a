"""The benchmark's command line: start everything, run every scenario, write the results, stop everything.

python -m bench              # the default run (12-15 minutes on 2 cores, peers installed on first use)
python -m bench --quick      # one round per level, shorter windows
python -m bench --tiny       # seconds; what the smoke test runs
python -m bench --only many  # only the 100 backends: the gateway's start and tools/list over 10,000 tools
python -m bench --only metrics  # only the gateway with metrics on against metrics off (interleaved rounds)
python -m bench --only scale # only serve --workers 1, 2 and 4 (needs redis-server): throughput, CPU per call
python -m bench --only search  # only tool search over 10,000 tools: the index in-process, then through a gateway
python -m bench --link legacy   # the gateway's backends pinned to one protocol (auto, legacy, 2026-07-28)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import scale, scenarios
from bench.goals import evaluate
from bench.loadgen import ERA_2025
from bench.metrics_cost import metrics_cost
from bench.peers import NOT_AUTOMATED, PEERS
from bench.procs import Proc, Processes, StartError
from bench.report import write
from bench.search import search_cost
from bench.search_gateway import gateway_search
from bench.settings import DEFAULT, ERAS, MODES, QUICK, TINY, Settings
from bench.stack import (
    GATEWAY_PREFIX,
    InstallError,
    Target,
    check_call,
    start_echo,
    start_gateway,
    start_peer,
    wait_listening,
    wait_ready,
    write_gateway_config,
)

BENCH_DIR = Path(__file__).resolve().parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Settings, str]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="one round per level, shorter windows")
    size.add_argument("--tiny", action="store_true", help="a few dozen requests, no peers (the smoke test)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="where results are written")
    parser.add_argument("--cache", type=Path, default=BENCH_DIR / ".cache", help="where peers are installed")
    parser.add_argument("--name", help="file name stem of the results (default: today's date)")
    parser.add_argument("--peers", help=f"comma-separated subset of {','.join(PEERS)}, or 'none'")
    parser.add_argument("--levels", help="comma-separated concurrency levels, e.g. 1,8,32")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--duration", type=float, help="seconds measured per round")
    parser.add_argument("--soak", type=float, help="soak seconds (1800 for the long form)")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG (no matplotlib needed)")
    parser.add_argument(
        "--only",
        choices=("many", "metrics", "scale", "search"),
        help="run one scenario alone (many: start and tools/list; metrics: the gateway with metrics on and off; "
        "scale: 1, 2 and 4 workers, with redis-server; search: tool search in-process and through a gateway)",
    )
    parser.add_argument(
        "--link",
        choices=("auto", "legacy", "2026-07-28"),
        help="the gateway's protocol for its backends (default: auto)",
    )
    args = parser.parse_args(argv)
    profile = "tiny" if args.tiny else "quick" if args.quick else "default"
    settings = TINY if args.tiny else QUICK if args.quick else DEFAULT
    if args.peers is not None:
        chosen = () if args.peers == "none" else tuple(p.strip() for p in args.peers.split(",") if p.strip())
        unknown = [p for p in chosen if p not in PEERS]
        if unknown:
            parser.error(f"unknown peers: {', '.join(unknown)}")
        settings = replace(settings, peers=chosen)
    if args.levels:
        settings = replace(settings, levels=tuple(int(v) for v in args.levels.split(",")))
    if args.rounds:
        settings = replace(settings, rounds=args.rounds)
    if args.duration:
        settings = replace(settings, duration=args.duration)
    if args.soak:
        settings = replace(settings, soak_duration=args.soak)
    if args.no_chart:
        settings = replace(settings, chart=False)
    if args.link:
        settings = replace(settings, link=args.link)
    return args, settings, profile


def main(argv: list[str] | None = None) -> None:
    args, settings, profile = parse(argv)
    started = time.perf_counter()
    load_before = os.getloadavg()
    stem = args.name or dt.date.today().isoformat()
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="mcp-bench-") as tmp, Processes(Path(tmp) / "logs") as procs:
        if args.only == "many":
            results = run_many(procs, settings, Path(tmp))
        elif args.only == "metrics":
            results = {"rows": [], "summary": [], "peers": {}, "metrics": run_metrics(procs, settings, Path(tmp))}
        elif args.only == "scale":
            results = run_scale(procs, settings, Path(tmp))
        elif args.only == "search":
            results = {"rows": [], "summary": [], "peers": {}, **run_search(procs, settings, Path(tmp))}
        else:
            results = run_all(procs, settings, Path(tmp), args.cache)
    results.update(
        date=stem, profile=profile, command=command.strip(), settings=asdict(settings), environment=environment()
    )
    results["wall_seconds"] = time.perf_counter() - started
    results["environment"]["loadavg"] = [round(v, 2) for v in (*load_before[:1], os.getloadavg()[0])]
    paths = write(args.out, stem, results, chart=settings.chart)
    for check in evaluate(results):
        log(f"  {check.name}: {check.measured} ({check.verdict})")
    log(f"results: {paths['md']}")


def run_all(procs: Processes, settings: Settings, work: Path, cache: Path) -> dict[str, Any]:
    log("starting echo backends and gateways")
    echoes = {mode: start_echo(procs, mode) for mode in MODES}
    for proc, port in echoes.values():
        wait_listening(proc, port, settings.start_timeout)
    backends = {mode: (proc, f"http://127.0.0.1:{port}/mcp") for mode, (proc, port) in echoes.items()}
    gateways: dict[str, tuple[Proc, int]] = {}
    for mode in MODES:
        config = write_gateway_config(
            work / f"gateway-{mode}.yaml", [("bench", GATEWAY_PREFIX, backends[mode][1])], settings.link
        )
        gateways[mode] = start_gateway(procs, f"gateway-{mode}", config, json_response=mode == "json")
    # Started now so their start overlaps; each is first used by its own scenario.
    idle_config = write_gateway_config(
        work / "idle.yaml", [("bench", GATEWAY_PREFIX, backends["sse"][1])], settings.link
    )
    idle_gateway = start_gateway(procs, "gateway-idle", idle_config, json_response=False)
    many_servers = scenarios.start_many(procs, settings)
    for proc, port in [*gateways.values(), idle_gateway]:
        wait_ready(proc, port, settings.start_timeout)
    targets: list[Target] = []
    fronts: dict[str, Proc] = {}
    for mode in MODES:
        backend, backend_url = backends[mode]
        gateway, port = gateways[mode]
        for era in ERAS:
            direct = Target("direct", era, mode, backend_url, "echo", [backend])
            through = Target("gateway", era, mode, f"http://127.0.0.1:{port}/mcp", f"{GATEWAY_PREFIX}/echo")
            through.watch = [gateway, backend]
            targets += [direct, through]
            fronts[direct.key], fronts[through.key] = backend, gateway
    for target in targets:
        asyncio.run(check_call(target, settings.timeout))
    peers = start_peers(procs, settings, cache, targets)

    log(f"tools/call: {len(targets)} targets x levels {settings.levels} x {settings.rounds} round(s)")
    rows = scenarios.tool_calls(targets, settings, log)
    summary = scenarios.aggregate(rows)
    for target in targets:
        if target.mode == "peer":
            for proc in target.watch:
                procs.stop(proc)
    results: dict[str, Any] = {"rows": rows, "summary": summary, "peers": peers}

    log(f"soak for {settings.soak_duration:g} s")
    soak_target = next(t for t in targets if t.key == f"gateway/{ERA_2025}/sse")
    peak = next((r["rps"] for r in summary if r["key"] == soak_target.key and r["c"] == max(settings.levels)), 0.0)
    peak = max([peak] + [r["rps"] for r in summary if r["key"] == soak_target.key and r["c"] == 8])
    results["soak"] = scenarios.soak(soak_target, settings, fronts[soak_target.key], max(peak / 2, 1.0))

    log("1 MB results")
    big_targets = [t for t in targets if t.era == ERA_2025 and t.system in ("direct", "gateway")]
    results["big"] = scenarios.big_payloads(big_targets, settings, fronts)

    log(f"{settings.idle_sessions} idle sessions")
    results["idle"] = _guard(lambda: scenarios.idle_sessions(procs, settings, idle_gateway))
    results["many"] = _many(procs, settings, work, many_servers)
    results["metrics"] = run_metrics(procs, settings, work)
    results.update(run_search(procs, settings, work))
    return results


def run_metrics(procs: Processes, settings: Settings, work: Path) -> dict[str, Any]:
    log("the gateway with metrics on and off")
    return _guard(lambda: metrics_cost(procs, settings, work, log))


def run_search(procs: Processes, settings: Settings, work: Path) -> dict[str, Any]:
    """Tool search over ``settings.search_tools`` tools: the index in-process, then through a gateway."""
    log(f"tool search over {settings.search_tools} tools")
    in_process = _guard(lambda: search_cost(settings, log))
    log(f"tool search over {settings.search_tools} tools through a gateway")
    return {"search": in_process, "search_gateway": _guard(lambda: gateway_search(procs, settings, work, log))}


def run_many(procs: Processes, settings: Settings, work: Path) -> dict[str, Any]:
    """The many-backends scenario alone: its backends, one gateway in front of them, start time and tools/list."""
    servers = scenarios.start_many(procs, settings)
    return {"rows": [], "summary": [], "peers": {}, "many": _many(procs, settings, work, servers)}


def run_scale(procs: Processes, settings: Settings, work: Path) -> dict[str, Any]:
    """The scale scenario alone: the gateway with each worker count in front of one backend, sharing a Redis."""
    log(f"scale: {', '.join(map(str, settings.scale_workers))} workers x {settings.rounds} round(s)")
    scaled = _guard(lambda: scale.run_scale(procs, settings, work, log))
    return {"rows": [], "summary": [], "peers": {}, "scale": scaled}


def _many(procs: Processes, settings: Settings, work: Path, servers: list[tuple[Proc, int, range]]) -> dict[str, Any]:
    log(f"{settings.many_backends} backends x {settings.many_tools} tools")
    many = _guard(lambda: scenarios.many_backends(procs, settings, work, servers))
    many.setdefault("backends", settings.many_backends)
    return many


def start_peers(procs: Processes, settings: Settings, cache: Path, targets: list[Target]) -> dict[str, Any]:
    """Install and start each peer; one that cannot run is recorded as skipped with the reason.

    A peer in front of an HTTP backend gets a JSON-mode echo backend of its own, so whatever it leaves behind
    there (sessions it never closes, streams it keeps open) cannot slow down the direct and gateway targets.
    """
    peers: dict[str, Any] = {}
    for name in settings.peers:
        peer = PEERS[name]
        info: dict[str, Any] = {"package": peer.package, "description": peer.description}
        log(f"peer {name}: installing {peer.package} (cached after the first run) and starting")
        try:
            backend: tuple[Proc, str] | None = None
            if peer.http_backend:
                proc, port = start_echo(procs, "json", name=f"echo-{name}")
                wait_listening(proc, port, settings.start_timeout)
                backend = (proc, f"http://127.0.0.1:{port}/mcp")
            targets.append(start_peer(procs, name, cache, backend, settings.install_timeout, settings.start_timeout))
        except (InstallError, StartError, OSError) as exc:
            info["skipped"] = str(exc).replace("\n", " ")[:400]
            log(f"peer {name} skipped: {info['skipped']}")
        peers[name] = info
    if settings.peers:
        peers.update({name: dict(info) for name, info in NOT_AUTOMATED.items()})
    return peers


def _guard(scenario: Any) -> dict[str, Any]:
    """A scenario that fails is reported as failed; the run goes on."""
    try:
        result: dict[str, Any] = scenario()
        return result
    except (StartError, OSError, TimeoutError, ValueError, RuntimeError) as exc:
        log(f"scenario failed: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"[:400]}


def environment() -> dict[str, Any]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    return {
        "cpus": os.cpu_count(),
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "mcp": version("mcp"),
        "uvicorn": version("uvicorn"),
    }


if __name__ == "__main__":
    main()
