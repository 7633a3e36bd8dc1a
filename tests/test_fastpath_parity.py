"""The fast path answers exactly as the SDK path does: the same requests through a gateway with ``fast_path`` on and
one with it off, compared by status, the headers a client reads and the body bytes (``tools/call`` in both response
modes and past the SSE deferral window; 2026 list pages; 2025 sessions' pages are compared in test_session_lists).

In process (the gateway's whole ASGI app), with every request that reaches the SDK's ``/mcp`` endpoint counted, so
the comparison cannot pass by both gateways taking the SDK path.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from mcp import types
from mcp.server import MCPServer
from mcp.server import _streamable_http_modern as modern
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from gateway.errors import RATE_LIMITED
from gateway.front import fastpath
from gateway.front.server import LISTS
from gateway.security.guard import Guard
from tests.support.inproc import http, running_gateway
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
VERSION = "2026-07-28"
ALICE = "alice-key-0123456789"
LARGE = 256 * 1024
SECURITY = {
    "auth": {"api_keys": [{"principal": "alice", "key": ALICE}]},
    "policy": {"rules": [{"principals": ["alice"], "allow": ["toy/*"], "deny": ["toy/whoami"]}]},
    "limits": {"per_tool": {"toy/cancellations": {"rate": 0.001, "burst": 1}}},
    "validate_arguments": True,  # so that "invalid arguments" is the gateway's refusal on both paths
}
# What a client reads of a response besides its body.
READ_HEADERS = ("content-type", "content-length", "cache-control", "mcp-session-id", "retry-after", "www-authenticate")
Seen = tuple[int, dict[str, str], bytes]
Post = Callable[[dict[str, Any]], Awaitable[httpx2.Response]]


def backend() -> MCPServer:
    """The toy backend, with a tool that fails as a tool (``isError``) and one with a large result."""
    server = build("toy")

    @server.tool(description="Fail inside the tool.")
    def broken() -> str:
        raise ToolError("broken on purpose")

    @server.tool(description="A large text.")
    def large(size: int) -> str:
        return "é" * size

    return server


META = {
    types.PROTOCOL_VERSION_META_KEY: VERSION,
    types.CLIENT_CAPABILITIES_META_KEY: {},
    types.CLIENT_INFO_META_KEY: {"name": "probe", "version": "1"},
}


def call(name: str, arguments: dict[str, Any], request_id: int) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments, "_meta": META}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def listing(method: str, cursor: str | None, request_id: int) -> dict[str, Any]:
    params = {"_meta": META, **({"cursor": cursor} if cursor else {})}
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


# Each call, and what it must come to: a result (``isError`` false or true) or a JSON-RPC error code.
CALLS: list[tuple[str, str, dict[str, Any], bool | int]] = [
    ("structured", "toy/search", {"query": "disks"}, False),
    ("links and embedded resources", "toy/linked", {}, False),
    ("tool error", "toy/broken", {}, True),
    ("backend error", "toy/fail", {}, -32099),
    ("unknown tool", "toy/nope", {}, types.INVALID_PARAMS),
    ("invalid arguments", "toy/echo", {"text": 7}, types.INVALID_PARAMS),
    ("denied tool", "toy/whoami", {}, types.INVALID_PARAMS),
    ("within the rate", "toy/cancellations", {}, False),
    ("rate limited", "toy/cancellations", {}, RATE_LIMITED),
    ("non-ascii", "toy/echo", {"text": "café crème ☕ 日本語 \u2028"}, False),
    ("large", "toy/large", {"size": LARGE}, False),
]


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The method of every request that reached the SDK's ``/mcp`` endpoint."""
    seen: list[str] = []
    original = StreamableHTTPASGIApp.__call__

    async def counted(self: StreamableHTTPASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["method"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(StreamableHTTPASGIApp, "__call__", counted)
    yield seen


@asynccontextmanager
async def gateway(fast_path: bool, json_response: bool, **settings: Any) -> AsyncIterator[Post]:
    """A gateway in front of a fresh toy backend (as alice, under ``SECURITY`` unless ``settings`` say otherwise),
    and a way to post one request to it."""
    servers = {"toy": backend()}
    settings = {"security": SECURITY, "json_response": json_response, "fast_path": fast_path, **settings}
    token = {"authorization": f"Bearer {ALICE}"} if settings["security"] is SECURITY else {}
    async with running_gateway(servers, **settings) as gw, http(gw, **token) as client:

        async def post(message: dict[str, Any]) -> httpx2.Response:
            headers = {
                "content-type": "application/json",
                "accept": "application/json, text/event-stream",
                "mcp-protocol-version": VERSION,
                "mcp-method": message["method"],
            }
            if message["method"] == "tools/call":
                headers["mcp-name"] = message["params"]["name"]
            return await client.post("/mcp", content=json.dumps(message), headers=headers)

        yield post


def seen(response: httpx2.Response) -> Seen:
    """Status, the headers a client reads, and the body; a rate-limit refusal's ``retryAfter`` counts down
    between one gateway's answer and the other's, so it is replaced by its type (and the body's length, which its
    digits change, by that of the normalised body)."""
    read = {key: response.headers[key] for key in READ_HEADERS if key in response.headers}
    body = response.content
    answer = json.loads(body) if response.headers.get("content-type") == "application/json" else None
    if isinstance(answer, dict) and answer.get("error", {}).get("code") == RATE_LIMITED:
        answer["error"]["data"]["retryAfter"] = type(answer["error"]["data"]["retryAfter"]).__name__
        body = json.dumps(answer, separators=(",", ":")).encode()
        read["content-length"] = str(len(body))
    return response.status_code, read, body


async def answers(fast_path: bool, json_response: bool) -> list[Seen]:
    async with gateway(fast_path, json_response) as post:
        return [seen(await post(call(name, arguments, at))) for at, (_, name, arguments, _) in enumerate(CALLS)]


def outcome(answer: Seen) -> bool | int:
    message = json.loads(answer[2])
    return message["error"]["code"] if "error" in message else bool(message["result"]["isError"])


@pytest.mark.parametrize("json_response", [False, True])
async def test_tools_call_answers_are_the_same_with_the_fast_path_on_and_off(
    sdk: list[str], json_response: bool
) -> None:
    fast = await answers(True, json_response)
    reached = len(sdk)
    slow = await answers(False, json_response)
    for (label, _, _, expected), on, off in zip(CALLS, fast, slow, strict=True):
        assert outcome(on) == expected, label
        assert on == off, label
    assert reached == 0
    assert len(sdk) == len(CALLS) - 1  # the rate-limited call is refused in front of both


async def test_a_call_past_the_deferral_window_streams_the_same_events_on_and_off(
    sdk: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastpath, "SSE_DEFERRAL", 0.1)
    monkeypatch.setattr(modern, "_SSE_PING_INTERVAL", 0.1)
    streams: list[Seen] = []
    for fast_path in (True, False):
        async with gateway(fast_path, json_response=False) as post:
            streams.append(seen(await post(call("toy/slow", {"seconds": 0.5}, 1))))
        if fast_path:
            assert sdk == []
    (status, headers, body), (_, _, slow_body) = streams
    assert streams[0][:2] == streams[1][:2] and status == 200 and headers["content-type"] == "text/event-stream"
    # How many keep-alive pings precede the answer depends on the clock; the answer itself must not.
    events = [[e for e in b.split(b"\r\n\r\n") if e != b": ping"] for b in (body, slow_body)]
    assert events[0] == events[1] and events[0][0].startswith(b"event: message\r\ndata: ")
    assert sdk == ["POST"]


async def walk(post: Post, method: str) -> list[Seen]:
    pages: list[Seen] = []
    cursor: str | None = None
    while not pages or cursor:
        pages.append(seen(await post(listing(method, cursor, len(pages)))))
        cursor = json.loads(pages[-1][2])["result"].get("nextCursor")
    return pages


@pytest.mark.parametrize("json_response", [False, True])
@pytest.mark.parametrize("method", sorted(LISTS))
async def test_list_pages_are_the_same_with_the_fast_path_on_and_off(
    sdk: list[str], json_response: bool, method: str
) -> None:
    walks: dict[bool, list[Seen]] = {}
    for fast_path in (True, False):
        async with gateway(fast_path, json_response, security={}, list_page_size=3) as post:
            await walk(post, method)  # the SDK path shapes each page once
            reached = len(sdk)
            walks[fast_path] = await walk(post, method)
            taken = len(sdk) - reached
        assert taken == (0 if fast_path else len(walks[fast_path]))
    assert walks[True] == walks[False]


def invalid() -> ValidationError:
    try:
        types.Implementation.model_validate({})
    except ValidationError as exc:
        return exc
    raise AssertionError("an empty Implementation validated")


@pytest.mark.parametrize("failure", [RuntimeError("internal detail"), invalid()], ids=["crash", "invalid"])
async def test_a_failure_inside_the_gateway_is_answered_alike_on_and_off(
    sdk: list[str], monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    async def failing(*args: Any, **kwargs: Any) -> types.CallToolResult:
        raise failure

    monkeypatch.setattr(Guard, "call_tool", failing)
    answered: list[Seen] = []
    for fast_path in (True, False):
        async with gateway(fast_path, json_response=True) as post:
            answered.append(seen(await post(call("toy/echo", {"text": "x"}, 1))))
    assert answered[0] == answered[1] and sdk == ["POST"]
    assert b"internal detail" not in answered[0][2]
