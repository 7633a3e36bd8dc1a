"""The HTTP server's per-connection limits, on real sockets: head size and count (431), head and body deadlines
(408), connections per client address (429), and that ordinary clients are served meanwhile."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
from anyio.abc import SocketStream
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import INVALID_REQUEST

from gateway.config import HttpConfig, SecurityConfig
from gateway.errors import RATE_LIMITED
from tests.support.inproc import http_client, running_gateway, serving
from tests.support.procs import Processes, free_port, http_get, listening, wait_until
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ANSWER_WITHIN = 10.0
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
OTHER_ADDRESS = "127.0.0.2"  # another client address on the loopback network, for the per-address cap
CLOSED = (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError)


@asynccontextmanager
async def gateway_at(**http: Any) -> AsyncIterator[tuple[str, int]]:
    """An in-process gateway with one toy backend, served as ``mcp-gateway serve`` serves it: (URL, port)."""
    security = SecurityConfig(http=HttpConfig(**http))
    async with running_gateway({"ops": build("ops")}, security=security) as gw, serving(gw) as url:
        yield url, int(urlsplit(url).port or 0)


async def connect(port: int, local_host: str | None = None) -> SocketStream:
    return await anyio.connect_tcp("127.0.0.1", port, local_host=local_host)


async def answer(stream: SocketStream) -> tuple[int, Any]:
    """Everything the server sends until it closes: the status and the JSON body (``None`` when not JSON)."""
    data = b""
    with anyio.fail_after(ANSWER_WITHIN):
        while True:
            try:
                data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if b"application/json" in head.lower() else None


async def send_quietly(stream: SocketStream, data: bytes) -> None:
    """Send, ignoring a server that has already closed."""
    with suppress(*CLOSED):
        await stream.send(data)


async def trickle(stream: SocketStream, count: int = 200) -> None:
    """One byte every 50 ms, as a slow client would, until the server closes (or ``count`` bytes)."""
    for _ in range(count):
        try:
            await stream.send(b"x")
        except CLOSED:
            return
        await anyio.sleep(0.05)


async def echo(url: str, text: str = "hi") -> str:
    async with http_client(url) as client:
        result = await client.call_tool("ops/echo", {"text": text})
    return str(result.content[0].text)  # type: ignore[union-attr]


async def test_a_header_line_that_never_ends_is_refused_with_431_once_past_the_limit() -> None:
    async with gateway_at(max_header_bytes=16 * 1024) as (url, port):
        stream = await connect(port)
        async with stream:
            await send_quietly(stream, HEALTH + b"X-Long: " + b"a" * 256 * 1024)
            status, body = await answer(stream)
        assert (status, body["error"]["code"]) == (431, INVALID_REQUEST)
        assert await echo(url) == "hi"


async def test_too_many_header_fields_or_too_large_a_complete_head_get_431() -> None:
    async with gateway_at(max_header_bytes=16 * 1024, max_headers=20) as (_, port):
        many = b"".join(b"X-Field-%d: v\r\n" % i for i in range(21))
        large = b"X-Large: " + b"a" * 20 * 1024 + b"\r\n"
        for extra in (many, large):
            stream = await connect(port)
            async with stream:
                await send_quietly(stream, HEALTH + extra + b"\r\n")
                status, body = await answer(stream)
            assert (status, body["error"]["code"]) == (431, INVALID_REQUEST)


async def test_a_request_with_many_ordinary_headers_and_a_large_cookie_is_served() -> None:
    headers = {f"X-Trace-{i}": "v" * 40 for i in range(50)}
    headers["Cookie"] = "session=" + "c" * 8 * 1024
    async with gateway_at() as (url, _), httpx2.AsyncClient(headers=headers) as session:
        async with Client(streamable_http_client(url, http_client=session)) as client:  # type: ignore[arg-type]
            result = await client.call_tool("ops/echo", {"text": "many"})
        assert result.content[0].text == "many"  # type: ignore[union-attr]


async def test_a_head_that_does_not_arrive_in_time_gets_408_while_others_are_served() -> None:
    async with gateway_at(header_timeout=0.5) as (url, port):
        silent, slow = await connect(port), await connect(port)
        async with silent, slow, anyio.create_task_group() as tg:
            await slow.send(HEALTH)
            tg.start_soon(trickle, slow)
            assert await echo(url) == "hi"
            for stream in (silent, slow):
                status, body = await answer(stream)
                assert (status, body["error"]["code"]) == (408, INVALID_REQUEST)
            tg.cancel_scope.cancel()


async def test_a_body_that_trickles_is_bounded_as_a_whole_and_answered_with_408() -> None:
    post = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{"
    async with gateway_at(body_timeout=0.5) as (url, port):
        stream = await connect(port)
        async with stream, anyio.create_task_group() as tg:
            await stream.send(post)
            tg.start_soon(trickle, stream)
            assert await echo(url) == "hi"
            status, body = await answer(stream)
            tg.cancel_scope.cancel()
        assert (status, body["error"]["code"]) == (408, INVALID_REQUEST)


async def test_a_body_that_trickles_after_its_answer_is_closed_at_the_body_deadline() -> None:
    post = b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000\r\n\r\n"
    async with gateway_at(body_timeout=0.5) as (_, port):
        stream = await connect(port)
        async with stream, anyio.create_task_group() as tg:
            await stream.send(post)
            tg.start_soon(trickle, stream)
            status, _ = await answer(stream)  # the app's own answer, then the close at the deadline
            tg.cancel_scope.cancel()
        assert status == 405


async def test_connections_per_client_address_are_capped_and_admitted_again_once_one_closes() -> None:
    async with gateway_at(max_connections_per_client=3, keep_alive_timeout=60) as (url, port):
        held = [await connect(port, OTHER_ADDRESS) for _ in range(3)]
        try:
            for stream in held:  # answered, so the server holds each one
                await stream.send(HEALTH + b"\r\n")
                assert (await stream.receive()).startswith(b"HTTP/1.1 200")
            extra = await connect(port, OTHER_ADDRESS)
            async with extra:
                status, body = await answer(extra)
            assert (status, body["error"]["code"]) == (429, RATE_LIMITED)
            assert await echo(url) == "hi"  # another address is not affected
            await held.pop().aclose()
            with anyio.fail_after(ANSWER_WITHIN):
                while not await _healthy_from(port, OTHER_ADDRESS):
                    await anyio.sleep(0.05)
        finally:
            for stream in held:
                await stream.aclose()


async def _healthy_from(port: int, local_host: str) -> bool:
    stream = await connect(port, local_host)
    async with stream:
        await send_quietly(stream, HEALTH + b"Connection: close\r\n\r\n")
        status, _ = await answer(stream)
    return status == 200


def test_mcp_gateway_serve_applies_the_configured_limits(processes: Processes, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("backends: []\nsecurity:\n  http: {max_header_bytes: 4096, header_timeout: 0.5}\n")
    port = free_port()
    processes.start("-m", "gateway", "serve", "--config", str(config), "--port", str(port), stderr=subprocess.PIPE)
    wait_until(lambda: listening(port) and http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200)

    async def refused() -> list[int]:
        statuses = []
        for request in (HEALTH + b"X-Long: " + b"a" * 64 * 1024, HEALTH):
            stream = await connect(port)
            async with stream:
                await send_quietly(stream, request)
                statuses.append((await answer(stream))[0])
        return statuses

    assert anyio.run(refused) == [431, 408]
