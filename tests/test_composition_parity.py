"""A virtual server does what ``/mcp`` does: list changes, resource subscriptions, policy and its own access rule,
audit, metrics and traces (the gateway's own tools' too), sessions ending, and the fast path; and tool search
answers any query without harming the session.

In process, each gateway's HTTP app on a real loopback socket, with the SDK's clients of both eras. The server
``desk`` shows all of ``ops``, two of ``hr``'s tools (``hr/echo`` renamed ``say``, ``hr/search``) and none of
``hr``'s resources, the composite ``echo_both`` and the meta tools.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError, types
from mcp.client.streamable_http import streamable_http_client
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.types import Receive, Scope, Send

from gateway.config import BackendConfig
from gateway.core import Gateway
from gateway.front.app import build_app, server_path
from gateway.security.guard import OWN
from gateway.telemetry import metrics
from gateway.telemetry.tracing import Tracing
from tests.support.inproc import READER, config_for, serving_app
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ERAS = ["legacy", "auto"]
WAIT = 10.0
VERSION = "2026-07-28"
ALICE, BOB, CAROL = "alice-key-0123456789", "bob-key-0123456789", "carol-key-0123456789"
ECHO_BOTH = {
    "name": "echo_both",
    "description": "Echo through ops, then search hr for what came back.",
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    "steps": {
        "first": {"tool": "ops/echo", "arguments": {"text": {"$ref": "input.text"}}},
        "second": {"tool": "hr/search", "arguments": {"query": {"$ref": "steps.first.result"}}},
    },
    "result": {"first": {"$ref": "steps.first.result"}, "second": {"$ref": "steps.second.result"}},
}
DESK = {
    "backends": ["ops"],
    "tools": ["hr/echo", "hr/search"],
    "composites": ["echo_both"],
    "overrides": {"hr/echo": {"name": "say"}},
    "search": {"enabled": True},
}
DESK_URL = server_path("desk")


@asynccontextmanager
async def gateway_with(tracing: Tracing | None = None, **settings: Any) -> AsyncIterator[Gateway]:
    """``ops`` and ``hr`` (fresh toy backends), the composite and the ``desk`` server beside ``settings``."""
    backends = {"ops": build("ops"), "hr": build("hr")}

    async def connect(config: BackendConfig, stack: AsyncExitStack, hooks: Any) -> Any:
        return backends[config.name]

    settings = {"composites": [ECHO_BOTH], "servers": {"desk": DESK}, **settings}
    async with Gateway(config_for({"ops": "ops", "hr": "hr"}, **settings), connect, tracing=tracing) as gateway:
        yield gateway


@asynccontextmanager
async def served(tracing: Tracing | None = None, **settings: Any) -> AsyncIterator[tuple[Gateway, str]]:
    """The gateway's HTTP app on a loopback socket; yields it and the base URL."""
    async with gateway_with(tracing, **settings) as gw, serving_app(build_app(gw), gw.config) as port:
        yield gw, f"http://127.0.0.1:{port}"


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


class Heard:
    """The notifications one client got, with a way to wait for the next of a kind."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._arrived = anyio.Event()

    async def handle(self, message: Any) -> None:
        self.messages.append(message)
        self._arrived.set()

    def of(self, kind: type[Any]) -> list[Any]:
        return [m for m in self.messages if isinstance(m, kind)]

    async def wait(self, kind: type[Any], count: int = 1) -> list[Any]:
        with anyio.fail_after(WAIT):
            while len(self.of(kind)) < count:
                self._arrived = anyio.Event()
                await self._arrived.wait()
        return self.of(kind)


@asynccontextmanager
async def connected(url: str, mode: str, heard: Heard | None = None, token: str | None = None) -> AsyncIterator[Client]:
    """An SDK client of ``mode`` over streamable HTTP that reads canonical names."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    handler = heard.handle if heard is not None else None
    async with httpx2.AsyncClient(headers=headers) as session:
        transport = streamable_http_client(url, http_client=session)
        info = types.Implementation(name=READER, version="1.0")
        async with Client(transport, mode=mode, client_info=info, message_handler=handler) as client:  # type: ignore[arg-type]
            yield client


# -- list changes --------------------------------------------------------------------------------------------------


async def test_a_2025_session_of_a_virtual_server_hears_on_its_get_stream_that_a_backend_added_a_tool() -> None:
    heard = Heard()
    async with served() as (_, base), connected(base + DESK_URL, "legacy", heard) as desk:
        before = {t.name for t in (await desk.list_tools()).tools}
        await desk.call_tool("ops/add_tool", {"tool_name": "fresh"})
        await heard.wait(types.ToolListChangedNotification)
        after = {t.name for t in (await desk.list_tools()).tools}
        added = await desk.call_tool("ops/fresh", {})
    assert "ops/fresh" not in before and "ops/fresh" in after
    assert text(added) == "I am fresh"


async def test_a_2026_listen_stream_of_a_virtual_server_hears_that_a_backend_added_a_tool() -> None:
    async with served() as (_, base), connected(base + DESK_URL, "auto") as desk:
        async with desk.listen(tools_list_changed=True) as subscription:
            await desk.call_tool("ops/add_tool", {"tool_name": "fresh"})
            with anyio.fail_after(WAIT):
                event = await subscription.__anext__()
        names = {t.name for t in (await desk.list_tools()).tools}
    assert type(event).__name__ == "ToolsListChanged"
    assert "ops/fresh" in names


# -- resource subscriptions ----------------------------------------------------------------------------------------


async def test_a_2025_session_subscribes_hears_and_unsubscribes_through_a_virtual_server() -> None:
    heard = Heard()
    async with served() as (_, base), connected(base + DESK_URL, "legacy", heard) as desk:
        await desk.subscribe_resource("ops+toy://about")
        await desk.subscribe_resource("ops+toy://notes/1")
        await desk.call_tool("ops/touch", {"uri": "toy://about"})
        await heard.wait(types.ResourceUpdatedNotification)
        await desk.unsubscribe_resource("ops+toy://about")
        await desk.call_tool("ops/touch", {"uri": "toy://about"})  # heard by nobody now
        await desk.call_tool("ops/touch", {"uri": "toy://notes/1"})
        updates = await heard.wait(types.ResourceUpdatedNotification, 2)
    assert [str(u.params.uri) for u in updates] == ["ops+toy://about", "ops+toy://notes/1"]


async def test_a_2026_listen_stream_hears_a_resource_it_names_through_a_virtual_server() -> None:
    heard = Heard()
    async with served() as (_, base), connected(base + DESK_URL, "auto", heard) as desk:
        wanted = ["ops+toy://about", "hr+toy://about"]
        async with desk.listen(resource_subscriptions=wanted) as subscription:
            honored = subscription.honored.resource_subscriptions
            await desk.call_tool("ops/touch", {"uri": "toy://about"})
            updates = await heard.wait(types.ResourceUpdatedNotification)
    assert honored == ["ops+toy://about"]  # the server does not show hr's resources
    assert [str(u.params.uri) for u in updates] == ["ops+toy://about"]


@pytest.mark.parametrize("mode", ERAS)
async def test_a_resource_the_server_does_not_select_is_unknown_there_and_readable_on_mcp(mode: str) -> None:
    async with served() as (_, base):
        async with connected(base + DESK_URL, mode) as desk:
            listed = [str(r.uri) for r in (await desk.list_resources()).resources]
            mine = await desk.read_resource("ops+toy://about")
            with pytest.raises(MCPError) as unread:
                await desk.read_resource("hr+toy://about")
            unsubscribed = None
            if mode == "legacy":
                with pytest.raises(MCPError) as unsubscribed:
                    await desk.subscribe_resource("hr+toy://about")
        async with connected(base + "/mcp", mode) as main:
            theirs = await main.read_resource("hr+toy://about")
    assert "ops+toy://about" in listed and "hr+toy://about" not in listed
    assert mine.contents[0].text == "ops server"  # type: ignore[union-attr]
    assert unread.value.code == types.INVALID_PARAMS
    assert unsubscribed is None or unsubscribed.value.code == types.INVALID_PARAMS
    assert theirs.contents[0].text == "hr server"  # type: ignore[union-attr]


# -- policy and access ---------------------------------------------------------------------------------------------

DENY_OPS_SEARCH = {"policy": {"rules": [{"principals": ["*"], "allow": ["*"], "deny": ["ops/search"]}]}}


@pytest.mark.parametrize("mode", ERAS)
async def test_a_tool_the_policy_denies_is_neither_listed_found_nor_called_on_a_virtual_server(mode: str) -> None:
    async with served(security=DENY_OPS_SEARCH) as (_, base), connected(base + DESK_URL, mode) as desk:
        listed = {t.name for t in (await desk.list_tools()).tools}
        found = await desk.call_tool("search_tools", {"query": "search the toy records", "limit": 50})
        with pytest.raises(MCPError) as direct:
            await desk.call_tool("ops/search", {"query": "x"})
        with pytest.raises(MCPError) as through_meta:
            await desk.call_tool("call_tool", {"name": "ops/search", "arguments": {"query": "x"}})
        allowed = await desk.call_tool("hr/search", {"query": "x"})
    assert found.structured_content is not None
    hits = [hit["name"] for hit in found.structured_content["tools"]]
    assert "hr/search" in hits and "ops/search" not in hits
    assert "hr/search" in listed and "ops/echo" in listed and "ops/search" not in listed
    assert direct.value.code == through_meta.value.code == types.INVALID_PARAMS
    assert allowed.structured_content == {"result": ["hr:x"]}


ACCESS = {
    "auth": {
        "api_keys": [
            {"principal": "alice", "key": ALICE, "roles": ["oncall"]},
            {"principal": "bob", "key": BOB},
            {"principal": "carol", "key": CAROL, "roles": ["finance"]},
        ]
    },
    "policy": {"rules": [{"principals": ["*"], "allow": ["*"]}]},
}


@pytest.mark.parametrize("mode", ERAS)
async def test_the_servers_access_rule_admits_by_role_or_principal_and_refuses_anyone_else(mode: str) -> None:
    servers = {"desk": {**DESK, "access": {"roles": ["oncall"], "principals": ["bob"]}}}
    listed: dict[str, set[str]] = {}
    async with served(security=ACCESS, servers=servers) as (_, base):
        for who, token in (("alice", ALICE), ("bob", BOB)):
            async with connected(base + DESK_URL, mode, token=token) as desk:
                listed[who] = {t.name for t in (await desk.list_tools()).tools}
        async with connected(base + "/mcp", mode, token=CAROL) as main:
            carol_on_main = {t.name for t in (await main.list_tools()).tools}
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        headers = {"accept": "application/json, text/event-stream", "authorization": f"Bearer {CAROL}"}
        async with httpx2.AsyncClient() as session:
            refused = await session.post(base + DESK_URL, json=body, headers=headers)
            missing = await session.post(base + server_path("nobody"), json=body, headers=headers)
    assert "say" in listed["alice"] and listed["alice"] == listed["bob"]
    assert "ops/echo" in carol_on_main
    assert refused.status_code == missing.status_code == 404 and refused.text == missing.text


# -- audit and metrics ---------------------------------------------------------------------------------------------


def requests_counted(name: str, backend: str, era: str) -> float:
    labels = {"method": "tools/call", "name": name, "backend": backend, "era": era, "outcome": "ok", "code": ""}
    return metrics.REGISTRY.get_sample_value("mcp_gateway_requests_total", labels) or 0.0


def audited(path: Path) -> list[tuple[str, str | None, str]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if '"kind"' in line]
    return [(line["name"], line["backend"], line["outcome"]) for line in lines if line.get("kind") == "tool"]


@pytest.mark.parametrize(("mode", "era"), [("legacy", "2025"), ("auto", "2026")])
async def test_a_call_on_a_virtual_server_is_audited_and_counted_as_on_mcp(tmp_path: Path, mode: str, era: str) -> None:
    audit = tmp_path / "audit.jsonl"
    counted: dict[str, float] = {}
    async with served(security={"audit": {"file": str(audit)}}) as (_, base):
        for url in ("/mcp", DESK_URL):
            before = requests_counted("hr/echo", "hr", era)
            async with connected(base + url, mode) as client:
                await client.call_tool("say" if url == DESK_URL else "hr/echo", {"text": url})
            counted[url] = requests_counted("hr/echo", "hr", era) - before
    # The renamed tool is recorded and counted under the catalogue's name, as the same call on /mcp is.
    assert audited(audit) == [("hr/echo", "hr", "ok"), ("hr/echo", "hr", "ok")]
    assert counted == {"/mcp": 1.0, DESK_URL: 1.0}


async def test_each_step_of_a_composite_on_a_virtual_server_writes_its_own_audit_line(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    before = requests_counted("echo_both", OWN, "2026")
    async with (
        served(security={"audit": {"file": str(audit)}}) as (_, base),
        connected(base + DESK_URL, "auto") as desk,
    ):
        result = await desk.call_tool("echo_both", {"text": "hi"})
    assert result.structured_content == {"first": "hi", "second": ["hr:hi"]}
    assert audited(audit) == [("ops/echo", "ops", "ok"), ("hr/search", "hr", "ok"), ("echo_both", OWN, "ok")]
    assert requests_counted("echo_both", OWN, "2026") == before + 1


# -- tracing -------------------------------------------------------------------------------------------------------


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    found = InMemorySpanExporter()
    yield found
    found.shutdown()


@pytest.mark.parametrize("mode", ERAS)
async def test_a_composite_call_is_a_server_span_with_a_client_span_per_step(
    exporter: InMemorySpanExporter, mode: str
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with served(Tracing(provider)) as (_, base), connected(base + DESK_URL, mode) as desk:
        await desk.call_tool("echo_both", {"text": "hi"})
    finished = exporter.get_finished_spans()
    servers = [s for s in finished if s.name == "tools/call echo_both"]
    assert len(servers) == 1, [s.name for s in finished]
    server = servers[0]
    steps = [s for s in finished if s.parent is not None and s.parent.span_id == server.context.span_id]
    assert server.kind is SpanKind.SERVER
    assert sorted((s.name, s.kind, (s.attributes or {}).get("mcp_gateway.backend")) for s in steps) == [
        ("tools/call echo", SpanKind.CLIENT, "ops"),
        ("tools/call search", SpanKind.CLIENT, "hr"),
    ]
    assert {s.context.trace_id for s in steps} == {server.context.trace_id}


# -- sessions and the fast path ------------------------------------------------------------------------------------

ACCEPT = "application/json, text/event-stream"


async def test_a_2025_sessions_delete_on_a_virtual_server_ends_it() -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": READER, "version": "1"}},
    }
    headers = {"accept": ACCEPT, "content-type": "application/json"}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with served() as (_, base), httpx2.AsyncClient(base_url=base, timeout=WAIT) as http:
        opened = await http.post(DESK_URL, json=initialize, headers=headers)
        session = {**headers, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        await http.post(DESK_URL, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
        alive = await http.post(DESK_URL, json=listing, headers=session)
        ended = await http.delete(DESK_URL, headers=session)
        after = await http.post(DESK_URL, json=listing, headers=session)
    assert opened.status_code == 200 and alive.status_code == 200 and "say" in alive.text
    assert ended.status_code == 200
    assert after.status_code == 404


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The method of every request that reached an SDK endpoint (``/mcp`` or a virtual server's)."""
    seen: list[str] = []
    original = StreamableHTTPASGIApp.__call__

    async def counted(self: StreamableHTTPASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["method"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(StreamableHTTPASGIApp, "__call__", counted)
    yield seen


META = {
    types.PROTOCOL_VERSION_META_KEY: VERSION,
    types.CLIENT_CAPABILITIES_META_KEY: {},
    types.CLIENT_INFO_META_KEY: {"name": READER, "version": "1"},
}
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("ops/echo", {"text": "plain"}),
    ("say", {"text": "renamed"}),
    ("echo_both", {"text": "composite"}),
    ("search_tools", {"query": "echo the text", "limit": 3}),
    ("call_tool", {"name": "say", "arguments": {"text": "meta"}}),
    ("hr/echo", {"text": "renamed away"}),
    ("hr/fail", {}),
    ("ops/fail", {}),
]


def message(method: str, params: dict[str, Any], request_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**params, "_meta": META}}


def headers_for(body: dict[str, Any]) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": ACCEPT, "mcp-protocol-version": VERSION}
    headers["mcp-method"] = body["method"]
    if body["method"] == "tools/call":
        headers["mcp-name"] = body["params"]["name"]
    return headers


async def walk(post: Callable[[dict[str, Any]], Any], method: str) -> list[bytes]:
    pages: list[bytes] = []
    cursor: str | None = None
    while True:
        answer = await post(message(method, {"cursor": cursor} if cursor else {}, len(pages)))
        pages.append(answer.content)
        cursor = json.loads(answer.content)["result"].get("nextCursor")
        if cursor is None:
            return pages


async def desk_answers(fast_path: bool, sdk: list[str]) -> tuple[list[bytes], dict[str, list[bytes]], int]:
    """Every call of ``CALLS`` and every list's pages (walked twice: the SDK path shapes each page once) on
    ``desk`` over 2026 stateless HTTP, and how many of the calls and second walks reached the SDK."""
    settings = {"fast_path": fast_path, "json_response": True, "list_page_size": 3}
    async with served(**settings) as (_, base), httpx2.AsyncClient(base_url=base, timeout=WAIT) as http:

        async def post(body: dict[str, Any]) -> httpx2.Response:
            return await http.post(DESK_URL, content=json.dumps(body), headers=headers_for(body))

        methods = ("tools/list", "prompts/list", "resources/list", "resources/templates/list")
        for method in methods:
            await walk(post, method)
        reached = len(sdk)
        pages = {method: await walk(post, method) for method in methods}
        calls = [(await post(message("tools/call", {"name": n, "arguments": a}, i))).content
                 for i, (n, a) in enumerate(CALLS)]  # fmt: skip
        return calls, pages, len(sdk) - reached


async def test_the_fast_path_serves_a_virtual_servers_2026_calls_and_pages_as_the_sdk_path_does(
    sdk: list[str],
) -> None:
    fast = await desk_answers(True, sdk)
    slow = await desk_answers(False, sdk)
    assert fast[2] == 0 and slow[2] > 0
    assert fast[1] == slow[1]
    assert json.loads(fast[1]["tools/list"][0])["result"]["tools"], "the server lists tools"
    assert fast[0] == slow[0]
    outcomes = [json.loads(body) for body in fast[0]]
    assert [("error" in o) or o["result"].get("isError", False) for o in outcomes] == [
        False, False, False, False, False, True, True, True,
    ]  # fmt: skip


# -- any query -----------------------------------------------------------------------------------------------------

MAX_BODY = 64 * 1024
QUERIES = [
    "",
    " ",
    "echo",
    'NEAR("echo" "text") OR ops:* "unbalanced',
    "echo AND NOT search OR (records",
    "{title}: echo* ^echo -search +x",
    "*",
    '"',
    "événement 事件 🧰 \u202e\u200b",
    "\x00\x01\x1b[31m\x7f\n\t\r",
    "the a of for and",
    "in " * 20_000,
    "x" * (MAX_BODY - 2_000),
    " ".join(f"word{n}" for n in range(5_000)),
]


@pytest.mark.parametrize("mode", ERAS)
async def test_any_search_query_answers_a_result_in_bounded_time_and_the_session_keeps_working(mode: str) -> None:
    limits = {"limits": {"max_body_bytes": MAX_BODY}}
    async with served(security=limits, search={"enabled": True}) as (_, base):
        for url in ("/mcp", DESK_URL):
            async with connected(base + url, mode) as client:
                for query in QUERIES:
                    with anyio.fail_after(WAIT):
                        found = await client.call_tool("search_tools", {"query": query})
                    assert found.is_error is not True, (url, query[:40])
                    assert found.structured_content is not None and isinstance(found.structured_content["tools"], list)
                still = await client.call_tool("ops/echo", {"text": "still here"})
                hits = await client.call_tool("search_tools", {"query": "echo the text back"})
            assert text(still) == "still here"
            assert hits.structured_content is not None and hits.structured_content["tools"]


async def test_a_query_past_the_body_limit_is_refused_by_http_and_the_session_keeps_working() -> None:
    limits = {"limits": {"max_body_bytes": MAX_BODY}}
    async with served(security=limits) as (_, base), connected(base + DESK_URL, "legacy") as desk:
        with pytest.raises(MCPError):
            with anyio.fail_after(WAIT):
                await desk.call_tool("search_tools", {"query": "x" * (MAX_BODY + 1)})
        still = await desk.call_tool("search_tools", {"query": "echo"})
    assert still.structured_content is not None and still.structured_content["tools"]


async def test_a_query_no_sdk_client_would_send_answers_a_result_too() -> None:
    """A lone surrogate is valid JSON text (``\\ud800``) but no string a client library encodes."""
    query = '"\\ud800 lone \\udfff surrogates \\u0000"'
    body = message("tools/call", {"name": "search_tools", "arguments": {"query": "QUERY"}}, 1)
    raw = json.dumps(body).replace('"QUERY"', query)
    async with served(json_response=True) as (_, base), httpx2.AsyncClient(base_url=base, timeout=WAIT) as http:
        answer = await http.post(DESK_URL, content=raw, headers=headers_for(body))
        after = await http.post(DESK_URL, json=body, headers=headers_for(body))
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["structuredContent"] == {"tools": []}
    assert after.status_code == 200
