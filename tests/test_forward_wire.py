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
from functools import partial
from typing import Any

import anyio
import pytest
from mcp import MCPError, types

from gateway.upstream import http1
from gateway.upstream.forward import EventParser, Forwarder, InvalidAnswer, Link, Undelivered

pytestmark = pytest.mark.anyio
CALL = {"method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}}


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]


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

    def forwarder(self, session: str | None = None) -> Forwarder:
        fwd = Forwarder(f"http://127.0.0.1:{self.port}/mcp", {"Authorization": "Bearer t"}, 5.0, Link(session), 1 << 20)
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
                body = json.loads(await reader.readexactly(int(headers["content-length"])))
                request = Received(headers, body)
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


def forwarder(server: Scripted, session: str | None = None) -> Forwarder:
    return server.forwarder(session)


def http(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def answer_to(request: Received, result: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request.body["id"], "result": result or {"content": [], "isError": False}}


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
        first = await fwd.send(dict(CALL), {"MCP-Protocol-Version": "2025-11-25"}, 5.0, modern=False)
        second = await fwd.send(dict(CALL), {"MCP-Protocol-Version": "2025-11-25"}, 5.0, modern=False)
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
        result = await forwarder(server).send(dict(CALL), {}, 5.0, modern=modern)
    assert result == {"content": [], "isError": False}
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
        await forwarder(server).send(dict(CALL), {}, 5.0, modern=False, sink=sink)
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
            result = await forwarder(server).send(dict(CALL), {}, 5.0, modern=False, sink=sink)
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
        await fwd.send(dict(CALL), {}, 5.0, modern=False, sink=sink)
    assert heard == ["notifications/resources/updated", "notifications/tools/list_changed"]
    assert [n["method"] for n in sink.notes] == ["notifications/message"]


async def test_a_404_inside_a_session_says_the_session_is_gone() -> None:
    async def answer(request: Received) -> bytes | None:
        return http(404, b"", "text/plain")

    async with scripted(answer) as server:
        with pytest.raises(MCPError) as gone:
            await forwarder(server, session="old").send(dict(CALL), {}, 5.0, modern=False)
    assert (gone.value.code, gone.value.message) == (types.INVALID_REQUEST, "Session terminated")


async def test_a_json_rpc_error_body_at_an_error_status_is_the_backends_own_error() -> None:
    async def answer(request: Received) -> bytes | None:
        error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32602, "message": "bad name", "data": {"n": 1}}}
        return http(400, json.dumps(error).encode())

    async with scripted(answer) as server:
        with pytest.raises(MCPError) as failed:
            await forwarder(server).send(dict(CALL), {}, 5.0, modern=True)
    assert (failed.value.code, failed.value.message, failed.value.data) == (-32602, "bad name", {"n": 1})


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"jsonrpc": "2.0", "id": "someone-else", "result": {}}', b'{"jsonrpc": "2.0", "id": "gw-1"}'],
)
async def test_an_answer_that_is_not_a_response_to_the_request_is_invalid(body: bytes) -> None:
    async def answer(request: Received) -> bytes | None:
        return http(200, body)

    async with scripted(answer) as server:
        with pytest.raises(InvalidAnswer):
            await forwarder(server).send(dict(CALL), {}, 5.0, modern=True)


async def test_a_connection_that_drops_after_the_request_is_reported_as_closed() -> None:
    async def answer(request: Received) -> bytes | None:
        return None

    async with scripted(answer) as server:
        with pytest.raises(MCPError) as dropped:
            await forwarder(server).send(dict(CALL), {}, 5.0, modern=True)
    assert dropped.value.code == types.CONNECTION_CLOSED


async def test_nobody_listening_means_the_request_was_not_delivered() -> None:
    async with scripted(json_answer) as server:
        port = server.port
    fwd = Forwarder(f"http://127.0.0.1:{port}/mcp", {}, 5.0, Link(), 1 << 20)
    with pytest.raises(anyio.BrokenResourceError):
        await fwd.send(dict(CALL), {}, 5.0, modern=True)
    fwd.close()


async def test_a_backend_that_closes_the_connection_while_the_request_is_written_did_not_take_it() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read the head, then reset the connection with the body unread (as a server refusing it may)."""
        await reader.readuntil(b"\r\n\r\n")
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    listener = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    fwd = Forwarder(f"http://127.0.0.1:{port}/mcp", {}, 5.0, Link(), 1 << 20)
    huge = {"method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x" * (32 << 20)}}}
    try:
        with anyio.fail_after(10), pytest.raises(Undelivered):
            await fwd.send(huge, {}, 5.0, modern=True)
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
        with pytest.raises(MCPError) as timed_out:
            await forwarder(server, session="s").send(
                dict(CALL), {"mcp-protocol-version": "2025-11-25"}, 0.3, modern=modern
            )
        hang.set()
    assert timed_out.value.code == types.REQUEST_TIMEOUT
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
            await forwarder(server).send(dict(CALL), {}, 30.0, modern=False)
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
        answer = await forwarder(server).send(dict(CALL), {}, 5.0, modern=False)
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
                tg.start_soon(partial(fwd.send, dict(CALL), {}, 5.0, modern=True))
    assert busy[1] == 2
    assert server.connections == 2
    assert len(server.received) == 6
