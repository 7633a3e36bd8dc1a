"""``SessionLists.answer``: a cached list page is answered here only when the SDK would serve the request and
the page is cached for the session's style and version, with the SDK's framing; anything else is left to the
SDK (``None``)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.types import Message

from gateway.catalogue.naming import Style
from gateway.catalogue.pages import ListCache, list_key
from gateway.front.session_lists import SessionLists
from gateway.front.session_table import Learned

pytestmark = pytest.mark.anyio
VERSION = "2025-11-25"
SESSION = "session-1"
PAGE = {"tools": [{"name": "ops/echo", "inputSchema": {"type": "object"}}]}
LIST = {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}
HEADERS = {
    "host": "127.0.0.1:8000",
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-session-id": SESSION,
    "mcp-protocol-version": VERSION,
}


class Table:
    """A session table that knows one live session, opened by whoever asks."""

    def find(self, session_id: str, scope: Any) -> Learned | None:
        return Learned(Style.CANONICAL, VERSION) if session_id == SESSION else None


def session_lists(*, json_response: bool = False, filters: bool = False) -> SessionLists:
    gateway = SimpleNamespace(config=SimpleNamespace(json_response=json_response), tracing=None)
    surface = SimpleNamespace(filters=filters, generation=3)
    lists = ListCache()
    lists.get(3, ())  # the cache follows the catalogue's generation
    lists.put(3, list_key("tools/list", Style.CANONICAL, VERSION, None), PAGE)
    settings = TransportSecuritySettings(allowed_hosts=["127.0.0.1:*"], allowed_origins=["http://127.0.0.1:*"])
    security = TransportSecurityMiddleware(settings)
    return SessionLists(gateway, surface, lists, Table(), security)  # type: ignore[arg-type]


def request(headers: dict[str, str]) -> Request:
    raw = [(name.encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/mcp", "headers": raw, "query_string": b""})


async def answered(
    lists: SessionLists, message: Any = LIST, session: str = SESSION, **headers: str
) -> list[Message] | None:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    respond = await lists.answer(request({**HEADERS, **headers}), session, body)
    if respond is None:
        return None
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        raise AssertionError("the answer reads nothing")

    await respond({}, receive, send)
    return sent


async def test_a_cached_page_is_answered_as_one_sse_event_with_the_requests_id() -> None:
    sent = await answered(session_lists())
    assert sent is not None
    start, *bodies = sent
    headers = dict(start["headers"])
    assert (start["status"], headers[b"content-type"], headers[b"mcp-session-id"]) == (
        200,
        b"text/event-stream",
        SESSION.encode(),
    )
    event = b"".join(part["body"] for part in bodies)
    assert event.startswith(b"event: message\r\ndata: ") and event.endswith(b"\r\n\r\n")
    assert json.loads(event.split(b"data: ", 1)[1]) == {"jsonrpc": "2.0", "id": 7, "result": PAGE}
    assert bodies[-1]["more_body"] is False


async def test_in_json_mode_a_cached_page_is_answered_as_json_with_its_length() -> None:
    sent = await answered(session_lists(json_response=True), {**LIST, "id": "seven"}, accept="application/json")
    assert sent is not None
    start, body = sent
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) == len(body["body"])
    assert json.loads(body["body"]) == {"jsonrpc": "2.0", "id": "seven", "result": PAGE}


LEFT = {
    "a-call": {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "ops/echo"}},
    "a-notification": {"jsonrpc": "2.0", "method": "tools/list"},
    "a-batch": [LIST],
    "not-json": b"{not json",
    "cursor-not-a-string": {**LIST, "params": {"cursor": 5}},
    "page-not-cached": {**LIST, "params": {"cursor": "not-cached"}},
    "list-not-cached": {**LIST, "method": "prompts/list"},
    "params-invalid": {**LIST, "params": {"_meta": 5}},
}


@pytest.mark.parametrize("message", LEFT.values(), ids=LEFT)
async def test_anything_but_a_valid_request_for_a_cached_page_is_left_to_the_sdk(message: Any) -> None:
    assert await answered(session_lists(), message) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"accept": "application/json"},
        {"accept": "text/event-stream"},
        {"content-type": "text/plain"},
        {"host": "evil.example"},
    ],
    ids=["no-sse-accepted", "no-json-accepted", "not-json-content", "host-not-allowed"],
)
async def test_a_request_the_sdks_transport_would_refuse_is_left_to_it(headers: dict[str, str]) -> None:
    assert await answered(session_lists(), **headers) is None


async def test_a_session_the_table_does_not_let_this_request_into_is_left_to_the_sdk() -> None:
    assert await answered(session_lists(), session="another-session") is None


async def test_while_rules_filter_lists_every_page_is_left_to_the_sdk() -> None:
    assert await answered(session_lists(filters=True)) is None
