"""A backend's own requests (sampling, elicitation, roots) and log messages arriving through the SDK's client
callbacks.

A message goes to the call it belongs to and to no other, and nothing the SDK hands the callbacks says which call
that is: a log message carries no request id, and a request's context names only the backend's own request id
(over stdio and SSE the wire carries no more). So they are routed only where one call can have caused them: on a
connection only one client uses (a per-client session) while exactly one call of that client is in flight, they go
to its sink. With no call in flight, or several at once (a client that overlaps its calls), requests are refused
with an error that says why and log messages are dropped, rather than guessed at. On a connection every client
shares (a stdio or SSE link without per-client sessions) the same holds, always: a request must never reach
another client. Over streamable HTTP they arrive on the call's own stream instead and never come here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from mcp import types
from mcp.client.session import ClientRequestContext
from pydantic import BaseModel, ValidationError

from gateway.upstream.sink import Sink

ResultT = TypeVar("ResultT", bound=BaseModel)
SHARED = (
    "this backend's link is shared by every client, so its requests cannot be routed to one; "
    "configure the backend with session: per_client"
)
OVERLAPPING = (
    "several calls of this client are in flight on this backend session and nothing says which one asked; "
    "make one call at a time to this backend when it needs to ask"
)


@dataclass(eq=False)
class _InFlight:
    """One call on the connection, told apart from any other by identity."""

    sink: Sink | None


class BackChannel:
    """The callbacks of one backend connection, answering through the sink of the call in flight."""

    def __init__(self, refusal: str = SHARED) -> None:
        self._calls: list[_InFlight] = []
        self._refusal = refusal

    @contextmanager
    def attached(self, sink: Sink | None) -> Iterator[None]:
        """While a call runs on this connection it is in flight here; alone, its client answers the backend's
        requests (a call without a sink takes none, but still makes the others' ambiguous)."""
        call = _InFlight(sink)
        self._calls.append(call)
        try:
            yield
        finally:
            self._calls.remove(call)

    def callbacks(self) -> dict[str, Any]:
        """Keyword arguments for ``mcp.Client``; they also declare the capabilities to the backend."""
        return {
            "sampling_callback": self._sampling,
            "elicitation_callback": self._elicitation,
            "list_roots_callback": self._roots,
            "logging_callback": self._log,
        }

    def _only(self) -> Sink | None:
        """The sink of the one call in flight; ``None`` with none, or several (nothing says which one it is)."""
        return self._calls[0].sink if len(self._calls) == 1 else None

    async def _log(self, params: types.LoggingMessageNotificationParams) -> None:
        sink = self._only()
        if sink is not None:
            wire = params.model_dump(by_alias=True, mode="json", exclude_none=True)
            await sink.notify({"method": "notifications/message", "params": wire})

    async def _sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.ErrorData:
        return await self._forward("sampling/createMessage", params, types.CreateMessageResult)

    async def _elicitation(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        return await self._forward("elicitation/create", params, types.ElicitResult)

    async def _roots(self, context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
        return await self._forward("roots/list", None, types.ListRootsResult)

    async def _forward(self, method: str, params: BaseModel | None, result: type[ResultT]) -> ResultT | types.ErrorData:
        sink = self._only()
        if sink is None:
            refusal = OVERLAPPING if len(self._calls) > 1 else self._refusal
            return types.ErrorData(code=types.INVALID_REQUEST, message=refusal)
        wire = params.model_dump(by_alias=True, mode="json", exclude_none=True) if params is not None else None
        reply = await sink.request({"method": method, "params": wire})
        try:
            if "error" in reply:
                return types.ErrorData.model_validate(reply["error"])
            return result.model_validate(reply.get("result"), by_name=False)
        except ValidationError:
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"the client's answer to {method} was invalid")
