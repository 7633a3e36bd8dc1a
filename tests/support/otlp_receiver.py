"""A small OTLP/HTTP trace receiver on loopback: it decodes each protobuf export request with the
``opentelemetry-proto`` bindings and keeps the spans, for tests that run a real gateway with traces on."""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from typing import Any

import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.procs import free_port, wait_until

_PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class Span:
    """One received span, ids as lowercase hex."""

    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    error: bool


class OtlpReceiver:
    """``with OtlpReceiver() as receiver:`` serves ``receiver.endpoint`` in a thread until the block ends."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/v1/traces", self._export, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="critical", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        wait_until(lambda: self._server.started, timeout=10, what="the OTLP receiver")
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def received(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    async def _export(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if request.headers.get("content-type") != _PROTOBUF:
            return Response(status_code=415)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        found = []
        for resource in export.resource_spans:
            service = next((a.value.string_value for a in resource.resource.attributes if a.key == "service.name"), "")
            for scope in resource.scope_spans:
                found += [_span(service, span) for span in scope.spans]
        with self._lock:
            self.spans += found
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type=_PROTOBUF)


def _span(service: str, span: Any) -> Span:
    attributes = {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in span.attributes}
    return Span(
        service=service,
        name=span.name,
        kind=span.kind,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(),
        attributes=attributes,
        error=span.status.code == span.status.STATUS_CODE_ERROR,
    )
