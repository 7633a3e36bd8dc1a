"""The stateless fast path: 2026 tools/call and cached list pages answered without the SDK's layers, as it would.

Over real sockets against the whole stack (answers, error translation, every rejection left to the SDK), and
in process for what needs a clock or a disconnect (the SSE deferral window, cancellation, in-flight counting).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest
from mcp import types

from gateway.front import fastpath
from gateway.front.app import build_app
from gateway.front.relay import NoBackChannel
from tests.support.inproc import READER, running_gateway
from tests.support.procs import Processes
from tests.support.stack import Stack
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
VERSION = "2026-07-28"
ACCEPT = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    procs = Processes()
    try:
        yield Stack(tmp_path_factory.mktemp("fast"), procs).start()
    finally:
        procs.stop_all()


def call(name: str, arguments: dict[str, Any], client: str = "probe", request_id: Any = 7) -> dict[str, Any]:
    meta = {
        types.PROTOCOL_VERSION_META_KEY: VERSION,
        types.CLIENT_CAPABILITIES_META_KEY: {},
        types.CLIENT_INFO_META_KEY: {"name": client, "version": "1"},
    }
    params = {"name": name, "arguments": arguments, "_meta": meta}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def listing(client: str = READER, cursor: str | None = None) -> dict[str, Any]:
    message = call("x", {}, client)
    params = {"_meta": message["params"]["_meta"], **({"cursor": cursor} if cursor else {})}
    return {"jsonrpc": "2.0", "id": "list-1", "method": "tools/list", "params": params}


def headers_for(message: dict[str, Any], **extra: str) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": ACCEPT, "mcp-protocol-version": VERSION}
    headers["mcp-method"] = message["method"]
    if message["method"] == "tools/call":
        headers["mcp-name"] = message["params"]["name"]
    return {**headers, **extra}


async def post(stack: Stack, message: Any, headers: dict[str, str]) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=30) as client:
        return await client.post(stack.url, content=json.dumps(message), headers=headers)


async def test_a_stateless_call_gets_the_backends_result_stamped_by_the_gateway(stack: Stack) -> None:
    message = call("ops/lookup_inventory", {"sku": "SRV-R740-01"})
    response = await post(stack, message, headers_for(message))
    body = response.json()
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert body["id"] == 7 and body["jsonrpc"] == "2.0"
    result = body["result"]
    assert result["resultType"] == "complete" and result.get("isError") is not True
    assert result["_meta"][types.SERVER_INFO_META_KEY]["name"] == "mcp-gateway"
    assert "SRV-R740-01" in json.dumps(result["content"])


async def test_gateway_errors_become_json_rpc_errors_with_the_sdks_http_status(stack: Stack) -> None:
    message = call("ops/nope", {})
    response = await post(stack, message, headers_for(message))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == types.INVALID_PARAMS and error["data"] == {"tool": "ops/nope"}
    assert "ops/nope" in error["message"]


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"mcp-name": "hr/search"}, 400, types.HEADER_MISMATCH),
        ({"mcp-method": "tools/list"}, 400, types.HEADER_MISMATCH),
        ({"accept": "text/html"}, 406, None),
        ({"content-type": "text/plain"}, 400, None),
    ],
)
async def test_requests_the_sdk_would_refuse_are_refused_as_it_refuses_them(
    stack: Stack, change: dict[str, str], status: int, code: int | None
) -> None:
    message = call("ops/search", {"query": "disk"})
    response = await post(stack, message, headers_for(message, **change))
    assert response.status_code == status
    if code is not None:
        assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    "body",
    [
        [call("ops/search", {"query": "x"})],
        {"jsonrpc": "2.0", "id": True, "method": "tools/call", "params": {"name": "ops/search"}},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "ops/search", "arguments": {}}},
    ],
)
async def test_malformed_bodies_get_the_sdks_json_rpc_errors(stack: Stack, body: Any) -> None:
    response = await post(stack, body, headers_for(call("ops/search", {})))
    assert response.status_code == 400
    assert response.json()["error"]["code"] in (types.INVALID_REQUEST, types.INVALID_PARAMS)


async def test_list_pages_come_back_the_same_each_time_and_per_name_style(stack: Stack) -> None:
    pages = [await post(stack, listing(), headers_for(listing())) for _ in range(3)]
    strict = await post(stack, listing("claude-ai"), headers_for(listing("claude-ai")))
    assert all(p.status_code == 200 for p in pages)
    assert pages[0].content == pages[1].content == pages[2].content
    names = [t["name"] for t in pages[0].json()["result"]["tools"]]
    assert "ops/search" in names and names == sorted(names)
    assert "ops__search" in [t["name"] for t in strict.json()["result"]["tools"]]
    assert pages[0].json()["result"]["resultType"] == "complete"


class Exchange:
    """One ASGI request driven by hand: the body, then a disconnect when the test says so."""

    def __init__(self, message: dict[str, Any]) -> None:
        self.body = json.dumps(message).encode()
        headers = headers_for(message, host="127.0.0.1:8000")
        self.scope = {
            "type": "http", "method": "POST", "path": "/mcp", "raw_path": b"/mcp", "root_path": "",
            "scheme": "http", "query_string": b"", "http_version": "1.1",
            "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        }  # fmt: skip
        self.sent: list[dict[str, Any]] = []
        self.gone = anyio.Event()
        self._read = False

    async def receive(self) -> dict[str, Any]:
        if not self._read:
            self._read = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def text(self) -> str:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body").decode()


async def test_a_slow_call_in_sse_mode_turns_into_a_stream_with_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastpath, "SSE_DEFERRAL", 0.2)
    async with running_gateway({"toy": build("toy")}) as gw:
        exchange = Exchange(call("toy/slow", {"seconds": 0.5}))
        with anyio.fail_after(10):
            await build_app(gw)(exchange.scope, exchange.receive, exchange.send)  # type: ignore[arg-type]
    start = exchange.sent[0]
    assert start["status"] == 200 and (b"content-type", b"text/event-stream") in start["headers"]
    events = exchange.text.split("\r\n\r\n")
    assert events[0] == ": ping"
    answer = json.loads(events[-2].split("data: ", 1)[1])
    assert answer["result"]["content"][0]["text"] == "done"


async def test_a_client_that_goes_away_cancels_its_call_and_the_call_counts_as_in_flight_until_then() -> None:
    async with running_gateway({"toy": build("toy")}) as gw:
        exchange = Exchange(call("toy/slow", {"seconds": 30}))
        app = build_app(gw)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(app, exchange.scope, exchange.receive, exchange.send)
                while gw.inflight.count == 0:
                    await anyio.sleep(0.01)
                exchange.gone.set()
            cancelled = await gw.router.call_tool("toy/cancellations", {})
        assert gw.inflight.count == 0
    assert cancelled.structured_content == {"result": 1}


async def test_the_stateless_sink_refuses_backend_requests_as_the_relay_does_for_a_2026_client() -> None:
    sink = NoBackChannel(types.ClientCapabilities(elicitation=types.ElicitationCapability()))

    await sink.notify({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}})
    declared = await sink.request({"jsonrpc": "2.0", "id": 1, "method": "elicitation/create", "params": {}})
    undeclared = await sink.request({"jsonrpc": "2.0", "id": 2, "method": "roots/list"})
    unknown = await sink.request({"jsonrpc": "2.0", "id": 3, "method": "tools/list"})

    assert declared["error"]["code"] == types.INVALID_REQUEST and "no back-channel" in declared["error"]["message"]
    assert undeclared["error"]["code"] == types.INVALID_REQUEST and "did not declare" in undeclared["error"]["message"]
    assert unknown["error"]["code"] == types.METHOD_NOT_FOUND
