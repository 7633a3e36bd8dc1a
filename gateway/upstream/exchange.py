"""One request over one link to a backend, and the SDK client session as such a link.

``exchange`` sends a request on any ``UpstreamLink`` (``gateway.upstream.link``) and tells a 2026 backend's
``input_required`` answer apart from a result. ``SdkLink`` is the link of every connection the SDK client carries
(stdio, SSE, per-client connections, and HTTP backends whose calls carry the caller's token); it is the one place
where the SDK session's exceptions become the link's errors.
"""

from __future__ import annotations

from typing import Any, TypeVar

import anyio
from mcp import Client, MCPError, types
from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT
from pydantic import BaseModel, RootModel, ValidationError

from gateway.upstream.caller import ANONYMOUS, Caller
from gateway.upstream.link import ConnectionLost, LinkClosed, LinkError, TimedOut, UpstreamLink, invalid, rejected
from gateway.upstream.sink import Sink

ResultT = TypeVar("ResultT", bound=BaseModel)
_REQUESTS: dict[str, type[types.Request[Any, Any]]] = {
    "tools/call": types.CallToolRequest,
    "resources/read": types.ReadResourceRequest,
    "prompts/get": types.GetPromptRequest,
    "completion/complete": types.CompleteRequest,
}


class _Raw(RootModel[dict[str, Any]]):
    """An answer as the SDK session checked it against the method's schema; ``_parse`` tells its type."""


async def exchange(
    link: UpstreamLink,
    method: str,
    params: dict[str, Any],
    result_type: type[ResultT],
    deadline: float,
    caller: Caller = ANONYMOUS,
) -> ResultT | types.InputRequiredResult:
    """The backend's answer to one request: its result, or a 2026 ``input_required``. Raises ``LinkError``."""
    return _parse(await link.send(method, params, deadline, caller), result_type)


def _parse(raw: dict[str, Any], result_type: type[ResultT]) -> ResultT | types.InputRequiredResult:
    """A backend's answer: its result, or a 2026 ``input_required`` (for any request that may take rounds)."""
    try:
        if raw.get("resultType") == "input_required":
            return types.InputRequiredResult.model_validate(raw, by_name=False)
        return result_type.model_validate(raw, by_name=False)
    except ValidationError as exc:
        raise invalid(exc) from None


class SdkLink:
    """Requests through an SDK client's session, which stamps them, validates their answers for the negotiated
    version, and resumes their streams (streamable HTTP: the ``retry`` the backend asked for, then ``Last-Event-ID``).
    """

    def __init__(self, client: Client) -> None:
        self.client = client

    async def send(self, method: str, params: dict[str, Any], deadline: float, caller: Caller) -> dict[str, Any]:
        try:
            return await _sdk_send(self.client, method, params, deadline, caller.sink)
        except MCPError as exc:
            raise _translated(exc) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise LinkClosed("the connection is closed") from None
        except ValidationError as exc:
            raise invalid(exc) from None


def _translated(exc: MCPError) -> LinkError:
    """The link's error for an SDK one: the SDK raises ``MCPError`` for its own failures and the backend's alike."""
    if exc.code == REQUEST_TIMEOUT:
        return TimedOut(exc.message)
    if exc.code == CONNECTION_CLOSED:
        return ConnectionLost(exc.message)
    return rejected(exc)


async def _sdk_send(
    client: Client, method: str, params: dict[str, Any], deadline: float, sink: Sink | None
) -> dict[str, Any]:
    """The caller's progress token means nothing on a connection other clients share: the SDK puts its own on the
    request, and the progress it reports goes to ``sink`` (in the caller's name)."""
    meta = params.get("_meta") or {}
    wants_progress = "progressToken" in meta
    if wants_progress:
        params = {**params, "_meta": {k: v for k, v in meta.items() if k != "progressToken"}}
    request = _REQUESTS[method].model_validate({"method": method, "params": params}, by_name=False)

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        assert sink is not None
        update = {"progressToken": 0, "progress": progress, "total": total, "message": message}
        await sink.notify({"method": "notifications/progress", "params": update})

    on_progress = progress if wants_progress and sink is not None else None
    answer = await client.session.send_request(
        request, _Raw, request_read_timeout_seconds=deadline, progress_callback=on_progress
    )
    return answer.root
