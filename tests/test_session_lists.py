"""2025 sessions' list pages from the fast path: the bytes the SDK path wrote, and only where the SDK would serve.

Raw requests to the gateway's whole ASGI app in process (security layer, fast path, the SDK's session manager),
with every request that reaches the SDK's session transport counted, so a test can tell which path answered.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp.server import MCPServer, Server
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.catalogue.naming import Style
from gateway.front.app import build_app
from gateway.front.session_table import Learned, SessionTable
from tests.support.inproc import READER, lifespan, running_gateway
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
VERSION = "2025-11-25"
ALICE, BOB = "alice-key-0123456789", "bob-key-9876543210ab"
Sent = list[Message]


def cafe() -> MCPServer:
    """A backend whose list has text the two JSON encoders write differently (``json.dumps`` escapes non-ASCII)."""
    server = MCPServer("cafe")

    @server.tool(description="Brew a café crème, naïve but résumé-worthy ☕")
    def brew(strength: int = 2) -> str:
        return "☕"

    return server


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The HTTP method of every request that reached the SDK's session transport."""
    seen: list[str] = []
    original = StreamableHTTPServerTransport.handle_request

    async def counted(self: StreamableHTTPServerTransport, scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["method"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(StreamableHTTPServerTransport, "handle_request", counted)
    yield seen


@asynccontextmanager
async def serving(servers: dict[str, MCPServer], **settings: Any) -> AsyncIterator[ASGIApp]:
    async with running_gateway(servers, **settings) as gateway:
        app = build_app(gateway)
        async with lifespan(app):
            yield app


async def exchange(app: ASGIApp, message: dict[str, Any] | None, headers: dict[str, str], method: str = "POST") -> Sent:
    """One request, as a client's HTTP layer sends it; every ASGI message of the response."""
    body = json.dumps(message).encode() if message is not None else b""
    base = {
        "host": "127.0.0.1:8000",
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
    }
    scope = {
        "type": "http", "method": method, "path": "/mcp", "raw_path": b"/mcp", "root_path": "", "scheme": "http",
        "query_string": b"", "http_version": "1.1", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
        "headers": [(k.encode(), v.encode()) for k, v in {**base, **headers}.items()],
    }  # fmt: skip
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    sent: Sent = []
    done = anyio.Event()

    async def receive() -> Message:
        if pending:
            return pending.pop()
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    with anyio.fail_after(10):
        await app(scope, receive, send)
    return sent


def in_session(session: str | None, token: str | None = None) -> dict[str, str]:
    headers = {"mcp-protocol-version": VERSION}
    if session is not None:
        headers["mcp-session-id"] = session
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


async def open_session(app: ASGIApp, client: str = READER, token: str | None = None) -> str:
    params = {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": client, "version": "1"}}
    opened = await exchange(
        app, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}, in_session(None, token)
    )
    session = dict(opened[0]["headers"])[b"mcp-session-id"].decode()
    await exchange(app, {"jsonrpc": "2.0", "method": "notifications/initialized"}, in_session(session, token))
    return session


def status(sent: Sent) -> int:
    return int(sent[0]["status"])


def answer(sent: Sent) -> dict[str, Any]:
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    if dict(sent[0]["headers"])[b"content-type"].startswith(b"text/event-stream"):
        body = body.split(b"data: ", 1)[1]
    decoded: dict[str, Any] = json.loads(body)
    return decoded


async def page(app: ASGIApp, session: str, cursor: str | None = None, token: str | None = None, at: int = 1) -> Sent:
    params = {"cursor": cursor} if cursor else {}
    message = {"jsonrpc": "2.0", "id": at, "method": "tools/list", "params": params}
    return await exchange(app, message, in_session(session, token))


async def walk(app: ASGIApp, session: str) -> list[Sent]:
    pages: list[Sent] = []
    cursor: str | None = None
    while not pages or cursor:
        pages.append(await page(app, session, cursor, at=len(pages)))
        cursor = answer(pages[-1])["result"].get("nextCursor")
    return pages


def names(sent: Sent) -> list[str]:
    return [tool["name"] for tool in answer(sent)["result"]["tools"]]


@pytest.mark.parametrize("json_response", [False, True])
async def test_every_page_comes_back_as_the_bytes_the_sdk_path_wrote(sdk: list[str], json_response: bool) -> None:
    servers = {"cafe": cafe(), "toy": build("toy")}
    async with serving(servers, list_page_size=3, json_response=json_response) as app:
        session = await open_session(app)
        shaped = await walk(app, session)
        reached = len(sdk)
        served = await walk(app, session)
    assert len(shaped) > 3 and all(status(p) == 200 for p in shaped)
    assert served == shaped
    assert len(sdk) == reached
    first = b"".join(m.get("body", b"") for m in shaped[0])
    assert "☕".encode() in first


async def test_requests_the_sdk_would_refuse_are_refused_as_it_refuses_them(sdk: list[str]) -> None:
    async with serving({"toy": build("toy")}) as app:
        session = await open_session(app)
        assert [status(await page(app, session)) for _ in range(2)] == [200, 200]
        unknown = await page(app, "0" * 32)
        missing = await exchange(app, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, in_session(None))
        json_only = await exchange(
            app,
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            {**in_session(session), "accept": "application/json"},
        )
        ended = await exchange(app, None, in_session(session), method="DELETE")
        after = await page(app, session)
    assert (status(unknown), answer(unknown)["error"]["message"]) == (404, "Session not found")
    assert status(missing) == 400 and "Missing session ID" in answer(missing)["error"]["message"]
    assert status(json_only) == 406
    assert status(ended) == 200 and status(after) == 404


async def test_a_session_is_served_only_with_the_credential_that_opened_it(sdk: list[str]) -> None:
    keys = [{"principal": "alice", "key": ALICE}, {"principal": "bob", "key": BOB}]
    security = {"auth": {"api_keys": keys}, "policy": {"default": "allow"}}
    async with serving({"toy": build("toy")}, security=security) as app:
        session = await open_session(app, token=ALICE)
        mine = [await page(app, session, token=ALICE) for _ in range(2)]
        reached = len(sdk)
        theirs = await page(app, session, token=BOB)
    assert [status(p) for p in mine] == [200, 200] and mine[0] == mine[1]
    assert len(sdk) == reached
    assert (status(theirs), answer(theirs)["error"]["message"]) == (404, "Session not found")


async def test_lists_filtered_by_rules_are_shaped_by_the_sdk_path_every_time(sdk: list[str]) -> None:
    rules = [{"principals": ["alice"], "allow": ["toy/*"], "deny": ["toy/echo"]}]
    security = {"auth": {"api_keys": [{"principal": "alice", "key": ALICE}]}, "policy": {"rules": rules}}
    async with serving({"toy": build("toy"), "ops": build("ops")}, security=security) as app:
        session = await open_session(app, token=ALICE)
        reached = len(sdk)
        listed = [names(await page(app, session, token=ALICE)) for _ in range(2)]
    assert listed[0] == listed[1] and "toy/search" in listed[0]
    assert "toy/echo" not in listed[0] and not [n for n in listed[0] if n.startswith("ops/")]
    assert len(sdk) == reached + 2


async def test_each_session_gets_its_own_clients_name_style(sdk: list[str]) -> None:
    async with serving({"toy": build("toy")}) as app:
        plain, strict = await open_session(app, READER), await open_session(app, "claude-code")
        for session in (plain, strict):
            await page(app, session)
        reached = len(sdk)
        listed = {session: names(await page(app, session)) for session in (plain, strict)}
    assert len(sdk) == reached
    assert "toy/search" in listed[plain] and "toy__search" in listed[strict]


async def test_a_client_that_initializes_again_under_another_name_gets_that_names_style() -> None:
    async with serving({"toy": build("toy")}) as app:
        session = await open_session(app, READER)
        before = [names(await page(app, session)) for _ in range(2)]
        params = {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "claude-code", "version": "1"}}
        again = {"jsonrpc": "2.0", "id": 9, "method": "initialize", "params": params}
        assert status(await exchange(app, again, in_session(session))) == 200
        after = [names(await page(app, session)) for _ in range(2)]
    assert "toy/search" in before[0] and before[0] == before[1]
    assert "toy__search" in after[0] and after[0] == after[1]


async def test_a_served_request_restarts_the_sessions_idle_countdown_as_the_sdk_does() -> None:
    manager = StreamableHTTPSessionManager(Server("x"), session_idle_timeout=60)
    transport = StreamableHTTPServerTransport("s1", idle_timeout=60)
    manager._server_instances["s1"] = transport  # the table as the SDK's manager keeps it
    table = SessionTable()
    table.bind(manager)
    table.learn("s1", Style.CANONICAL, VERSION)
    transport.idle_scope = idle = anyio.CancelScope(deadline=anyio.current_time() + 1)

    assert table.find("s1", {}) == Learned(Style.CANONICAL, VERSION)
    assert idle.deadline > anyio.current_time() + 59
    idle.deadline = math.inf  # another request holds the session open
    assert table.find("s1", {}) is not None and idle.deadline == math.inf
    idle.cancel()  # the session is expiring
    assert table.find("s1", {}) is None
    assert table.find("s2", {}) is None


def without_session(sent: Sent, session: str) -> Sent:
    """The response with its session id (each gateway issues its own) taken out of the headers."""
    named = session.encode()
    return [
        {**m, "headers": [(k, b"<session>" if v == named else v) for k, v in m["headers"]]} if "headers" in m else m
        for m in sent
    ]


@pytest.mark.parametrize("json_response", [False, True])
async def test_pages_are_the_same_with_the_fast_path_on_and_off(sdk: list[str], json_response: bool) -> None:
    walks: dict[bool, list[Sent]] = {}
    for fast_path in (True, False):
        servers = {"cafe": cafe(), "toy": build("toy")}
        async with serving(servers, list_page_size=3, json_response=json_response, fast_path=fast_path) as app:
            session = await open_session(app)
            await walk(app, session)
            reached = len(sdk)
            walks[fast_path] = [without_session(sent, session) for sent in await walk(app, session)]
            taken = len(sdk) - reached
        assert taken == (0 if fast_path else len(walks[fast_path]))
    assert len(walks[True]) > 3 and walks[True] == walks[False]
