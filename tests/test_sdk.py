"""The SDK internals ``gateway.sdk`` reaches, each checked against the installed SDK, so an upgrade that moves one fails
here naming the seam function to update. Run this file first after changing the ``mcp`` pin.

The SDK is inspected before ``gateway.sdk`` is imported (``seam()``), so a private name that is gone fails its own
test with its message; the seam's other tests then fail importing it, and the file is still collected.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
from importlib.metadata import version
from types import ModuleType
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError, types
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server
from mcp.server.connection import Connection
from mcp.server.session import ServerSession
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from starlette.routing import Route

pytestmark = pytest.mark.anyio
MCP = version("mcp")


def moved(what: str, seam: str) -> str:
    return f"mcp {MCP} no longer has {what}: update gateway.sdk.{seam}"


def seam() -> ModuleType:
    return importlib.import_module("gateway.sdk")


def manager() -> StreamableHTTPSessionManager:
    return StreamableHTTPSessionManager(app=Server("contract"), session_idle_timeout=60, max_sessions=7)


def test_a_server_session_keeps_the_connection_it_serves_a_request_of() -> None:
    connection = Connection(object(), protocol_version="2025-11-25")
    session = ServerSession(object(), connection)
    assert getattr(session, "_connection", None) is connection, moved("ServerSession._connection", "connection_of")
    assert seam().connection_of(session) is connection


def test_the_session_manager_keeps_its_sessions_and_their_owners_in_dicts_by_id() -> None:
    made = manager()
    instances, owners = getattr(made, "_server_instances", None), getattr(made, "_session_owners", None)
    assert isinstance(instances, dict), moved("StreamableHTTPSessionManager._server_instances", "session_entry")
    assert isinstance(owners, dict), moved("StreamableHTTPSessionManager._session_owners", "session_entry")
    assert made.max_sessions == 7 and made.session_idle_timeout == 60
    transport = StreamableHTTPServerTransport(mcp_session_id="s1", idle_timeout=60)
    instances["s1"] = transport
    assert seam().session_entry(made, "s1") == (transport, None)
    assert seam().session_entry(made, "s2") is None
    assert seam().session_count(made) == 1


async def test_the_session_manager_discards_a_session_by_id_and_transport() -> None:
    made = manager()
    discard = getattr(made, "_discard_session", None)
    assert discard is not None and inspect.iscoroutinefunction(discard), moved(
        "StreamableHTTPSessionManager._discard_session", "discard_session"
    )
    assert list(inspect.signature(discard).parameters) == ["session_id", "transport"], moved(
        "StreamableHTTPSessionManager._discard_session(session_id, transport)", "discard_session"
    )
    transport = StreamableHTTPServerTransport(mcp_session_id="s1", idle_timeout=60)
    made._server_instances["s1"] = transport
    await seam().discard_session(made, "s1", transport)
    assert transport.is_terminated and seam().session_count(made) == 0


async def test_a_sessions_transport_counts_idle_time_in_its_idle_scope() -> None:
    transport = StreamableHTTPServerTransport(mcp_session_id="s1", idle_timeout=60)
    assert hasattr(transport, "idle_scope"), moved("StreamableHTTPServerTransport.idle_scope", "restart_idle")
    sdk = seam()
    assert (sdk.idle_deadline(transport), sdk.idle_ending(transport)) == (math.inf, False)
    async with transport.connect():
        idle = transport.idle_scope
        assert isinstance(idle, anyio.CancelScope), moved("an idle_scope made by connect()", "restart_idle")
        idle.deadline = anyio.current_time() + 1
        sdk.restart_idle(transport, 60)
        assert sdk.idle_deadline(transport) > anyio.current_time() + 59
        idle.deadline = math.inf  # a request holds the session open
        sdk.restart_idle(transport, 60)
        assert sdk.idle_deadline(transport) == math.inf
        sdk.end_idle(transport)
        assert sdk.idle_ending(transport)


def test_a_server_runs_every_request_through_its_middleware_list() -> None:
    server = Server("contract")
    assert isinstance(getattr(server, "middleware", None), list), moved("Server.middleware", "replace_middleware")

    async def edge(ctx: Any, call_next: Any) -> Any:
        return await call_next(ctx)

    seam().replace_middleware(server, [edge])
    assert server.middleware == [edge]


def test_the_streamable_http_app_serves_its_endpoint_through_middleware_holding_the_next_as_app() -> None:
    app = Server("contract").streamable_http_app(streamable_http_path="/mcp")
    routes = [route for route in app.router.routes if isinstance(route, Route) and route.path == "/mcp"]
    wrapped: list[StreamableHTTPASGIApp] = []
    found = any(seam().wrap_endpoint(route, wrapped.append) for route in routes)
    assert found and len(wrapped) == 1, moved(
        "a StreamableHTTPASGIApp under the /mcp route's app chain", "wrap_endpoint"
    )


def test_the_modern_transport_keeps_its_sse_ping_interval_and_headers() -> None:
    modern = importlib.import_module("mcp.server._streamable_http_modern")
    interval, headers = getattr(modern, "_SSE_PING_INTERVAL", None), getattr(modern, "_SSE_HEADERS", None)
    assert isinstance(interval, float) and interval > 0, moved(
        "_streamable_http_modern._SSE_PING_INTERVAL", "SSE_PING_INTERVAL"
    )
    assert isinstance(headers, list) and (b"content-type", b"text/event-stream") in headers, moved(
        "_streamable_http_modern._SSE_HEADERS", "SSE_HEADERS"
    )
    assert (interval, headers) == (seam().SSE_PING_INTERVAL, seam().SSE_HEADERS)


def test_the_client_transport_streams_type_is_where_the_seam_takes_it_from() -> None:
    private = importlib.import_module("mcp.client._transport")
    assert hasattr(private, "TransportStreams"), moved("mcp.client._transport.TransportStreams", "TransportStreams")
    assert seam().TransportStreams is private.TransportStreams


def test_the_session_manager_admits_a_session_under_an_id_the_gateway_chose() -> None:
    made = manager()
    for name in ("_admit_session", "_serve_opening_request"):
        assert callable(getattr(made, name, None)), moved(f"StreamableHTTPSessionManager.{name}", "admit_session")
    for name in ("json_response", "event_store", "security_settings", "retry_interval", "session_idle_timeout"):
        assert hasattr(made, name), moved(f"StreamableHTTPSessionManager.{name}", "admit_session")
    made.max_sessions = 1
    transport = seam().admit_session(made, "sealed.one", None)
    assert transport is not None and transport.mcp_session_id == "sealed.one"
    assert seam().session_entry(made, "sealed.one") == (transport, None)
    assert seam().admit_session(made, "sealed.two", None) is None


async def test_a_restored_session_serves_requests_without_an_initialize() -> None:
    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[])

    made = StreamableHTTPSessionManager(app=Server("contract", on_list_tools=list_tools), json_response=True)
    assert hasattr(made, "_task_group") and hasattr(made, "_lifespan_state"), moved(
        "StreamableHTTPSessionManager._task_group/_lifespan_state", "restore_session"
    )
    params = types.InitializeRequestParams(
        protocol_version="2025-06-18",
        capabilities=types.ClientCapabilities(),
        client_info=types.Implementation(name="elsewhere", version="1"),
    )
    headers = {"Accept": "application/json, text/event-stream", "Mcp-Session-Id": "sealed.one"}
    headers["MCP-Protocol-Version"] = "2025-06-18"
    async with made.run():
        transport = seam().admit_session(made, "sealed.one", None)
        assert transport is not None
        connection = await seam().restore_session(made, transport, params, "2025-06-18")
        assert connection.initialize_accepted and connection.protocol_version == "2025-06-18"
        assert connection.client_params is not None and connection.client_params.client_info.name == "elsewhere"
        http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=made.handle_request), base_url="http://t")
        async with http:
            ping = await http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers)
            listed = await http.post("/", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers)
        assert ping.json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
        assert listed.json()["result"]["tools"] == []  # past the gate that refuses requests before initialize
        await seam().discard_session(made, "sealed.one", transport)


class Recording(httpx2.AsyncBaseTransport):
    """An HTTP transport that notes each request it passes on (its method, or the JSON-RPC method it posts) and
    each answer's status."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[str] = []
        self.statuses: list[int] = []
        self.session_ids: set[str] = set()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.sent.append(json.loads(request.content)["method"] if request.method == "POST" else request.method)
        self.session_ids.add(request.headers.get("mcp-session-id", ""))
        response = await self.inner.handle_async_request(request)
        self.statuses.append(response.status_code)
        return response


async def test_a_client_joins_a_session_opened_elsewhere_without_an_initialize_or_a_get_stream() -> None:
    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="kept", input_schema={"type": "object"})])

    made = StreamableHTTPSessionManager(app=Server("contract", on_list_tools=list_tools), json_response=True)
    given: list[str] = []

    async def remember(response: httpx2.Response) -> None:
        given.extend([response.headers["mcp-session-id"]] if "mcp-session-id" in response.headers else [])

    async with made.run():
        asgi = httpx2.ASGITransport(app=made.handle_request)
        opener = httpx2.AsyncClient(transport=asgi, event_hooks={"response": [remember]})
        async with opener, Client(streamable_http_client("http://t/", http_client=opener), mode="legacy") as first:
            result = first.session.initialize_result
            assert result is not None and given
            answer = result.model_dump(by_alias=True, mode="json", exclude_none=True)
            recording = Recording(asgi)
            joined_http = httpx2.AsyncClient(transport=seam().joined_session(recording, given[0], answer))
            transport = streamable_http_client("http://t/", http_client=joined_http, terminate_on_close=False)
            async with joined_http, Client(transport, mode="legacy") as joined:
                assert joined.session.initialize_result == result
                assert [tool.name for tool in (await joined.list_tools()).tools] == ["kept"]
            assert "initialize" not in recording.sent and "notifications/initialized" not in recording.sent
            assert "GET" not in recording.sent and "DELETE" not in recording.sent
            assert recording.session_ids == {given[0]}
            assert [tool.name for tool in (await first.list_tools()).tools] == ["kept"]  # the session goes on
        forgotten = Recording(asgi)
        joined_http = httpx2.AsyncClient(transport=seam().joined_session(forgotten, given[0], answer))
        transport = streamable_http_client("http://t/", http_client=joined_http, terminate_on_close=False)
        async with joined_http, Client(transport, mode="legacy") as late:
            with pytest.raises(MCPError):
                await late.session.send_ping()
        assert forgotten.statuses == [404]  # ended by its opener's DELETE: what the gateway takes for "forgotten"


class Ids(httpx2.AsyncBaseTransport):
    """An HTTP transport that notes the JSON-RPC id of each request it passes on."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.ids: list[object] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        message = json.loads(request.content) if request.method == "POST" else {}
        if "method" in message and "id" in message:
            self.ids.append(message["id"])
        return await self.inner.handle_async_request(request)


async def test_a_client_numbers_its_requests_after_a_prefix_and_gets_their_answers() -> None:
    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="kept", input_schema={"type": "object"})])

    made = StreamableHTTPSessionManager(app=Server("contract", on_list_tools=list_tools))
    async with made.run():
        recorded = Ids(httpx2.ASGITransport(app=made.handle_request))
        http = httpx2.AsyncClient(transport=recorded)
        async with http, Client(streamable_http_client("http://t/", http_client=http), mode="legacy") as client:
            assert recorded.ids == [1], moved("a client session counting its requests from 1", "number_requests")
            seam().number_requests(client, "copy-")
            assert [tool.name for tool in (await client.list_tools()).tools] == ["kept"]
            await client.session.send_ping()
            assert [tool.name for tool in (await client.list_tools()).tools] == ["kept"]
    assert recorded.ids == [1, "copy-1", "copy-2", "copy-3"], moved("JSONRPCDispatcher._allocate_id", "number_requests")
