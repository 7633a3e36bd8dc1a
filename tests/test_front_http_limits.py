"""``gateway.front.http_limits`` around a plain ASGI app: what counts against a request's head, which refusal
answers what (431, 408, 429, each a JSON-RPC error on a closing connection), and what the app hears of it."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream
from mcp.types import INVALID_REQUEST
from starlette.types import Message, Receive, Scope, Send

from gateway.config import GatewayConfig, HttpConfig, SecurityConfig
from gateway.errors import RATE_LIMITED
from gateway.front.http_limits import LINGER, ConnectionCount
from tests.support.inproc import serving_app
from tests.test_http_limits import answer, connect, send_quietly

pytestmark = pytest.mark.anyio
REQUEST_LINE = b"GET /x HTTP/1.1\r\n"


class App:
    """Answers 200 once it has read the whole body; keeps the last message it received."""

    def __init__(self) -> None:
        self.last: Message | None = None
        self.heard = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while True:
            self.last = await receive()
            if self.last["type"] == "http.disconnect" or not self.last.get("more_body"):
                break
        self.heard.set()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


def limited(app: App, **http: Any) -> AbstractAsyncContextManager[int]:
    """``app`` served by uvicorn as the gateway serves it, within ``http``; yields the port."""
    return serving_app(app, GatewayConfig(backends=(), security=SecurityConfig(http=HttpConfig(**http))))


async def exchange(port: int, data: bytes) -> tuple[int, Any]:
    stream: SocketStream = await connect(port)
    async with stream:
        await send_quietly(stream, data)
        return await answer(stream)


async def refusal_of(stream: SocketStream) -> bytes:
    """A refusal as it arrives, without waiting for the connection to close (a JSON body ends with ``}``)."""
    data = b""
    with anyio.fail_after(10):
        while not data.endswith(b"}"):
            data += await stream.receive()
    return data


def head_of(size: int) -> bytes:
    """A request whose line and headers count ``size`` bytes as the limit counts them (URL, names, values)."""
    fixed = len("/x") + len("host") + len("127.0.0.1") + len("connection") + len("close") + len("x-pad")
    return REQUEST_LINE + b"Host: 127.0.0.1\r\nConnection: close\r\nX-Pad: " + b"p" * (size - fixed) + b"\r\n\r\n"


async def test_a_head_at_the_limit_is_served_and_one_byte_more_is_431_as_a_json_rpc_error() -> None:
    async with limited(App(), max_header_bytes=2048) as port:
        assert (await exchange(port, head_of(2048)))[0] == 200
        status, body = await exchange(port, head_of(2049))
    assert status == 431
    assert body["error"]["code"] == INVALID_REQUEST and "2048 bytes" in body["error"]["message"]


async def test_a_body_read_with_its_head_does_not_count_against_the_head() -> None:
    body = b"b" * 16 * 1024
    post = b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    async with limited(App(), max_header_bytes=1024) as port:
        assert (await exchange(port, post + body))[0] == 200


async def test_more_header_fields_than_allowed_is_431_however_small() -> None:
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(8))
    async with limited(App(), max_headers=8) as port:
        status, body = await exchange(port, REQUEST_LINE + b"Host: 127.0.0.1\r\n" + fields + b"\r\n")
    assert (status, body["error"]["code"]) == (431, INVALID_REQUEST)


async def test_a_refusal_says_connection_close_and_its_length() -> None:
    async with limited(App(), max_headers=8) as port:
        stream = await connect(port)
        async with stream:
            await send_quietly(stream, REQUEST_LINE + b"".join(b"X-%d: v\r\n" % i for i in range(9)) + b"\r\n")
            head, _, body = (await refusal_of(stream)).partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert b"content-length: %d" % len(body) in head.lower()
    assert json.loads(body)["id"] is None


async def test_a_head_that_never_comes_is_408() -> None:
    async with limited(App(), header_timeout=0.2) as port:
        stream = await connect(port)
        async with stream:
            status, body = await answer(stream)
    assert (status, body["error"]["code"]) == (408, INVALID_REQUEST)


async def test_a_body_late_past_its_deadline_is_408_and_the_app_waiting_for_it_hears_a_disconnect_at_once() -> None:
    app = App()
    post = b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n" + b"b" * 10
    async with limited(app, body_timeout=0.2) as port:
        stream = await connect(port)
        async with stream:
            await stream.send(post)
            refusal = await refusal_of(stream)
            with anyio.fail_after(LINGER / 2):  # not only once the connection is closed, a linger later
                await app.heard.wait()
    assert refusal.startswith(b"HTTP/1.1 408")
    assert app.last is not None and app.last["type"] == "http.disconnect"


async def test_an_upgrade_request_is_served_as_plain_http() -> None:
    upgrade = REQUEST_LINE + b"Host: 127.0.0.1\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n"
    async with limited(App()) as port:
        assert (await exchange(port, upgrade))[0] == 200


async def test_a_connection_past_the_per_address_cap_is_429_at_once() -> None:
    async with limited(App(), max_connections_per_client=1, keep_alive_timeout=60) as port:
        held = await connect(port)
        async with held:
            await held.send(REQUEST_LINE + b"Host: 127.0.0.1\r\n\r\n")  # answered: the server holds it
            assert (await held.receive()).startswith(b"HTTP/1.1 200")
            status, body = await exchange(port, b"")
    assert (status, body["error"]["code"]) == (429, RATE_LIMITED)


def test_connections_are_counted_per_address_and_admitted_again_once_released() -> None:
    count = ConnectionCount(2)
    assert count.admit("10.0.0.1") and count.admit("10.0.0.1")
    assert not count.admit("10.0.0.1")
    assert count.admit("10.0.0.2")
    count.release("10.0.0.1")
    assert count.admit("10.0.0.1")
    unlimited = ConnectionCount(0)
    assert all(unlimited.admit("10.0.0.1") for _ in range(1000))
