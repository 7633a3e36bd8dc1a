"""The raw forwarder against a scripted HTTP server on a real socket: every answer shape and every failure.

The server answers each POST with what the test scripts; it records the requests it received and how many
connections carried them, so the tests see what went over the wire (cancellations, answers to the backend's
own requests, session headers, kept-alive connections).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from mcp import MCPError, types

from gateway.upstream import http1
from gateway.upstream.caller import Caller
from gateway.upstream.forward import EventParser, Forwarder
from gateway.upstream.link import (
    BackendRejected,
    ConnectionLost,
    InvalidAnswer,
    LinkClosed,
    NotDelivered,
    SessionGone,
    TimedOut,
)
from gateway.upstream.negotiated import Negotiated
from gateway.upstream.sink import Sink

pytestmark = pytest.mark.anyio
CALL = {"method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}}
LEGACY, MODERN = "2025-11-25", "2026-07-28"


async def send(fwd: Forwarder, message: dict[str, Any], deadline: float = 5.0, sink: Sink | None = None) -> Any:
    return await fwd.send(message["method"], message["params"], deadline, Caller(sink=sink))


def bound(url: str, session: str | None = None, *, modern: bool = False) -> Forwarder:
    """A raw link after its handshake: in ``session`` (2025), at the era's protocol version."""
    fwd = Forwarder(url, {"Authorization": "Bearer t"}, 5.0, 1 << 20)
    fwd.session_id = session
    fwd.bind(Negotiated.at(MODERN if modern else LEGACY))
    return fwd


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]
    method: str = "POST"


Answer = Callable[[Received], Awaitable[bytes | None]]


@dataclass
class Scripted:
    """A scripted HTTP/1.1 server; ``answer`` returns the response bytes, or ``None`` to close the connection."""

    answer: Answer
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    forwarders: list[Forwarder] = field(default_factory=list)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def forwarder(self, session: str | None = None, *, modern: bool = False) -> Forwarder:
        fwd = bound(f"http://127.0.0.1:{self.port}/mcp", session, modern=modern)
        self.forwarders.append(fwd)
        return fwd

    async def close(self) -> None:
        """Close every client connection, then every server connection, and wait (bounded) for the handlers."""
        for fwd in self.forwarders:
            fwd.close()
        for writer in self.writers:
            writer.close()
        if self.handlers:
            await asyncio.wait(self.handlers, timeout=5)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        self.writers.add(writer)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Received(headers, json.loads(raw) if raw else {}, head[0].split(" ", 1)[0])
                self.received.append(request)
                out = await self.answer(request)
                if out is None:
                    return
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def bodies(self, method: str | None = None) -> list[dict[str, Any]]:
        return [r.body for r in self.received if method is None or r.body.get("method") == method]


@asynccontextmanager
async def scripted(answer: Answer) -> AsyncIterator[Scripted]:
    server = Scripted(answer)
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        await server.close()
        await listener.wait_closed()


def forwarder(server: Scripted, session: str | None = None, *, modern: bool = False) -> Forwarder:
    return server.forwarder(session, modern=modern)


def http(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def answer_to(request: Received, result: dict[str, Any] | None = None) -> dict[str, Any]:
    """A result for the request, with the ``resultType`` a 2026 result carries when the request was one."""
    result = result or {"content": [], "isError": False}
    if request.headers.get("mcp-protocol-version") == MODERN:
        result = {**result, "resultType": "complete"}
    return {"jsonrpc": "2.0", "id": request.body["id"], "result": result}


def sse(*messages: dict[str, Any]) -> bytes:
    """An SSE response in chunked encoding, one chunk per event (CRLF line ends, as the SDK writes them)."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    chunks = [f"event: message\r\ndata: {json.dumps(m)}\r\n\r\n".encode() for m in messages]
    return head + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


async def json_answer(request: Received) -> bytes | None:
    if "id" not in request.body:
        return http(202, b"")
    return http(200, json.dumps(answer_to(request, {"content": [{"type": "text", "text": "hi"}]})).encode())


class RecordingSink:
    def __init__(self) -> None:
        self.notes: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []

    async def notify(self, message: dict[str, Any]) -> None:
        self.notes.append(message)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(message)
        return {"result": {"roots": []}}


async def test_a_json_answer_comes_back_and_the_connection_is_kept_for_the_next_call() -> None:
    async with scripted(json_answer) as server:
        fwd = forwarder(server, session="s-1")
        first = await send(fwd, CALL)
        second = await send(fwd, CALL)
        fwd.close()
    assert first == second == {"content": [{"type": "text", "text": "hi"}]}
    assert server.connections == 1
    headers = server.received[0].headers
    assert headers["mcp-session-id"] == "s-1" and headers["mcp-protocol-version"] == "2025-11-25"
    assert headers["authorization"] == "Bearer t"
    assert headers["accept"] == "application/json, text/event-stream"
    assert server.received[0].body["params"] == CALL["params"]


@pytest.mark.parametrize("modern", [False, True])
async def test_without_a_sink_notifications_are_dropped_and_backend_requests_get_an_error(modern: bool) -> None:
    async def answer(request: Received) -> bytes | None:
        if request.body.get("method") != "tools/call":
            return http(202, b"")
        progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1}}
        roots = {"jsonrpc": "2.0", "id": 41, "method": "roots/list"}
        return sse(progress, roots, answer_to(request))

    async with scripted(answer) as server:
        result = await send(forwarder(server, modern=modern), CALL, 5.0)
    assert (result["content"], result["isError"]) == ([], False)
    (reply,) = [b for b in server.bodies() if b.get("id") == 41]
    assert reply["error"]["code"] == types.METHOD_NOT_FOUND and "result" not in reply


async def test_a_sink_hears_the_calls_notifications_and_answers_the_backends_requests() -> None:
    async def answer(request: Received) -> bytes | None:
        if request.body.get("method") != "tools/call":
            return http(202, b"")
        log = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x"}}
        return sse(log, {"jsonrpc": "2.0", "id": "r1", "method": "roots/list"}, answer_to(request))

    sink = RecordingSink()
    async with scripted(answer) as server:
        await send(forwarder(server, modern=False), CALL, 5.0, sink=sink)
    assert [n["method"] for n in sink.notes] == ["notifications/message"]
    assert [r["id"] for r in sink.requests] == ["r1"]
    assert [b for b in server.bodies() if b.get("id") == "r1"] == [
        {"jsonrpc": "2.0", "id": "r1", "result": {"roots": []}}
    ]


async def test_a_request_the_backend_withdraws_is_cancelled_at_the_sink_and_left_unanswered() -> None:
    async def answer(request: Received) -> bytes | None:
        if request.body.get("method") != "tools/call":
            return http(202, b"")
        asked = {"jsonrpc": "2.0", "id": 7, "method": "sampling/createMessage", "params": {}}
        withdrawn = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}
        return sse(asked, withdrawn, answer_to(request))

    withdrawn = anyio.Event()

    class Waiting(RecordingSink):
        async def request(self, message: dict[str, Any]) -> dict[str, Any]:
            try:
                await anyio.sleep_forever()
            finally:
                withdrawn.set()
            raise AssertionError("unreachable")

    sink = Waiting()
    async with scripted(answer) as server:
        with anyio.fail_after(5):
            result = await send(forwarder(server, modern=False), CALL, 5.0, sink=sink)
    assert result == {"content": [], "isError": False}
    assert withdrawn.is_set() and sink.notes == []
    assert [b for b in server.bodies() if b.get("id") == 7] == []


async def test_notifications_about_the_backend_go_to_the_link_not_to_the_call_they_ride_on() -> None:
    async def answer(request: Received) -> bytes | None:
        if request.body.get("method") != "tools/call":
            return http(202, b"")
        updated = {"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": "toy://a"}}
        changed = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
        log = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x"}}
        return sse(updated, changed, log, answer_to(request))

    sink, heard = RecordingSink(), []

    async def on_session_notification(message: dict[str, Any]) -> None:
        heard.append(message["method"])

    async with scripted(answer) as server:
        fwd = forwarder(server)
        fwd.on_session_notification = on_session_notification
        await send(fwd, CALL, sink=sink)
    assert heard == ["notifications/resources/updated", "notifications/tools/list_changed"]
    assert [n["method"] for n in sink.notes] == ["notifications/message"]


async def test_a_404_inside_a_session_says_the_session_is_gone() -> None:
    async def answer(request: Received) -> bytes | None:
        return http(404, b"", "text/plain")

    async with scripted(answer) as server:
        with pytest.raises(SessionGone):
            await send(forwarder(server, session="old", modern=False), CALL, 5.0)


async def test_a_json_rpc_error_body_at_an_error_status_is_the_backends_own_error() -> None:
    async def answer(request: Received) -> bytes | None:
        error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32602, "message": "bad name", "data": {"n": 1}}}
        return http(400, json.dumps(error).encode())

    async with scripted(answer) as server:
        with pytest.raises(BackendRejected) as failed:
            await send(forwarder(server, modern=True), CALL, 5.0)
    error = failed.value.error
    assert isinstance(error, MCPError)
    assert (error.code, error.message, error.data) == (-32602, "bad name", {"n": 1})


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"jsonrpc": "2.0", "id": "someone-else", "result": {}}', b'{"jsonrpc": "2.0", "id": "gw-1"}'],
)
async def test_an_answer_that_is_not_a_response_to_the_request_is_invalid(body: bytes) -> None:
    async def answer(request: Received) -> bytes | None:
        return http(200, body)

    async with scripted(answer) as server:
        with pytest.raises(InvalidAnswer):
            await send(forwarder(server, modern=True), CALL, 5.0)


async def test_a_connection_that_drops_after_the_request_is_reported_as_closed() -> None:
    async def answer(request: Received) -> bytes | None:
        return None

    async with scripted(answer) as server:
        with pytest.raises(ConnectionLost):
            await send(forwarder(server, modern=True), CALL, 5.0)


async def test_nobody_listening_means_the_request_was_not_delivered() -> None:
    async with scripted(json_answer) as server:
        port = server.port
    fwd = bound(f"http://127.0.0.1:{port}/mcp", modern=True)
    with pytest.raises(LinkClosed):
        await send(fwd, CALL)
    fwd.close()


async def test_a_backend_that_closes_the_connection_while_the_request_is_written_did_not_take_it() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read the head, then reset the connection with the body unread (as a server refusing it may)."""
        await reader.readuntil(b"\r\n\r\n")
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    listener = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    fwd = bound(f"http://127.0.0.1:{port}/mcp", modern=True)
    huge = {"method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x" * (32 << 20)}}}
    try:
        with anyio.fail_after(10), pytest.raises(NotDelivered):
            await send(fwd, huge)
    finally:
        fwd.close()
        listener.close()
        await listener.wait_closed()


def hanging_call(hang: anyio.Event) -> Any:
    """A backend that holds tools/call until ``hang`` is set and accepts everything else."""

    async def answer(request: Received) -> bytes | None:
        if request.body.get("method") == "tools/call":
            await hang.wait()
            return None
        return http(202, b"")

    return answer


@pytest.mark.parametrize("modern", [False, True])
async def test_a_deadline_cancels_the_call_at_the_backend(modern: bool) -> None:
    hang = anyio.Event()
    answer = hanging_call(hang)

    async with scripted(answer) as server:
        with pytest.raises(TimedOut):
            await send(forwarder(server, session="s", modern=modern), CALL, 0.3)
        hang.set()
    cancels = server.bodies("notifications/cancelled")
    if modern:
        assert cancels == []
    else:
        (cancel,) = cancels
        assert cancel["params"]["requestId"] == server.bodies("tools/call")[0]["id"]
        (sent,) = [r.headers for r in server.received if r.body.get("method") == "notifications/cancelled"]
        assert sent["mcp-session-id"] == "s" and sent["mcp-protocol-version"] == "2025-11-25"


async def test_a_caller_that_gives_up_cancels_the_call_at_a_2025_backend() -> None:
    hang = anyio.Event()
    answer = hanging_call(hang)

    async with scripted(answer) as server:
        with anyio.move_on_after(0.3):
            await send(forwarder(server, modern=False), CALL, 30.0)
        hang.set()
    (cancel,) = server.bodies("notifications/cancelled")
    assert cancel["params"]["requestId"] == server.bodies("tools/call")[0]["id"]


def test_the_event_parser_joins_split_events_and_multi_line_data() -> None:
    parser = EventParser()

    assert parser.feed(b"event: message\r\nda") == []
    assert parser.feed(b'ta: {"a":\r\n') == []
    assert parser.feed(b"data: 1}\r\n\r\n: ping\r\n\r\ndata: 2\n\n") == [b'{"a":\n1}', b"2"]


async def test_a_priming_event_with_empty_data_before_the_answer_is_skipped() -> None:
    """A 2025-11-25 server may open each stream with an event id and empty data (the TypeScript SDK's servers do
    when they keep events for resumption); that event carries no message."""

    async def primed(request: Received) -> bytes | None:
        if "id" not in request.body:
            return http(202, b"")
        stream = sse(answer_to(request, {"content": [{"type": "text", "text": "after"}]}))
        head, _, rest = stream.partition(b"\r\n\r\n")
        prime = b"id: 1f\ndata: \n\n"
        return head + b"\r\n\r\n" + b"%x\r\n%s\r\n" % (len(prime), prime) + rest

    async with scripted(primed) as server:
        answer = await send(forwarder(server, modern=False), CALL, 5.0)
    assert answer["content"] == [{"type": "text", "text": "after"}]


async def test_concurrent_calls_beyond_the_pools_limit_wait_for_a_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "MAX_OPEN", 2)
    busy = [0, 0]

    async def answer(request: Received) -> bytes | None:
        busy[0] += 1
        busy[1] = max(busy)
        await anyio.sleep(0.05)
        busy[0] -= 1
        return await json_answer(request)

    async with scripted(answer) as server:
        fwd = forwarder(server)
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(send, fwd, CALL)
    assert busy[1] == 2
    assert server.connections == 2
    assert len(server.received) == 6


async def test_an_answer_that_fails_the_negotiated_versions_schema_is_invalid_as_the_sdk_finds_it() -> None:
    """A 2026-07-28 result must say its ``resultType``; the version-free result model alone would let it pass."""

    async def untyped(request: Received) -> bytes | None:
        body = {"jsonrpc": "2.0", "id": request.body["id"], "result": {"content": [], "isError": False}}
        return http(200, json.dumps(body).encode())

    async with scripted(untyped) as server:
        with pytest.raises(InvalidAnswer):
            await send(forwarder(server, modern=True), CALL)
        legacy = await send(forwarder(server), CALL)
    assert legacy == {"content": [], "isError": False}


async def test_a_2025_link_drops_what_only_a_later_revision_declares() -> None:
    async def cached(request: Received) -> bytes | None:
        result = {"content": [], "isError": False, "resultType": "complete", "requestState": "s"}
        return http(200, json.dumps({"jsonrpc": "2.0", "id": request.body["id"], "result": result}).encode())

    async with scripted(cached) as server:
        legacy = await send(forwarder(server), CALL)
    assert legacy == {"content": [], "isError": False}


def ended(*events: bytes) -> bytes:
    """An SSE response of raw events (ids, retry delays, data) that ends without the answer."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    return head + b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"


def event(event_id: str, message: dict[str, Any] | None = None, retry: int | None = None) -> bytes:
    lines = [f"id: {event_id}"] + ([f"retry: {retry}"] if retry is not None else [])
    return ("\n".join([*lines, f"data: {json.dumps(message) if message else ''}"]) + "\n\n").encode()


def note(text: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": text}}


async def test_a_stream_the_backend_ends_before_the_answer_is_resumed_in_the_session_after_its_last_event() -> None:
    calls: list[Received] = []

    async def answer(request: Received) -> bytes | None:
        if request.method == "POST" and request.body.get("method") == "tools/call":
            calls.append(request)
            return ended(event("e1", retry=0), event("e2", note("one")))
        if request.method == "GET" and request.headers.get("last-event-id") == "e2":
            return ended(event("e3", note("two")), event("e4", retry=0))
        if request.method == "GET" and request.headers.get("last-event-id") == "e4":
            return ended(event("e5", answer_to(calls[0])))
        return http(405, b"")

    sink = RecordingSink()
    async with scripted(answer) as server:
        with anyio.fail_after(10):
            result = await send(forwarder(server, session="s-9"), CALL, sink=sink)
    assert result == {"content": [], "isError": False}
    assert [n["params"]["data"] for n in sink.notes] == ["one", "two"]
    resumed = [r.headers for r in server.received if r.method == "GET"]
    assert [h["last-event-id"] for h in resumed] == ["e2", "e4"]
    assert all(h["mcp-session-id"] == "s-9" and h["mcp-protocol-version"] == LEGACY for h in resumed)
    assert all(h["authorization"] == "Bearer t" for h in resumed)


@pytest.mark.parametrize("status", [404, 405])
async def test_a_backend_that_will_not_resume_the_stream_loses_the_call(status: int) -> None:
    async def answer(request: Received) -> bytes | None:
        if request.method == "POST" and request.body.get("method") == "tools/call":
            return ended(event("e1", note("one"), retry=0))
        return http(status if request.method == "GET" else 202, b"")

    async with scripted(answer) as server:
        with anyio.fail_after(10), pytest.raises(ConnectionLost):
            await send(forwarder(server, session="s"), CALL)
    assert [r.method for r in server.received].count("GET") == 1


async def test_the_resumption_waits_the_retry_delay_the_backend_asked_for_within_the_calls_deadline() -> None:
    async def answer(request: Received) -> bytes | None:
        if request.method == "POST" and request.body.get("method") == "tools/call":
            return ended(event("e1", retry=60_000))
        return http(202, b"")

    async with scripted(answer) as server:
        with anyio.fail_after(10), pytest.raises(TimedOut):
            await send(forwarder(server, session="s"), CALL, 0.3)
    assert [r.method for r in server.received if r.method == "GET"] == []
    assert server.bodies("notifications/cancelled") != []


async def test_a_stream_that_ends_without_event_ids_cannot_be_resumed() -> None:
    async def answer(request: Received) -> bytes | None:
        if request.body.get("method") == "tools/call":
            return sse(note("one"))
        return http(202, b"")

    async with scripted(answer) as server:
        with pytest.raises(ConnectionLost):
            await send(forwarder(server), CALL)
    assert [r.method for r in server.received if r.method == "GET"] == []


async def test_a_backend_that_keeps_ending_the_stream_with_nothing_new_loses_the_call() -> None:
    async def answer(request: Received) -> bytes | None:
        if request.method == "POST" and request.body.get("method") == "tools/call":
            return ended(event("e1", retry=0))
        if request.method == "GET":
            return ended()
        return http(202, b"")

    async with scripted(answer) as server:
        with anyio.fail_after(10), pytest.raises(ConnectionLost):
            await send(forwarder(server, session="s"), CALL)
