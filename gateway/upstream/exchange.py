"""One request over one connection to a backend, whatever carries it.

On the shared connection to a streamable-HTTP backend the request goes as raw JSON-RPC over the link's kept-alive
connections (``gateway.upstream.forward``), stamped by the SDK session that owns the link; everywhere else (stdio, SSE,
per-client connections) through the SDK session itself. Either way the caller's sink receives what the backend
sends during the call, and a 2026 backend's ``input_required`` answer is told apart from a result.
"""

from __future__ import annotations

from typing import Any, TypeVar

from mcp import Client, types
from mcp.shared.dispatcher import CallOptions
from mcp_types import CLIENT_CAPABILITIES_META_KEY
from pydantic import BaseModel, RootModel

from gateway.sdk import stamp
from gateway.upstream.caller import ANONYMOUS, Caller
from gateway.upstream.forward import Forwarder
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
    client: Client,
    forwarder: Forwarder | None,
    modern: bool,
    method: str,
    params: dict[str, Any],
    result_type: type[ResultT],
    deadline: float,
    caller: Caller = ANONYMOUS,
) -> ResultT | types.InputRequiredResult:
    """``forwarder``: the raw path, for the shared connection of an HTTP backend (else ``None``); ``modern``: the
    link speaks 2026-07-28, so the backend hears the caller's capabilities.

    Raises what the SDK session raises (see ``gateway.upstream.forward``), plus ``InvalidAnswer``.
    """
    if forwarder is None:
        return _parse(await _sdk_send(client, method, params, deadline, caller.sink), result_type)
    message: dict[str, Any] = {"method": method, "params": params}
    options: CallOptions = {}
    # The session's own stamp: the 2026 envelope and headers, or the 2025 protocol-version header.
    stamp(client, message, options)
    if modern and caller.capabilities is not None:
        declared = caller.capabilities.model_dump(by_alias=True, mode="json", exclude_none=True)
        message["params"]["_meta"][CLIENT_CAPABILITIES_META_KEY] = declared
    headers = options.get("headers", {})
    return _parse(await forwarder.send(message, headers, deadline, modern=modern, sink=caller.sink), result_type)


def _parse(raw: dict[str, Any], result_type: type[ResultT]) -> ResultT | types.InputRequiredResult:
    """A backend's answer: its result, or a 2026 ``input_required`` (for any request that may take rounds)."""
    if raw.get("resultType") == "input_required":
        return types.InputRequiredResult.model_validate(raw, by_name=False)
    return result_type.model_validate(raw, by_name=False)


async def _sdk_send(
    client: Client, method: str, params: dict[str, Any], deadline: float, sink: Sink | None
) -> dict[str, Any]:
    """The SDK's path. The caller's progress token means nothing on a connection other clients share: the SDK
    puts its own on the request, and the progress it reports goes to ``sink`` (in the caller's name)."""
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
