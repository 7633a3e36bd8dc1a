"""How big a benchmark run is: the default run, ``--quick`` and ``--tiny`` (the smoke test's setting)."""

from __future__ import annotations

from dataclasses import dataclass, replace

ERAS = ("2025", "2026")
MODES = ("json", "sse")


@dataclass(frozen=True)
class Settings:
    levels: tuple[int, ...] = (1, 8, 32)
    rounds: int = 3  # interleaved rounds per concurrency level; medians are reported
    duration: float = 2.5  # seconds measured per round (or max_requests, whichever comes first)
    warmup: float = 0.5
    max_requests: int = 100_000
    timeout: float = 30.0  # per request, and per handshake batch
    peers: tuple[str, ...] = ("fastmcp-reuse", "fastmcp-default", "mcp-proxy", "supergateway")
    many_backends: int = 100
    many_tools: int = 100  # per backend
    many_procs: int = 4
    list_reps: int = 20
    many_ready_timeout: float = 120.0  # the 100-backend gateway is measured even if it never gets ready
    idle_sessions: int = 1000
    big_duration: float = 4.0
    big_concurrency: int = 4
    soak_duration: float = 60.0
    soak_concurrency: int = 8
    settle: float = 2.0  # seconds of quiet before a memory reading
    quiet_wait: float = 10.0  # at most this long before each window for the machine's CPU use to drop below 20 %
    install_timeout: float = 900.0
    start_timeout: float = 60.0
    chart: bool = True
    link: str | None = None  # the gateway's `protocol:` for its backends; None leaves the default (auto)
    scale_workers: tuple[int, ...] = (1, 2, 4)  # `serve --workers` counts of the scale scenario (--only scale)
    search_tools: int = 10_000  # tools in the search index (--only search)
    search_reps: int = 20  # times each query of the search scenario is timed


DEFAULT = Settings()
QUICK = replace(DEFAULT, rounds=1, duration=1.5, soak_duration=15.0, big_duration=2.0, list_reps=10)
TINY = Settings(
    levels=(1, 2),
    rounds=1,
    duration=0.4,
    warmup=0.05,
    max_requests=30,
    timeout=10.0,
    peers=(),
    many_backends=3,
    many_tools=4,
    many_procs=1,
    list_reps=3,
    many_ready_timeout=30.0,
    idle_sessions=20,
    big_duration=0.3,
    big_concurrency=1,
    soak_duration=1.0,
    soak_concurrency=2,
    settle=0.2,
    quiet_wait=0.0,
    start_timeout=30.0,
    scale_workers=(1, 2),
    search_tools=500,
    search_reps=2,
)
