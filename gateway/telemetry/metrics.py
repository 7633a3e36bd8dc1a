"""The gateway's Prometheus instruments, and the functions that record into them.

Counters and histograms live here, one set per process, as ``prometheus_client`` means them to: a call records with
a dictionary lookup and an increment, its label children bound once per label set and cached. Label values are
bounded: a name is the canonical name the catalogue resolved (never what the request wrote: an unknown one counts
as ``(unknown)``), a backend's own error code counts as itself only inside JSON-RPC's reserved range.

What is a state rather than an event (a backend's state and breaker, sessions, catalogue sizes) is read from the
running gateway when ``/metrics`` is scraped (``gateway.front.metrics_endpoint``), so it costs nothing meanwhile.

Several worker processes: ``prometheus_client``'s multiprocess mode, which the library turns on itself when the
``PROMETHEUS_MULTIPROC_DIR`` environment variable names a directory as it is imported; each process then writes its
values to files there and ``render`` sums them. ``configure`` turns recording off (``telemetry.metrics.enabled``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from gateway.config import MetricsConfig

UNKNOWN = "(unknown)"
NONE = ""
# Seconds: a fast-path call takes well under a millisecond of the gateway's own time, a tool call up to minutes.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
MULTIPROCESS = values.ValueClass is not values.MutexValue
REGISTRY = CollectorRegistry()
_PREFIX = "mcp_gateway_"

REQUESTS = Counter(
    _PREFIX + "requests",
    "MCP calls answered, by method, backend, name (tool or prompt), client era, outcome and JSON-RPC error code.",
    ["method", "backend", "name", "era", "outcome", "code"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    _PREFIX + "request_duration_seconds",
    "Time from the guard taking a call to its answer (checks, routing and the backend's time).",
    ["method", "backend", "era"],
    buckets=BUCKETS,
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    _PREFIX + "requests_in_flight", "MCP calls being answered.", registry=REGISTRY, multiprocess_mode="livesum"
)
BACKEND_SECONDS = Histogram(
    _PREFIX + "backend_call_duration_seconds",
    "Time of one request to a backend, sent until answered or failed.",
    ["backend", "method"],
    buckets=BUCKETS,
    registry=REGISTRY,
)
RECONNECTS = Counter(
    _PREFIX + "backend_reconnects", "Connection attempts to a backend after its first.", ["backend"], registry=REGISTRY
)
LIST_CHANGED = Counter(
    _PREFIX + "list_changed",
    "list_changed notifications published to clients, by list.",
    ["kind"],
    registry=REGISTRY,
)
REJECTIONS = Counter(
    _PREFIX + "rejections",
    "Calls the security controls refused, by control: policy, rate_limit, pinning, validation, result_size.",
    ["control"],
    registry=REGISTRY,
)
AUDIT_LINES = Counter(_PREFIX + "audit_lines", "Lines written to the audit log.", registry=REGISTRY)

# A refusal's outcome (the guard's audit outcome) to the control that refused.
_CONTROLS = {
    "denied": "policy",
    "rate_limited": "rate_limit",
    "withheld": "pinning",
    "invalid_arguments": "validation",
    "too_large": "result_size",
}
_on = True
_calls: dict[tuple[str, str, str, str, str, str], tuple[Counter, Histogram]] = {}
_backend_calls: dict[tuple[str, str], Histogram] = {}


def configure(config: MetricsConfig) -> None:
    """Record, or not (every recording function returns at once while off)."""
    global _on
    _on = config.enabled


def enabled() -> bool:
    return _on


def call(method: str, backend: str, name: str, era: str, outcome: str, code: str, seconds: float) -> None:
    """One call answered (or refused) by the guard."""
    if not _on:
        return
    key = (method, backend, name, era, outcome, code)
    bound = _calls.get(key)
    if bound is None:
        bound = _calls[key] = (
            REQUESTS.labels(method, backend, name, era, outcome, code),
            REQUEST_SECONDS.labels(method, backend, era),
        )
    bound[0].inc()
    bound[1].observe(seconds)
    if (control := _CONTROLS.get(outcome)) is not None:
        REJECTIONS.labels(control).inc()


def backend_call(backend: str, method: str, seconds: float) -> None:
    if not _on:
        return
    bound = _backend_calls.get((backend, method))
    if bound is None:
        bound = _backend_calls[(backend, method)] = BACKEND_SECONDS.labels(backend, method)
    bound.observe(seconds)


def started() -> None:
    if _on:
        IN_FLIGHT.inc()


def finished() -> None:
    if _on:
        IN_FLIGHT.dec()


def reconnect(backend: str) -> None:
    if _on:
        RECONNECTS.labels(backend).inc()


def list_changed(kind: str) -> None:
    if _on:
        LIST_CHANGED.labels(kind).inc()


def audit_line() -> None:
    if _on:
        AUDIT_LINES.inc()


def error_code(code: int) -> str:
    """A JSON-RPC error code as a label: itself inside the reserved range (-32768..-32000), else ``other``."""
    return str(code) if -32768 <= code <= -32000 else "other"


def render(states: CollectorRegistry) -> tuple[bytes, str]:
    """The exposition text and its content type: this process's instruments (every process's, in multiprocess
    mode), then ``states``, the gauges read from the running gateway."""
    if MULTIPROCESS:
        instruments = CollectorRegistry()
        MultiProcessCollector(instruments)  # type: ignore[no-untyped-call]  # the library leaves it unannotated
    else:
        instruments = REGISTRY
    return generate_latest(instruments) + generate_latest(states), CONTENT_TYPE_LATEST


def process_gone(pid: int, directory: str) -> None:
    """Forget a dead worker's live gauges (its calls in flight) in the shared multiprocess ``directory``; its
    counters and histograms stay, as totals must."""
    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
