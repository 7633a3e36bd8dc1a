"""Thousands of generated JSON-RPC messages, valid and broken, against the HTTP endpoint: never a 5xx, never a
hang, every reply a well-formed JSON-RPC result or error, and the gateway still serves normal calls afterwards.

The messages go in process (ASGI, no socket), in both eras: stateless 2026 requests, requests inside a 2025
session, and requests that belong to neither.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.from_thread
import httpx2
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.inproc import http, running_gateway
from tests.support.toy_server import build

# Each example sends a batch of messages in one hop to the event loop's thread: hypothesis's own cost per example
# and the hand-over between the threads stay small against the sending.
EXAMPLES = 250
BATCH = 20
MCP = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
METHODS = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "completion/complete",
    "server/discover",
    "subscriptions/listen",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
]
TOOLS = ["ops/echo", "ops/search", "hr__echo", "ops/fail", "ops/linked", "ops/slow", "ops/crash", "nope/nothing"]
# Tools that would sleep, exit the process or change the catalogue are refused by policy, so generated calls to
# them test the refusal path instead.
SECURITY = {
    "policy": {"rules": [{"principals": ["*"], "deny": ["*/slow*", "*/crash", "*/add_tool", "*/record"]}]},
    "limits": {"max_body_bytes": 65536, "max_json_depth": 32},
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
ids = st.one_of(st.integers(), st.text(max_size=6), st.none(), st.floats(allow_nan=False), st.booleans())
call_params = st.fixed_dictionaries(
    {"name": st.sampled_from(TOOLS) | st.text(max_size=12), "arguments": json_values, "_meta": st.just(META)}
)
params = st.one_of(
    st.none(), json_values, call_params, st.fixed_dictionaries({"_meta": st.just(META)}, optional={"uri": st.text()})
)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    message: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        message["jsonrpc"] = draw(st.sampled_from(["2.0", "2.0", "2.0", "1.0", 2]))
    if draw(st.integers(0, 4)):
        message["id"] = draw(ids)
    message["method"] = draw(st.sampled_from(METHODS) | st.text(max_size=15) | st.integers() | json_values)
    if draw(st.booleans()):
        message["params"] = draw(params)
    return message


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """Well-formed requests to real methods, real and unknown names, arguments of any shape."""
    method = draw(st.sampled_from(["tools/call", "tools/call", "tools/list", "prompts/get", "resources/read", "ping"]))
    extra: dict[str, Any] = {}
    if method == "tools/call":
        extra = {
            "name": draw(st.sampled_from(TOOLS)),
            "arguments": draw(st.dictionaries(st.sampled_from(["text", "query", "x"]), json_values, max_size=2)),
        }
    elif method == "prompts/get":
        extra = {
            "name": draw(st.sampled_from(["ops/greet", "hr/greet", "x/y"])),
            "arguments": {"who": draw(st.text(max_size=8))},
        }
    elif method == "resources/read":
        extra = {
            "uri": draw(st.sampled_from(["ops+toy://about", "hr+toy://notes/3", "nobody+x://y"]) | st.text(max_size=12))
        }
    return {"jsonrpc": "2.0", "id": draw(st.integers(1, 10**6)), "method": method, "params": {**extra, "_meta": META}}


broken = st.one_of(
    messages().map(lambda m: json.dumps(m).encode()),
    messages().map(lambda m: json.dumps(m).encode()[: len(json.dumps(m)) // 2]),
    st.binary(max_size=64),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 200).map(
        lambda n: b'{"jsonrpc":"2.0","id":1,"method":"ping","params":' + b"[" * n + b"]" * n + b"}"
    ),
    st.lists(messages(), min_size=1, max_size=3).map(lambda ms: json.dumps(ms).encode()),
)
# Half well-formed requests (they reach the guard and the backends), half anything else.
bodies = st.booleans().flatmap(lambda valid: requests().map(lambda m: json.dumps(m).encode()) if valid else broken)
cases = st.lists(st.tuples(st.sampled_from(["2026", "session", "bare"]), bodies), min_size=BATCH, max_size=BATCH)


def era_headers(era: str, body: bytes, session: dict[str, str]) -> dict[str, str]:
    if era == "session":
        return {**MCP, **session}
    if era == "bare":
        return dict(MCP)
    headers = {**MCP, "MCP-Protocol-Version": "2026-07-28"}
    try:
        message = json.loads(body)
    except ValueError:
        return headers
    if isinstance(message, dict):
        method, name = message.get("method"), (message.get("params") or {})
        if isinstance(method, str) and method.isascii() and method.isprintable():
            headers["Mcp-Method"] = method
        name = (name.get("name") or name.get("uri")) if isinstance(name, dict) else None
        if isinstance(name, str) and name.isascii() and name.isprintable():
            headers["Mcp-Name"] = name
    return headers


def replies(response: httpx2.Response) -> list[Any]:
    """The JSON-RPC messages in a reply: the JSON body, or each SSE ``data:`` line."""
    if not response.content:
        return []
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        # SSE lines end in CR, LF or CRLF only; str.splitlines would also split inside a JSON string (U+0085).
        lines = re.split(r"\r\n|\r|\n", response.text)
        return [json.loads(line[5:]) for line in lines if line.startswith("data:")]
    return [response.json()]


def assert_well_formed(message: Any) -> None:
    assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", message
    assert ("result" in message) != ("error" in message), message
    if "error" in message:
        error = message["error"]
        assert isinstance(error.get("code"), int) and isinstance(error.get("message"), str), message


Send = Callable[[list[tuple[str, bytes]]], Awaitable[list[httpx2.Response]]]


@asynccontextmanager
async def target() -> AsyncIterator[tuple[Send, httpx2.AsyncClient, dict[str, str]]]:
    servers = {"ops": build("ops"), "hr": build("hr")}
    async with running_gateway(servers, security=SECURITY) as gw, http(gw) as session:
        init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}
        opened = await session.post(
            "/mcp", headers=MCP, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init}
        )
        legacy = {"Mcp-Session-Id": opened.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
        await session.post(
            "/mcp", headers={**MCP, **legacy}, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
        )

        async def send(sent: list[tuple[str, bytes]]) -> list[httpx2.Response]:
            responses = []
            for era, body in sent:
                with anyio.fail_after(10):
                    responses.append(await session.post("/mcp", headers=era_headers(era, body, legacy), content=body))
            return responses

        yield send, session, legacy


def test_generated_messages_never_break_the_gateway() -> None:
    with anyio.from_thread.start_blocking_portal() as portal, portal.wrap_async_context_manager(target()) as opened:
        send, session, legacy = opened
        seen: dict[int, int] = {}

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate, Phase.shrink],
        )
        @given(cases)
        def batch(sent: list[tuple[str, bytes]]) -> None:
            for case, response in zip(sent, portal.call(send, sent), strict=True):
                seen[response.status_code] = seen.get(response.status_code, 0) + 1
                assert response.status_code < 500, (case, response.status_code, response.text)
                for message in replies(response):
                    assert_well_formed(message)

        batch()

        async def normal_calls() -> tuple[httpx2.Response, httpx2.Response]:
            headers = {**MCP, **legacy}
            call = {"name": "ops/echo", "arguments": {"text": "still here"}}
            echoed = await session.post(
                "/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 10**6, "method": "tools/call", "params": call}
            )
            listed = await session.post(
                "/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 10**6 + 1, "method": "tools/list"}
            )
            return echoed, listed

        echoed, listed = portal.call(normal_calls)
    assert sum(seen.values()) >= 5000
    assert seen.get(200, 0) > 1000, seen  # many cases got past the envelope checks, not only refusals
    assert replies(echoed)[0]["result"]["content"][0]["text"] == "still here"
    assert any(t["name"] == "ops__echo" for t in replies(listed)[0]["result"]["tools"])
