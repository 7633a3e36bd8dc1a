"""``/metrics``: the Prometheus exposition of ``gateway.telemetry.metrics``, and the gateway's states read at scrape.

Who may scrape: with ``telemetry.metrics.token`` set, a client that sends it as ``Authorization: Bearer <token>``
(compared in constant time), from anywhere; without one, loopback clients alone. The Host allow-list of ``/mcp``
applies too (``http_security``). With ``telemetry.metrics.enabled: false`` the path is not served at all.

The states (each backend's state and breaker, catalogue sizes, client sessions, per-client backend sessions, stdio
processes) are read from the running gateway when scraped; in multiprocess mode they describe the process that
answered the scrape.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.config import Transport
from gateway.core import Gateway
from gateway.front.session_table import SessionTable
from gateway.telemetry import metrics
from gateway.upstream.backend import State
from gateway.upstream.breaker import BreakerState

METRICS_PATH = "/metrics"
_PREFIX = "mcp_gateway_"


def metrics_route(gateway: Gateway, sessions: SessionTable) -> Route:
    """The ``/metrics`` route of a running gateway's app."""
    token = gateway.config.telemetry.metrics.token
    expected = token.get_secret_value().encode() if token is not None else None
    states = CollectorRegistry()
    states.register(_States(gateway, sessions))

    async def scrape(request: Request) -> Response:
        if not _allowed(request, expected):
            return JSONResponse(
                {"error": "metrics are served to loopback clients, or with the configured bearer token"},
                status_code=401 if expected is not None else 403,
                headers={"WWW-Authenticate": 'Bearer realm="mcp-gateway-metrics"'} if expected is not None else None,
            )
        body, content_type = metrics.render(states)
        return Response(body, headers={"Content-Type": content_type})

    return Route(METRICS_PATH, scrape, methods=["GET"])


def _allowed(request: Request, expected: bytes | None) -> bool:
    if expected is None:
        return request.client is not None and _loopback(request.client.host)
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), expected)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _States:
    """The gateway's states as gauges, read when scraped."""

    def __init__(self, gateway: Gateway, sessions: SessionTable) -> None:
        self._gateway = gateway
        self._sessions = sessions

    def collect(self) -> Iterator[Metric]:
        gateway = self._gateway
        state = GaugeMetricFamily(
            _PREFIX + "backend_state", "1 for each backend's current state.", labels=["backend", "state"]
        )
        breaker = GaugeMetricFamily(
            _PREFIX + "backend_breaker_state", "1 for each backend link breaker's state.", labels=["backend", "state"]
        )
        items = GaugeMetricFamily(
            _PREFIX + "catalogue_items",
            "Items a backend adds to the catalogue, by kind.",
            labels=["backend", "kind"],
        )
        backend_sessions = GaugeMetricFamily(
            _PREFIX + "backend_sessions", "Per-client backend sessions open.", labels=["backend"]
        )
        stdio = GaugeMetricFamily(_PREFIX + "stdio_processes", "stdio backend processes running.", labels=["backend"])
        for name, upstream in gateway.upstreams.items():
            for value in State:
                state.add_metric([name, value.value], float(upstream.state is value))
            current = upstream.breaker.state
            for position in BreakerState:
                breaker.add_metric([name, position.value], float(current is position))
            ready = upstream.state is State.READY
            for kind, count in gateway.catalog.counts(name).items():
                items.add_metric([name, kind], count if ready else 0)
            per_client = upstream.sessions.count if upstream.sessions is not None else 0
            backend_sessions.add_metric([name], per_client)
            if upstream.config.transport is Transport.STDIO:
                stdio.add_metric([name], per_client + (upstream.client is not None))
        yield from (state, breaker, items, backend_sessions, stdio)
        yield GaugeMetricFamily(
            _PREFIX + "client_sessions", "2025 client sessions the gateway holds.", value=self._sessions.size
        )
