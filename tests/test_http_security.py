"""The HTTP security layer's decisions on a request, in process."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from gateway.composition.surface import Surface
from gateway.front.http_security import SecurityLayer
from tests.support.inproc import running_gateway
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio


class Recorder:
    """An app that remembers the body it was handed, and what the layer sent back."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.sent: list[Message] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.bodies.append((await receive())["body"])

    async def send(self, message: Message) -> None:
        self.sent.append(message)


def post(*chunks: Message) -> tuple[Scope, Receive]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")],
    }
    pending = list(chunks)

    async def receive() -> Message:
        return pending.pop(0)

    return scope, receive


async def test_a_body_cut_short_by_a_disconnect_reaches_no_app_and_gets_no_answer() -> None:
    whole = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "ops/echo"}}).encode()
    async with running_gateway({"ops": build("ops")}) as gateway:
        app = Recorder()
        layer = SecurityLayer(app, gateway, {"/mcp": Surface(gateway)})
        scope, receive = post(
            {"type": "http.request", "body": whole[:20], "more_body": True}, {"type": "http.disconnect"}
        )
        await layer(scope, receive, app.send)
        assert app.bodies == [] and app.sent == []
        scope, receive = post({"type": "http.request", "body": whole, "more_body": False})
        await layer(scope, receive, app.send)
    assert app.bodies == [whole]
