"""The upstream link: the SDK's exceptions become the link's errors in one place, and the raw link stamps its
requests as the SDK session stamps its own, in the session the SDK connection opened.

The backends are SDK servers, served in process on real loopback sockets where HTTP matters.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

import anyio
import pytest
from mcp import Client, MCPError, types
from mcp.server import MCPServer
from mcp.shared.dispatcher import CallOptions
from pydantic import BaseModel, Field, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.upstream.backchannel import BackChannel
from gateway.upstream.caller import ANONYMOUS
from gateway.upstream.exchange import SdkLink
from gateway.upstream.link import (
    BackendRejected,
    ConnectionLost,
    InvalidAnswer,
    LinkClosed,
    SessionGone,
    TimedOut,
)
from gateway.upstream.negotiated import CLIENT_INFO, Negotiated
from tests.support.loopback import linked, serving

pytestmark = pytest.mark.anyio
ECHO = {"name": "echo", "arguments": {"text": "hi", "region": "eu-west"}}


def backend() -> MCPServer:
    server = MCPServer("linked")

    @server.tool(description="Echo the text back.")
    def echo(text: str, region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})] = "") -> str:
        return text

    @server.prompt(description="Greet someone.")
    def greet(who: str) -> str:
        return f"Hello {who}"

    @server.resource("toy://notes/{note_id}", description="A note by id.")
    def note(note_id: str) -> str:
        return f"note {note_id}"

    return server


class Forgetting:
    """An ASGI layer in front of a backend that, once told, no longer knows any session: ``"own"`` hands the
    request to the SDK server under an id it never issued (its own 404 with a JSON-RPC body), ``"bare"`` answers
    a bare 404, as a restarted server behind a proxy may."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.mode: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        in_session = scope["type"] == "http" and any(k == b"mcp-session-id" for k, _ in scope["headers"])
        if self.mode is None or not in_session:
            return await self.app(scope, receive, send)
        if self.mode == "bare":
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
            return await send({"type": "http.response.body", "body": b""})
        headers = [(k, b"forgotten" if k == b"mcp-session-id" else v) for k, v in scope["headers"]]
        await self.app({**scope, "headers": headers}, receive, send)


class _Session:
    def __init__(self, raised: BaseException) -> None:
        self.raised = raised

    async def send_request(self, *args: Any, **kwargs: Any) -> Any:
        raise self.raised


class _Failing:
    """Stands in for an SDK client whose session raises ``raised`` for every request."""

    def __init__(self, raised: BaseException) -> None:
        self.session = _Session(raised)


def validation_error() -> ValidationError:
    class Strict(BaseModel):
        n: int

    try:
        Strict.model_validate({"n": "x"})
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (MCPError(types.REQUEST_TIMEOUT, "Request 'tools/call' timed out"), TimedOut),
        (MCPError(types.CONNECTION_CLOSED, "Connection closed"), ConnectionLost),
        (MCPError(types.INVALID_REQUEST, "Session terminated"), SessionGone),
        (MCPError(types.INVALID_REQUEST, "Session not found"), SessionGone),
        (MCPError(types.INVALID_REQUEST, "bad request"), BackendRejected),
        (MCPError(-32099, "toy failure", {"why": "asked to"}), BackendRejected),
        (anyio.BrokenResourceError(), LinkClosed),
        (anyio.ClosedResourceError(), LinkClosed),
        (validation_error(), InvalidAnswer),
    ],
)
async def test_the_sdk_links_errors_are_the_links_own(raised: BaseException, expected: type[Exception]) -> None:
    link = SdkLink(_Failing(raised))  # type: ignore[arg-type]
    with pytest.raises(expected) as failed:
        await link.send("tools/call", {"name": "echo"}, 5.0, ANONYMOUS)
    if isinstance(failed.value, BackendRejected):
        assert failed.value.error is raised  # passed on unchanged, data and all


@pytest.mark.parametrize("forgets", ["own", "bare"])
async def test_a_real_404_for_the_session_is_session_gone_on_both_links(forgets: str) -> None:
    app = Forgetting(backend().streamable_http_app(host="127.0.0.1"))
    async with serving(app) as url, linked(url, "legacy") as (client, raw):
        assert (await SdkLink(client).send("tools/call", ECHO, 5.0, ANONYMOUS))["content"][0]["text"] == "hi"
        app.mode = forgets
        with pytest.raises(SessionGone):
            await SdkLink(client).send("tools/call", ECHO, 5.0, ANONYMOUS)
        with pytest.raises(SessionGone):
            await raw.send("tools/call", ECHO, 5.0, ANONYMOUS)


async def test_the_raw_link_holds_the_session_the_sdk_connection_opened_and_no_other() -> None:
    server = backend()
    async with serving(server.streamable_http_app(host="127.0.0.1")) as url, linked(url, "legacy") as (_, raw):
        answer = await raw.send("tools/call", ECHO, 5.0, ANONYMOUS)
        sessions = server.session_manager._server_instances  # one session: the SDK connection's
        assert list(sessions) == [raw.session_id]
    assert answer["content"][0]["text"] == "hi"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tools/call", ECHO),
        ("tools/call", {"name": "echo", "arguments": {"text": "x"}, "_meta": {"progressToken": 3}}),
        ("prompts/get", {"name": "greet", "arguments": {"who": "Ada"}}),
        ("resources/read", {"uri": "toy://notes/7"}),
        (
            "completion/complete",
            {"ref": {"type": "ref/prompt", "name": "greet"}, "argument": {"name": "who", "value": "A"}},
        ),
    ],
)
async def test_the_raw_stamp_is_the_sdk_sessions_stamp(mode: str, method: str, params: dict[str, Any]) -> None:
    """In both eras, with the gateway's callbacks (its declared capabilities) and a tool's ``x-mcp-header``."""
    options = {**BackChannel().callbacks()}
    async with Client(backend(), mode=mode, client_info=CLIENT_INFO, **options) as client:
        listed = await client.list_tools()
        sdk: dict[str, Any] = {"method": method, "params": copy.deepcopy(params)}
        sdk_options: CallOptions = {}
        client.session._stamp(sdk, sdk_options)
        stamped, headers = Negotiated.at(client.protocol_version, listed.tools).stamp(method, params)
    assert stamped == sdk["params"]
    assert headers == sdk_options.get("headers", {})
    if mode == "auto" and method == "tools/call" and "region" in params.get("arguments", {}):
        assert headers["Mcp-Param-Region"] == "eu-west"
