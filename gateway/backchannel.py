"""A backend's own requests (sampling, elicitation, roots) and log messages arriving through the SDK's client
callbacks.

On a connection only one client uses (a per-client session) they belong to that client's call in flight, so they
go to its sink (a log message sent while no call is in flight belongs to no request and is dropped). On a
connection every client shares (a stdio or SSE link without per-client sessions) nothing says which client's call
caused them, so requests are refused with an error that says how to make them work, rather than guessed at (a
request must never reach another client), and log messages are dropped. Over streamable HTTP they arrive on the
call's own stream instead and never come here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from mcp import types
from mcp.client.session import ClientRequestContext
from pydantic import BaseModel, ValidationError

from gateway.sink import Sink

ResultT = TypeVar("ResultT", bound=BaseModel)
SHARED = (
    "this backend's link is shared by every client, so its requests cannot be routed to one; "
    "configure the backend with session: per_client"
)


class BackChannel:
    """The callbacks of one backend connection, answering through the sink of the call in flight."""

    def __init__(self, refusal: str = SHARED) -> None:
        self._sinks: list[Sink] = []
        self._refusal = refusal

    @contextmanager
    def attached(self, sink: Sink | None) -> Iterator[None]:
        """While a call runs on this connection, its client answers the backend's requests."""
        if sink is None:
            yield
            return
        self._sinks.append(sink)
        try:
            yield
        finally:
            self._sinks.remove(sink)

    def callbacks(self) -> dict[str, Any]:
        """Keyword arguments for ``mcp.Client``; they also declare the capabilities to the backend."""
        return {
            "sampling_callback": self._sampling,
            "elicitation_callback": self._elicitation,
            "list_roots_callback": self._roots,
            "logging_callback": self._log,
        }

    async def _log(self, params: types.LoggingMessageNotificationParams) -> None:
        if self._sinks:
            wire = params.model_dump(by_alias=True, mode="json", exclude_none=True)
            await self._sinks[-1].notify({"method": "notifications/message", "params": wire})

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
        if not self._sinks:
            return types.ErrorData(code=types.INVALID_REQUEST, message=self._refusal)
        wire = params.model_dump(by_alias=True, mode="json", exclude_none=True) if params is not None else None
        reply = await self._sinks[-1].request({"method": method, "params": wire})
        try:
            if "error" in reply:
                return types.ErrorData.model_validate(reply["error"])
            return result.model_validate(reply.get("result"), by_name=False)
        except ValidationError:
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"the client's answer to {method} was invalid")
