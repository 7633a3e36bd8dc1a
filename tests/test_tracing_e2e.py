"""Traces end to end: a real gateway exporting over OTLP/HTTP to a receiver on loopback, in front of real backends
(streamable HTTP on the raw link, and stdio) that report the trace context they received. One trace runs from
the client through the gateway to each backend, whose parent is the gateway's CLIENT span."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support.otlp_receiver import OtlpReceiver, Span
from tests.support.procs import ROOT, Processes, free_port, http_get, listening, wait_until
from tests.test_fastpath import call, headers_for

pytestmark = pytest.mark.processes
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{CLIENT_SPAN}-01"
SERVER, CLIENT = 2, 3  # the OTLP protobuf's SpanKind values


def start_gateway(procs: Processes, root: Path, receiver: OtlpReceiver, delay: str) -> tuple[str, Any]:
    """A gateway exporting to ``receiver`` (batches every ``delay`` ms) in front of the traced backend over
    streamable HTTP (``web``) and stdio (``local``); its ``/mcp`` URL and process."""
    web = free_port()
    procs.start("-m", "tests.support.traced_backend", "--port", str(web))
    wait_until(lambda: listening(web))
    stdio = {"transport": "stdio", "command": sys.executable, "cwd": str(ROOT), "connect_timeout": 30}
    backends = [
        {"name": "web", "url": f"http://127.0.0.1:{web}/mcp"},
        {"name": "local", "args": ["-m", "tests.support.traced_backend", "--stdio"], **stdio},
    ]
    (root / "gateway.json").write_text(json.dumps({"backends": backends}))
    port = free_port()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": delay}
    gateway = procs.start(
        "-m", "gateway", "serve", "--config", str(root / "gateway.json"), "--port", str(port), env=env
    )
    wait_until(lambda: listening(port) and http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, timeout=60)
    return f"http://127.0.0.1:{port}/mcp", gateway


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, OtlpReceiver]]:
    """The gateway's ``/mcp`` URL and the receiver its spans go to."""
    procs = Processes()
    with OtlpReceiver() as receiver:
        try:
            url, _ = start_gateway(procs, tmp_path_factory.mktemp("traced"), receiver, "50")
            yield url, receiver
        finally:
            procs.stop_all()


def call_tool(url: str, name: str, meta: dict[str, str] | None = None, **headers: str) -> dict[str, Any]:
    message = call(name, {})
    message["params"]["_meta"].update(meta or {})
    response = httpx2.post(url, content=json.dumps(message), headers=headers_for(message, **headers), timeout=30)
    response.raise_for_status()
    return dict(response.json()["result"]["structuredContent"])


def backend_span(receiver: OtlpReceiver, backend: str, trace: str) -> Span:
    def found() -> Span | None:
        return next(
            (
                span
                for span in receiver.received()
                if span.trace_id == trace and span.attributes.get("mcp_gateway.backend") == backend
            ),
            None,
        )

    return wait_until(found, timeout=15, what=f"the CLIENT span of {backend} at the receiver")  # type: ignore[no-any-return]


def test_the_http_backend_sees_the_clients_trace_with_the_gateways_client_span_as_parent(
    traced: tuple[str, OtlpReceiver],
) -> None:
    url, receiver = traced
    seen = call_tool(url, "web__seen", traceparent=TRACEPARENT)
    span = backend_span(receiver, "web", TRACE)
    expected = f"00-{TRACE}-{span.span_id}-01"
    assert seen["header"]["traceparent"] == expected and seen["meta"]["traceparent"] == expected
    assert span.kind == CLIENT and span.name == "tools/call seen" and span.service == "mcp-gateway"
    server = wait_until(lambda: [s for s in receiver.received() if s.span_id == span.parent_id], timeout=15)[0]
    assert server.kind == SERVER and server.name == "tools/call web__seen" and server.parent_id == CLIENT_SPAN


def test_the_stdio_backend_gets_the_trace_in_meta(traced: tuple[str, OtlpReceiver]) -> None:
    url, receiver = traced
    trace = "0af7651916cd43dd8448eb211c80319c"
    seen = call_tool(url, "local__seen", meta={"traceparent": f"00-{trace}-b7ad6b7169203331-01", "tracestate": "v=1"})
    span = backend_span(receiver, "local", trace)
    assert seen["meta"] == {"traceparent": f"00-{trace}-{span.span_id}-01", "tracestate": "v=1"}
    assert span.attributes["network.transport"] == "pipe"


def test_a_failing_backend_call_is_exported_as_an_error(traced: tuple[str, OtlpReceiver]) -> None:
    url, receiver = traced
    trace = "5bf92f3577b34da6a3ce929d0e0e4736"
    message = call("web__fail", {})
    response = httpx2.post(
        url,
        content=json.dumps(message),
        headers=headers_for(message, traceparent=f"00-{trace}-{CLIENT_SPAN}-01"),
        timeout=30,
    )
    assert response.json()["error"]["code"] == -32099
    span = backend_span(receiver, "web", trace)
    assert span.error and span.attributes["error.type"] == "-32099"


def test_spans_still_waiting_for_their_batch_are_sent_when_the_gateway_stops(tmp_path: Path) -> None:
    procs = Processes()
    with OtlpReceiver() as receiver:
        try:
            url, gateway = start_gateway(procs, tmp_path, receiver, "600000")
            call_tool(url, "web__seen", traceparent=TRACEPARENT)
            assert not receiver.received()
            assert procs.stop(gateway) == 0
            assert {span.name for span in receiver.received()} >= {"tools/call web__seen", "tools/call seen"}
        finally:
            procs.stop_all()
