"""The raw link: requests to a streamable-HTTP backend as JSON-RPC bytes, beside the SDK client's connection.

The SDK ``Client`` connects, lists, listens, subscribes and probes; the calls themselves (``tools/call``,
``resources/read``, ``prompts/get``, ``completion/complete``) go out over keep-alive connections
(``gateway.upstream.http1``), much faster than through the SDK session. Answers are read as JSON or as an SSE stream,
and checked as the SDK session checks its own (``gateway.upstream.negotiated``). A stream the backend ends before
the answer, after giving its events ids, is resumed as the SDK's transport resumes one: after the ``retry`` delay
the backend asked for, a GET with ``Last-Event-ID``, as often as the backend ends it again with something new in
between, within the call's deadline; a backend that will not resume it (405, 404) loses the call's connection.

The link owns what its requests carry. The stamp is built from the SDK's public pieces once the handshake is done
(``bind``). The 2025 session id is the one the SDK connection negotiated, not one of the link's own: a handshake of
its own would open a second session at the backend, and the backend must see one, which also holds the
subscriptions and listen streams (on the SDK session) that a call's notifications belong to. The SDK's transport
keeps the id on an object its ``streamable_http_client`` does not expose, so the link reads it where that transport
does, from the backend's answer to the handshake, through a response hook on the SDK's HTTP client
(``on_response``).

Failures are the link's errors (``gateway.upstream.link``): ``LinkClosed`` when the backend could not be reached,
``NotDelivered`` when it closed the connection while the request was being written (so it cannot have acted on
it), ``ConnectionLost`` when the connection dropped after it was sent, ``TimedOut`` past the deadline,
``SessionGone`` on a 404 to a session, ``BackendRejected`` with the backend's own error as it sent it,
``InvalidAnswer`` for an answer that is not a valid response to the request, ``AnswerTooLarge``. A call abandoned by
its deadline or its caller is cancelled at the backend: its connection is closed (how a 2026 request is aborted),
and a 2025 session also gets ``notifications/cancelled``.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import httpx2
from anyio.abc import TaskGroup
from mcp import MCPError
from mcp.client.streamable_http import DEFAULT_RECONNECTION_DELAY_MS, LAST_EVENT_ID, MAX_RECONNECTION_ATTEMPTS
from mcp.types import INTERNAL_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND
from mcp_types import CLIENT_CAPABILITIES_META_KEY
from pydantic import ValidationError

from gateway.telemetry.tracing import carried_headers
from gateway.upstream.caller import Caller
from gateway.upstream.http1 import ConnectionDropped, HttpError, NotSent, Origin, Pool, Response, Unreachable
from gateway.upstream.link import (
    AnswerTooLarge,
    BackendRejected,
    ConnectionLost,
    InvalidAnswer,
    LinkClosed,
    LinkError,
    NotDelivered,
    SessionGone,
    TimedOut,
    invalid,
    rejected,
)
from gateway.upstream.negotiated import Negotiated
from gateway.upstream.sink import Sink

logger = logging.getLogger(__name__)
SESSION_HEADER = "mcp-session-id"
VERSION_HEADER = "mcp-protocol-version"
# Courtesy messages (a cancel, an answer to a backend's request) get this long; the call does not wait on them.
COURTESY_TIMEOUT = 2.0
# After the answer, the rest of an SSE stream (normally just its end) is read this long to keep the connection.
DRAIN_TIMEOUT = 0.5
_ACCEPT = "application/json, text/event-stream"


# Notifications about the backend as a whole, whichever call's stream they happen to ride on.
SESSION_NOTIFICATIONS = frozenset(
    {
        "notifications/resources/updated",
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
        "notifications/resources/list_changed",
    }
)


class Forwarder:
    """The raw link to one backend URL for the lifetime of one SDK connection to it (``UpstreamLink``)."""

    def __init__(self, url: str, headers: Mapping[str, str], connect_timeout: float, max_bytes: int) -> None:
        self._pool = Pool(Origin.parse(url), connect_timeout)
        self._max_bytes = max_bytes
        self._base = {
            **{name.lower(): value for name, value in headers.items()},
            "content-type": "application/json",
            "accept": _ACCEPT,
        }
        self.session_id: str | None = None
        self.negotiated: Negotiated | None = None
        self._ids = itertools.count(1)
        self.on_session_notification: Callable[[dict[str, Any]], Awaitable[None]] | None = None

    async def on_response(self, response: httpx2.Response) -> None:
        """An httpx2 response hook on the SDK connection's client: the session id the backend gives in its answer
        to the handshake, the one request sent without one."""
        if SESSION_HEADER not in response.request.headers and (session := response.headers.get(SESSION_HEADER)):
            self.session_id = session

    def bind(self, negotiated: Negotiated) -> None:
        """The handshake is done (or the backend's tools were listed again): stamp requests for ``negotiated``."""
        self.negotiated = negotiated

    def close(self) -> None:
        self._pool.close()

    async def send(self, method: str, params: dict[str, Any], deadline: float, caller: Caller) -> dict[str, Any]:
        """Send one request and return its ``result``; raises as described above."""
        negotiated = self.negotiated
        if negotiated is None:
            raise LinkClosed("the link's handshake is not done")
        params, headers = negotiated.stamp(method, params)
        if negotiated.modern and caller.capabilities is not None:
            declared = caller.capabilities.model_dump(by_alias=True, mode="json", exclude_none=True)
            params["_meta"][CLIENT_CAPABILITIES_META_KEY] = declared
        request_id = f"gw-{next(self._ids)}"
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        body = json.dumps(message, separators=(",", ":")).encode()
        headers = {name.lower(): value for name, value in headers.items()}
        head = {**self._session_headers(), **headers, **carried_headers(params.get("_meta"))}
        with anyio.move_on_after(deadline) as scope:
            try:
                result = await self._exchange(head, body, request_id, caller.sink)
            except anyio.get_cancelled_exc_class():
                if not scope.cancel_called:
                    await self._abandon(request_id, headers, negotiated.modern, "cancelled by the caller")
                raise
            try:
                return negotiated.checked(method, result)
            except ValidationError as exc:
                raise invalid(exc) from None
        await self._abandon(request_id, headers, negotiated.modern, f"timed out after {deadline:g} s")
        raise TimedOut(f"Request {method!r} timed out")

    def _session_headers(self) -> dict[str, str]:
        session = self.session_id
        return {**self._base, SESSION_HEADER: session} if session else self._base

    async def _exchange(
        self, head: Mapping[str, str], body: bytes, request_id: str, sink: Sink | None
    ) -> dict[str, Any]:
        try:
            response = await self._pool.request(head, body)
        except Unreachable as exc:
            raise LinkClosed(str(exc)) from None
        except NotSent as exc:
            raise NotDelivered(str(exc)) from None
        except ConnectionDropped as exc:
            raise ConnectionLost(str(exc)) from None
        try:
            return await self._answer(response, request_id, head, sink)
        except ConnectionDropped as exc:
            raise ConnectionLost(str(exc)) from None
        finally:
            self._pool.give_back(response)

    async def _answer(
        self, response: Response, request_id: str, head: Mapping[str, str], sink: Sink | None
    ) -> dict[str, Any]:
        if response.status >= 300 or response.status == 202:
            raise _status_error(response, await response.body(), bool(self.session_id))
        kind = response.content_type
        if kind.startswith("application/json"):
            return _result(_decode(await self._body(response)), request_id)
        if kind.startswith("text/event-stream"):
            return await self._events(response, request_id, head, sink)
        await response.body()
        raise BackendRejected(MCPError(INVALID_REQUEST, f"Unexpected content type: {kind}"))

    async def _events(
        self, response: Response, request_id: str, head: Mapping[str, str], sink: Sink | None
    ) -> dict[str, Any]:
        """Read the call's SSE stream: hand over what comes before the answer, then return the answer.

        The backend's own requests are answered in tasks of their own, so the stream is read on meanwhile: a
        backend that gives up on one (``notifications/cancelled``) has it cancelled at the client. The tasks
        outlive a stream the backend closes and the call resumes.
        """
        outcome: dict[str, Any] | Exception
        async with anyio.create_task_group() as tg:
            call = _Call(request_id, head, sink, tg)
            try:
                outcome = await self._follow(response, call)
            except Exception as exc:  # raised below, outside the task group, as it was raised
                outcome = exc
            finally:
                tg.cancel_scope.cancel()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _follow(self, response: Response, call: _Call) -> dict[str, Any]:
        """The answer on the call's stream, however often the backend ends the stream before it.

        A backend that gave its events ids may end a stream at any time and expects the client to resume it (the
        streamable-HTTP "Resumability and Redelivery" rules): after the ``retry`` delay it last asked for, a GET
        with ``Last-Event-ID`` continues the stream after the last event read. The call's deadline bounds it all.
        """
        try:
            return await self._read_events(response, call, drain=True)
        except ConnectionDropped:
            if call.events.last_id is None:
                raise
        stalled = 0
        while True:
            seen = call.events.last_id
            await anyio.sleep(call.events.retry / 1000)
            resumed = await self._resume(call)
            try:
                # A resumed stream may stay open after the answer: it is closed, not drained.
                return await self._read_events(resumed, call, drain=False)
            except ConnectionDropped:
                pass
            finally:
                self._pool.give_back(resumed)
            stalled = 0 if call.events.last_id != seen else stalled + 1
            if stalled >= MAX_RECONNECTION_ATTEMPTS:
                raise ConnectionLost(f"the event stream ended {stalled} times in a row without a new event")

    async def _resume(self, call: _Call) -> Response:
        """GET the rest of the call's stream, in the link's session; ``ConnectionLost`` if the backend will not."""
        assert call.events.last_id is not None
        head = {**self._session_headers(), **_versioned(call.head), LAST_EVENT_ID: call.events.last_id}
        try:
            response = await self._pool.request(head, b"", method="GET")
        except HttpError as exc:
            raise ConnectionLost(f"the event stream could not be resumed: {exc}") from None
        if response.status == 200 and response.content_type.startswith("text/event-stream"):
            return response
        self._pool.give_back(response)
        raise ConnectionLost(f"the backend answered {response.status} to resuming the event stream")

    async def _read_events(self, response: Response, call: _Call, *, drain: bool) -> dict[str, Any]:
        events = call.events
        while chunk := await response.chunk():
            if events.size + len(chunk) > self._max_bytes:
                raise AnswerTooLarge(self._max_bytes)
            for data in events.feed(chunk):
                message = _decode(data)
                if isinstance(message, dict) and "method" not in message and message.get("id") == call.request_id:
                    result = _result(message, call.request_id)
                    if drain:
                        await _drain(response)
                    return result
                if _is_request(message) and call.sink is not None:
                    call.asked[message["id"]] = anyio.CancelScope()
                    call.tg.start_soon(self._reply, message, call.head, call.sink, call.asked)
                else:
                    await self._incoming(message, call.head, call.sink, call.asked)
        raise ConnectionDropped("the event stream ended without an answer")

    async def _body(self, response: Response) -> bytes:
        """The whole body, refused past the limit before it is all in memory."""
        parts, read = [], 0
        while chunk := await response.chunk():
            read += len(chunk)
            if read > self._max_bytes:
                raise AnswerTooLarge(self._max_bytes)
            parts.append(chunk)
        return b"".join(parts)

    async def _incoming(
        self, message: Any, head: Mapping[str, str], sink: Sink | None, asked: dict[Any, anyio.CancelScope]
    ) -> None:
        """A notification (in order, before the answer), or a request nobody can answer."""
        if not isinstance(message, dict) or not isinstance(message.get("method"), str):
            return
        method = message["method"]
        if "id" in message:
            error = {"code": METHOD_NOT_FOUND, "message": "the gateway does not relay requests from this backend"}
            await self._courtesy({"jsonrpc": "2.0", "id": message["id"], "error": error}, head)
        elif method == "notifications/cancelled" and _cancelled_id(message) in asked:
            asked[_cancelled_id(message)].cancel()
        elif method in SESSION_NOTIFICATIONS and self.on_session_notification is not None:
            await self.on_session_notification(message)
        elif sink is not None:
            await sink.notify(message)

    async def _reply(
        self, message: dict[str, Any], head: Mapping[str, str], sink: Sink, asked: dict[Any, anyio.CancelScope]
    ) -> None:
        """Answer one of the backend's requests through the sink, unless the backend withdraws it meanwhile."""
        scope = asked[message["id"]]
        try:
            with scope:
                reply = await sink.request(message)
        finally:
            del asked[message["id"]]
        if not scope.cancelled_caught:
            await self._courtesy({**reply, "jsonrpc": "2.0", "id": message["id"]}, head)

    async def _abandon(self, request_id: str, headers: Mapping[str, str], modern: bool, reason: str) -> None:
        """The connection of the call is already closed (a 2026 abort); a 2025 session is also told."""
        if not modern:
            params = {"requestId": request_id, "reason": reason}
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}
            await self._courtesy(cancel, {**self._session_headers(), **_versioned(headers)})

    async def _courtesy(self, message: dict[str, Any], head: Mapping[str, str]) -> None:
        """POST a message that answers nothing back; bounded, shielded from the caller, failures only logged."""
        body = json.dumps(message, separators=(",", ":")).encode()
        plain = {k: v for k, v in head.items() if not k.startswith(("mcp-method", "mcp-name", "mcp-param-"))}
        with anyio.CancelScope(shield=True), anyio.move_on_after(COURTESY_TIMEOUT):
            try:
                response = await self._pool.request(plain, body)
                try:
                    await response.body()
                finally:
                    self._pool.give_back(response)
            except (NotSent, ConnectionDropped) as exc:
                logger.debug("courtesy message to %s not delivered: %s", self._pool.origin.authority, exc)


class EventParser:
    """Server-sent events from a byte stream: the ``data`` of each complete event (LF or CRLF line ends), and what
    resuming the stream takes: the last event id, the ``retry`` delay (ms) the server asked for."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0
        self.size = 0
        self.last_id: str | None = None
        self.retry = DEFAULT_RECONNECTION_DELAY_MS

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        self.size += len(chunk)
        out: list[bytes] = []
        while (found := self._boundary()) is not None:
            end, size = found
            block = bytes(self._buffer[:end])
            del self._buffer[: end + size]
            self._scanned = 0
            lines = []
            for line in block.splitlines():
                if line.startswith(b"data:"):
                    lines.append(line[5:].removeprefix(b" "))
                elif line.startswith(b"id:") and (event_id := line[3:].removeprefix(b" ")):
                    self.last_id = event_id.decode("utf-8", "replace")
                elif line.startswith(b"retry:") and (delay := line[6:].strip()).isdigit():
                    self.retry = int(delay)
            data = b"\n".join(lines)
            # An event with empty data is never dispatched (the SSE rules), such as the priming event (an id, a
            # retry delay and an empty data line) a 2025-11-25 server may open a stream with; its id still counts.
            if data:
                out.append(data)
        self._scanned = max(0, len(self._buffer) - 3)
        return out

    def _boundary(self) -> tuple[int, int] | None:
        ends = [(i, len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (i := self._buffer.find(sep, self._scanned)) >= 0]
        return min(ends) if ends else None


@dataclass
class _Call:
    """One call's stream, across the backend's closing and the call's resuming it."""

    request_id: str
    head: Mapping[str, str]
    sink: Sink | None
    tg: TaskGroup
    asked: dict[Any, anyio.CancelScope] = field(default_factory=dict)
    events: EventParser = field(default_factory=EventParser)


async def _drain(response: Response) -> None:
    """Read what is left of a stream after its answer, briefly, so the connection can be kept."""
    with anyio.move_on_after(DRAIN_TIMEOUT):
        try:
            while await response.chunk():
                pass
        except ConnectionDropped:
            pass


def _is_request(message: Any) -> bool:
    return isinstance(message, dict) and isinstance(message.get("method"), str) and "id" in message


def _cancelled_id(message: dict[str, Any]) -> Any:
    params = message.get("params")
    return params.get("requestId") if isinstance(params, dict) else None


def _decode(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise InvalidAnswer("the answer is not JSON") from None


def _result(message: Any, request_id: str) -> dict[str, Any]:
    if not isinstance(message, dict) or message.get("id") != request_id:
        raise InvalidAnswer("the answer is not a JSON-RPC response to the request")
    if "error" in message:
        raise rejected(_backend_error(message["error"]))
    result = message.get("result")
    if not isinstance(result, dict):
        raise InvalidAnswer("the response carries no result object")
    return cast(dict[str, Any], result)


def _backend_error(error: Any) -> MCPError:
    if not isinstance(error, dict) or not isinstance(error.get("code"), int) or isinstance(error["code"], bool):
        raise InvalidAnswer("the error in the response is not a JSON-RPC error object")
    return MCPError(error["code"], str(error.get("message", "")), error.get("data"))


def _status_error(response: Response, body: bytes, in_session: bool) -> LinkError:
    """What an HTTP status means for the request, as the SDK client reads it."""
    if response.status == 202:
        return BackendRejected(MCPError(INVALID_REQUEST, "server answered a request with 202 Accepted"))
    if response.status < 400:
        return BackendRejected(MCPError(INVALID_REQUEST, f"redirect ({response.status}) not followed"))
    if response.content_type.startswith("application/json"):
        try:
            message = json.loads(body)
        except ValueError:
            message = None
        if isinstance(message, dict) and isinstance(message.get("error"), dict):
            try:
                return rejected(_backend_error(message["error"]))
            except InvalidAnswer:
                pass
    if response.status == 404:
        if in_session:
            return SessionGone("Session terminated")
        return BackendRejected(MCPError(METHOD_NOT_FOUND, "Not Found"))
    return BackendRejected(MCPError(INTERNAL_ERROR, "Server returned an error response"))


def _versioned(headers: Mapping[str, str]) -> dict[str, str]:
    version = headers.get(VERSION_HEADER)
    return {VERSION_HEADER: version} if version else {}
