"""OpenTelemetry traces: a SERVER span per MCP request a client makes, a CLIENT span per request to a backend.

Names and attributes follow the OpenTelemetry semantic conventions for MCP (``{mcp.method.name} {target}``, the
target a tool or prompt name; ``mcp.*``, ``gen_ai.*``, ``jsonrpc.request.id``, ``error.type``,
``network.transport``); what only the gateway knows is prefixed ``mcp_gateway.``. W3C trace context
(``traceparent``, ``tracestate``) comes from the request's ``params._meta``, as the MCP convention puts it, else from
its HTTP headers, and goes to the backend in ``_meta`` on every link (and in the raw link's headers:
``carried_headers``), so one trace runs from the client through the gateway to the backend.

Off unless ``TracingConfig`` names an exporter: then ``start_tracing`` returns ``None``, the SDK is never imported,
and every caller skips its span on that one ``None``. The tracer provider is the gateway's own, not the process's
global one, so the MCP SDK's own instrumentation (its client's ``MCP send`` spans) stays silent and costs nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mcp import MCPError
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway import __version__
from gateway.config import TracingConfig
from gateway.errors import GatewayError, StartupError
from gateway.rpc_errors import to_mcp_error

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

TRACE_KEYS = ("traceparent", "tracestate")
_W3C = TraceContextTextMapPropagator()
# What a span's target is, per method: a low-cardinality name for the span's name, or the resource URI.
_NAMED = {"tools/call": "gen_ai.tool.name", "prompts/get": "gen_ai.prompt.name"}
_URI = "mcp.resource.uri"


class Tracing:
    """The gateway's tracer; ``shutdown`` sends what is left."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("mcp-gateway", __version__)

    @contextmanager
    def serving(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        request_id: Any,
        *,
        headers: Mapping[str, str] | None = None,
        session: str | None = None,
        version: str | None = None,
    ) -> Iterator[Span]:
        """The SERVER span of one client request, current while it is served (``headers``: over HTTP)."""
        attributes = _attributes(method, params)
        attributes["jsonrpc.request.id"] = str(request_id)
        attributes["network.transport"] = "pipe" if headers is None else "tcp"
        if headers is not None:
            attributes["network.protocol.name"] = "http"
        if version is not None:
            attributes["mcp.protocol.version"] = version
        if session is not None:
            attributes["mcp.session.id"] = hashlib.sha256(session.encode()).hexdigest()[:16]
        with self._span(method, attributes, SpanKind.SERVER, _parent(params, headers)) as span:
            try:
                yield span
            except BaseException as exc:
                failed(span, exc)
                raise

    def answering(
        self,
        respond: Callable[..., Awaitable[None]],
        method: str,
        params: Mapping[str, Any] | None,
        request_id: Any,
        *,
        headers: Mapping[str, str],
        session: str | None = None,
        version: str | None = None,
    ) -> Callable[..., Awaitable[None]]:
        """``respond``, an answer ready to send (a cached list page), in the request's SERVER span."""

        async def traced(*args: Any) -> None:
            with self.serving(method, params, request_id, headers=headers, session=session, version=version) as span:
                await respond(*args)
                span.set_attribute("mcp_gateway.outcome", "ok")

        return traced

    @contextmanager
    def calling(
        self, backend: str, method: str, params: dict[str, Any], *, transport: str, version: str | None
    ) -> Iterator[BackendCall]:
        """The CLIENT span of one request to ``backend``; ``BackendCall.params`` carry its trace context."""
        attributes = _attributes(method, params)
        attributes["mcp_gateway.backend"] = backend
        attributes["network.transport"] = "pipe" if transport == "stdio" else "tcp"
        if version is not None:
            attributes["mcp.protocol.version"] = version
        with self._span(method, attributes, SpanKind.CLIENT, None) as span:
            meta = {key: value for key, value in (params.get("_meta") or {}).items() if key not in TRACE_KEYS}
            _W3C.inject(meta)
            call = BackendCall(span, {**params, "_meta": meta})
            try:
                yield call
            except BaseException as exc:
                if not call.named:
                    failed(span, exc)
                raise

    def _span(self, method: str, attributes: dict[str, Any], kind: SpanKind, parent: Context | None) -> Any:
        target = next((attributes[key] for key in _NAMED.values() if key in attributes), None)
        return self._tracer.start_as_current_span(
            f"{method} {target}" if target is not None else method,
            context=parent,
            kind=kind,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )

    def shutdown(self) -> None:
        """Export the spans still waiting (bounded by the exporter's timeout) and stop."""
        self._provider.shutdown()


class BackendCall:
    """One request to a backend as traced: its parameters with the span's context in ``_meta``."""

    def __init__(self, span: Span, params: dict[str, Any]) -> None:
        self.span = span
        self.params = params
        self.named = False

    def lost(self, outcome: str) -> None:
        """The request failed in a way the gateway names (``connection_lost``, ``not_delivered``)."""
        self.named = True
        self.span.set_attributes({"error.type": outcome, "mcp_gateway.outcome": outcome})
        self.span.set_status(StatusCode.ERROR)


def answered(span: Span, result: Any) -> None:
    """A result came back: a tool's own error (``isError``) and an ``input_required`` round are named."""
    if getattr(result, "is_error", False):
        span.set_attributes({"error.type": "tool_error", "mcp_gateway.outcome": "tool_error"})
        span.set_status(StatusCode.ERROR)
    elif getattr(result, "result_type", None) == "input_required":
        span.set_attribute("mcp_gateway.outcome", "input_required")
    else:
        span.set_attribute("mcp_gateway.outcome", "ok")


def failed(span: Span, exc: BaseException) -> None:
    """An error: its JSON-RPC code where it has one (``error.type``, ``rpc.response.status_code``). Messages stay
    out of spans: they may hold what the redactor would cut from a client's answer."""
    error = to_mcp_error(exc) if isinstance(exc, GatewayError) else exc
    if isinstance(error, MCPError):
        code = str(error.code)
        span.set_attributes({"error.type": code, "rpc.response.status_code": code, "mcp_gateway.outcome": "error"})
        span.set_status(StatusCode.ERROR)
    elif isinstance(exc, Exception):
        span.set_attributes({"error.type": type(exc).__qualname__, "mcp_gateway.outcome": "error"})
        span.set_status(StatusCode.ERROR)
    else:
        span.set_attribute("mcp_gateway.outcome", "cancelled")


def current_trace_id() -> str | None:
    """The trace id (32 hex digits) of the request being served in this context, for log lines; ``None`` when
    tracing is off or nothing is being traced here."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def carried_headers(meta: Mapping[str, Any] | None) -> dict[str, str]:
    """The trace context a request's ``_meta`` carries, as the HTTP headers of the same names."""
    if not meta:
        return {}
    return {key: value for key in TRACE_KEYS if isinstance(value := meta.get(key), str)}


def start_tracing(config: TracingConfig) -> Tracing | None:
    """The configured tracer, or ``None`` when traces are off."""
    if not config.enabled:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource({**config.resource, "service.name": config.service_name, "service.version": __version__})
    provider = TracerProvider(sampler=_sampler(config), resource=resource)
    for name in config.exporters:
        exporter: SpanExporter = _otlp(config) if name == "otlp" else ConsoleSpanExporter()
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=2048,
                schedule_delay_millis=config.batch_delay,
                max_export_batch_size=512,
                export_timeout_millis=config.timeout * 1000,
            )
        )
    return Tracing(provider)


def _otlp(config: TracingConfig) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise StartupError(
            "OTLP traces need the OTLP exporter: install mcp-gateway[otlp] (or set OTEL_TRACES_EXPORTER=console)"
        ) from None
    return OTLPSpanExporter(endpoint=config.endpoint, headers=dict(config.headers), timeout=config.timeout)


def _sampler(config: TracingConfig) -> Sampler:
    from opentelemetry.sdk.trace import sampling

    root: Sampler = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(config.ratio),
    }[config.sampler.removeprefix("parentbased_")]
    return sampling.ParentBased(root) if config.sampler.startswith("parentbased_") else root


def _attributes(method: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"mcp.method.name": method}
    if method == "tools/call":
        attributes["gen_ai.operation.name"] = "execute_tool"
    if params:
        named = _NAMED.get(method)
        if named is not None and isinstance(name := params.get("name"), str):
            attributes[named] = name
        elif isinstance(uri := params.get("uri"), str):
            attributes[_URI] = uri
    return attributes


def _parent(params: Mapping[str, Any] | None, headers: Mapping[str, str] | None) -> Context | None:
    """The caller's trace context: ``params._meta`` first (the MCP convention), else the HTTP headers; values that
    are not strings, or not valid W3C trace context, are ignored."""
    for source in ((params or {}).get("_meta"), headers):
        carrier = carried_headers(source) if isinstance(source, Mapping) else {}
        if "traceparent" in carrier:
            context = _W3C.extract(carrier)
            if trace.get_current_span(context).get_span_context().is_valid:
                return context
    return None
