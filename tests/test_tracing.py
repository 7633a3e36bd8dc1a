"""Traces: a SERVER span per client request and a CLIENT span per backend call, named and attributed after the MCP
semantic conventions, with the client's W3C trace context honoured (``_meta`` and the HTTP header) and carried to
the backend in ``_meta``; off by default, configured from the ``OTEL_*`` variables. In process, with the SDK's
in-memory exporter; ``test_tracing_e2e`` runs a real gateway against a real OTLP receiver and backend."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from mcp import Client, MCPError, types
from mcp.server import MCPServer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.config import BackendConfig
from gateway.core import Gateway
from gateway.errors import ConfigError
from gateway.front.server import build_server
from gateway.settings import tracing_from
from gateway.telemetry import access_log
from gateway.telemetry.tracing import Tracing, carried_headers, current_trace_id, start_tracing
from tests.support import traced_backend
from tests.support.inproc import config_for, http
from tests.test_fastpath import call, headers_for

pytestmark = pytest.mark.anyio
TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
OTHER = "00-11111111111111111111111111111111-2222222222222222-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    found = InMemorySpanExporter()
    yield found
    found.shutdown()


@asynccontextmanager
async def traced_gateway(exporter: InMemorySpanExporter, **settings: Any) -> AsyncIterator[Gateway]:
    """A gateway in front of the in-process traced backend (prefix ``tr``), its spans in ``exporter``."""
    backend = traced_backend.build()

    async def connect(config: BackendConfig, stack: AsyncExitStack, hooks: Any) -> MCPServer:
        return backend

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with Gateway(config_for({"traced": "tr"}, **settings), connect, tracing=Tracing(provider)) as gateway:
        yield gateway


def spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = spans(exporter, name)
    assert len(found) == 1, [span.name for span in exporter.get_finished_spans()]
    return found[0]


def hexid(value: int, width: int = 16) -> str:
    return format(value, f"0{width}x")


async def test_a_call_is_a_server_span_with_a_client_span_per_backend_call_under_it(
    exporter: InMemorySpanExporter,
) -> None:
    async with traced_gateway(exporter) as gateway, Client(build_server(gateway)) as client:
        await client.call_tool("tr__seen", {})
    server, backend = only(exporter, "tools/call tr__seen"), only(exporter, "tools/call seen")
    assert server.kind is SpanKind.SERVER and backend.kind is SpanKind.CLIENT
    assert server.parent is None
    assert backend.parent is not None and backend.parent.span_id == server.context.span_id
    assert backend.context.trace_id == server.context.trace_id
    assert dict(server.attributes or {}) == {
        "mcp.method.name": "tools/call",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "tr__seen",
        "jsonrpc.request.id": server.attributes["jsonrpc.request.id"],  # type: ignore[index]
        "network.transport": "pipe",
        "mcp.protocol.version": "2026-07-28",
        "mcp_gateway.outcome": "ok",
    }
    assert backend.attributes is not None
    assert backend.attributes["gen_ai.tool.name"] == "seen" and backend.attributes["mcp_gateway.backend"] == "traced"
    assert backend.attributes["mcp_gateway.outcome"] == "ok" and backend.status.status_code is StatusCode.UNSET


async def test_the_backend_gets_the_client_span_as_parent_in_meta_within_the_clients_trace(
    exporter: InMemorySpanExporter,
) -> None:
    meta = {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}
    async with traced_gateway(exporter) as gateway, Client(build_server(gateway)) as client:
        result = await client.call_tool("tr__seen", {}, meta=meta)
    server, backend = only(exporter, "tools/call tr__seen"), only(exporter, "tools/call seen")
    assert hexid(server.context.trace_id, 32) == TRACE
    assert server.parent is not None and hexid(server.parent.span_id) == PARENT and server.parent.is_remote
    seen = (result.structured_content or {})["meta"]
    assert seen["traceparent"] == f"00-{TRACE}-{hexid(backend.context.span_id)}-01"
    assert seen["tracestate"] == "vendor=1"


async def test_a_failing_backend_call_marks_both_spans_with_the_json_rpc_code(exporter: InMemorySpanExporter) -> None:
    async with traced_gateway(exporter) as gateway, Client(build_server(gateway)) as client:
        with pytest.raises(MCPError):
            await client.call_tool("tr__fail", {})
    for span in (only(exporter, "tools/call tr__fail"), only(exporter, "tools/call fail")):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["error.type"] == "-32099" and span.attributes["mcp_gateway.outcome"] == "error"


async def test_an_unknown_tool_is_an_error_span_with_no_backend_call(exporter: InMemorySpanExporter) -> None:
    async with traced_gateway(exporter) as gateway, Client(build_server(gateway)) as client:
        with pytest.raises(MCPError):
            await client.call_tool("tr__nope", {})
    span = only(exporter, "tools/call tr__nope")
    assert span.status.status_code is StatusCode.ERROR and span.attributes is not None
    assert span.attributes["error.type"] == str(types.INVALID_PARAMS)
    assert not [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]


async def test_a_fast_path_call_takes_its_parent_from_the_traceparent_header(exporter: InMemorySpanExporter) -> None:
    message = call("tr__seen", {})
    async with traced_gateway(exporter) as gateway, http(gateway) as session:
        response = await session.post("/mcp", content=json.dumps(message), headers=headers_for(message))
        response.raise_for_status()
        assert response.json()["result"]
        sent = await session.post(
            "/mcp", content=json.dumps(message), headers=headers_for(message, traceparent=TRACEPARENT)
        )
    untraced, traced = spans(exporter, "tools/call tr__seen")
    assert untraced.parent is None
    assert traced.parent is not None and hexid(traced.parent.span_id) == PARENT
    assert traced.attributes is not None and traced.attributes["network.transport"] == "tcp"
    assert traced.attributes["network.protocol.name"] == "http"
    backend = spans(exporter, "tools/call seen")[1]
    seen = sent.json()["result"]["structuredContent"]["meta"]
    assert seen["traceparent"] == f"00-{TRACE}-{hexid(backend.context.span_id)}-01"


async def test_a_cached_2026_list_page_is_a_server_span_too(exporter: InMemorySpanExporter) -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": call("x", {})["params"]["_meta"]}}
    head = {k: v for k, v in headers_for(message).items() if k != "mcp-name"}
    async with traced_gateway(exporter) as gateway, http(gateway) as session:
        for request_id in (1, 2):  # the SDK's answer, then the same page from the gateway's cache
            message["id"] = request_id
            response = await session.post(
                "/mcp", content=json.dumps(message), headers={**head, "traceparent": TRACEPARENT}
            )
            assert response.json()["result"]["tools"]
    _, cached = spans(exporter, "tools/list")
    assert cached.kind is SpanKind.SERVER and cached.attributes is not None
    assert cached.attributes["jsonrpc.request.id"] == "2" and cached.attributes["network.transport"] == "tcp"
    assert cached.parent is not None and hexid(cached.parent.span_id) == PARENT


async def test_meta_wins_over_the_header_when_both_carry_a_trace(exporter: InMemorySpanExporter) -> None:
    message = call("tr__seen", {})
    message["params"]["_meta"]["traceparent"] = TRACEPARENT
    async with traced_gateway(exporter) as gateway, http(gateway) as session:
        await session.post("/mcp", content=json.dumps(message), headers=headers_for(message, traceparent=OTHER))
    assert hexid(only(exporter, "tools/call tr__seen").context.trace_id, 32) == TRACE


@pytest.mark.parametrize("traceparent", [7, ["x"], "00-not-a-trace", f"00-{'0' * 32}-{PARENT}-01"])
async def test_a_malformed_trace_context_starts_a_new_trace_and_the_call_goes_on(
    exporter: InMemorySpanExporter, traceparent: Any
) -> None:
    message = call("tr__seen", {})
    message["params"]["_meta"].update(traceparent=traceparent, tracestate=5)
    async with traced_gateway(exporter) as gateway, http(gateway) as session:
        response = await session.post("/mcp", content=json.dumps(message), headers=headers_for(message))
    assert response.json()["result"]["structuredContent"]["meta"]["tracestate"] is None
    assert only(exporter, "tools/call tr__seen").parent is None


async def test_a_2025_sessions_requests_name_it_by_a_hash_whether_the_sdk_or_the_cache_answers(
    exporter: InMemorySpanExporter,
) -> None:
    async with traced_gateway(exporter) as gateway, http(gateway) as session:
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        head = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        answer = await session.post("/mcp", content=json.dumps(init), headers=head)
        sid = answer.headers["mcp-session-id"]
        head = {**head, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await session.post("/mcp", content=json.dumps(done), headers=head)
        for request_id in (2, 3):  # the SDK's answer, then the same page from the gateway's cache
            listing = {"jsonrpc": "2.0", "id": request_id, "method": "tools/list"}
            (await session.post("/mcp", content=json.dumps(listing), headers={**head, "traceparent": TRACEPARENT}))
    assert "mcp.session.id" not in (only(exporter, "initialize").attributes or {})
    served, cached = spans(exporter, "tools/list")
    for span in (served, cached):
        assert span.attributes is not None and span.attributes["mcp.protocol.version"] == "2025-11-25"
        assert span.attributes["mcp.session.id"] == hashlib.sha256(sid.encode()).hexdigest()[:16]
        assert span.parent is not None and hexid(span.parent.span_id) == PARENT
    assert cached.attributes is not None and cached.attributes["jsonrpc.request.id"] == "3"


def test_the_trace_id_of_the_current_request_is_there_for_log_lines() -> None:
    provider = TracerProvider()
    assert current_trace_id() is None
    with provider.get_tracer("t").start_as_current_span("s") as span:
        assert current_trace_id() == hexid(span.get_span_context().trace_id, 32)


def test_the_raw_link_carries_the_trace_context_of_meta_as_headers() -> None:
    meta = {"traceparent": TRACEPARENT, "tracestate": "a=1", "other": "x"}
    assert carried_headers(meta) == {"traceparent": TRACEPARENT, "tracestate": "a=1"}
    assert carried_headers(None) == {} and carried_headers({"traceparent": 7}) == {}


def test_traces_are_off_without_an_exporter_or_endpoint() -> None:
    config = tracing_from({"OTEL_SERVICE_NAME": "gw"})
    assert not config.enabled and start_tracing(config) is None


def test_an_otlp_endpoint_turns_traces_on_with_the_traces_path() -> None:
    config = tracing_from(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/", "OTEL_EXPORTER_OTLP_TIMEOUT": "500"}
    )
    assert config.exporters == ("otlp",) and config.endpoint == "http://127.0.0.1:4318/v1/traces"
    assert config.timeout == 0.5
    signal = tracing_from({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector/x", "OTEL_TRACES_EXPORTER": "otlp"})
    assert signal.endpoint == "http://collector/x"


def test_the_standard_variables_configure_service_sampler_headers_and_batches() -> None:
    config = tracing_from(
        {
            "OTEL_TRACES_EXPORTER": "console,otlp",
            "OTEL_SERVICE_NAME": "edge",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=a%20b",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20s3cr3t-token",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
    )
    assert config.exporters == ("console", "otlp") and config.service_name == "edge"
    assert config.resource == {"deployment.environment": "prod", "team": "a b"}
    assert config.headers == {"authorization": "Bearer s3cr3t-token"}
    assert config.sampler == "parentbased_traceidratio" and config.ratio == 0.25 and config.batch_delay == 200
    tracing = start_tracing(config)
    assert tracing is not None
    tracing.shutdown()


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_TRACES_EXPORTER": "zipkin"},
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TIMEOUT": "soon"},
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "sometimes"},
    ],
)
def test_bad_variables_are_configuration_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        tracing_from(env)


def test_otel_sdk_disabled_turns_traces_off() -> None:
    assert not tracing_from({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}).enabled


def test_exporter_headers_are_secrets_the_redactor_cuts() -> None:
    tracing = tracing_from({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_HEADERS": "x-key=Bearer abcdefgh1234"})
    base = config_for({})
    config = base.model_copy(update={"telemetry": base.telemetry.model_copy(update={"tracing": tracing})})
    assert "abcdefgh1234" in config.secret_values()


async def test_the_access_line_carries_the_trace_id_of_the_calls_span(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    access_log.enable(True)
    try:
        with caplog.at_level("INFO", logger="gateway.access"):
            async with traced_gateway(exporter) as gateway, Client(build_server(gateway)) as client:
                await client.call_tool("tr__seen", {})
    finally:
        access_log.enable(False)
    found = [getattr(record, access_log.ACCESS) for record in caplog.records if record.name == "gateway.access"]
    (line,) = [fields for fields in found if fields["method"] == "tools/call"]
    server = only(exporter, "tools/call tr__seen")
    assert line["trace_id"] == hexid(server.context.trace_id, 32)
