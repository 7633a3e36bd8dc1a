"""The way back: what a backend sends during a call, delivered to the client that made that call.

A ``Relay`` is the ``Sink`` of one downstream request. Progress goes out against the caller's own progress token
(and only if it asked for progress). Log messages go out on the caller's request stream at the levels it asked
for: ``logging/setLevel`` for a 2025 connection (every level until it sets one), the request's own log level for
a 2026 client. The backend's requests (sampling, elicitation, roots) go to the caller, never another client,
when it declared the capability; the answer, or the error, goes back to the backend.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from mcp import MCPError, types
from mcp.server.connection import Connection, allowed_log_levels
from mcp.server.session import ServerSession
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.message import ServerMessageMetadata
from mcp.types import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND
from pydantic import BaseModel, ValidationError

from gateway.sdk import connection_of

logger = logging.getLogger(__name__)
LEVELS: tuple[types.LoggingLevel, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)
_REQUESTS: dict[str, tuple[type[BaseModel], type[BaseModel], types.ClientCapabilities]] = {
    "sampling/createMessage": (
        types.CreateMessageRequest,
        types.CreateMessageResult,
        types.ClientCapabilities(sampling=types.SamplingCapability()),
    ),
    "elicitation/create": (
        types.ElicitRequest,
        types.ElicitResult,
        types.ClientCapabilities(elicitation=types.ElicitationCapability()),
    ),
    "roots/list": (
        types.ListRootsRequest,
        types.ListRootsResult,
        types.ClientCapabilities(roots=types.RootsCapability()),
    ),
}


class LogLevels:
    """The ``logging/setLevel`` of each 2025 connection, held weakly."""

    def __init__(self) -> None:
        self._levels: weakref.WeakKeyDictionary[Connection, types.LoggingLevel] = weakref.WeakKeyDictionary()

    def set(self, session: ServerSession, level: types.LoggingLevel) -> None:
        self._levels[connection_of(session)] = level  # the connection outlives the per-request session

    def allowed(self, session: ServerSession, meta: Any) -> frozenset[str]:
        """The levels one request may receive."""
        levels = allowed_log_levels(session.protocol_version, meta)
        floor = self._levels.get(connection_of(session))
        if floor is None or len(levels) != len(LEVELS):
            return frozenset(levels)
        return frozenset(LEVELS[LEVELS.index(floor) :])


class Relay:
    """The ``Sink`` for one downstream request."""

    def __init__(self, session: ServerSession, request_id: types.RequestId, levels: frozenset[str]) -> None:
        self._session = session
        self._request_id = request_id
        self.levels = levels

    @property
    def log_floor(self) -> types.LoggingLevel | None:
        """The lowest level the caller wants, to ask the backend for; ``None`` when it wants no log messages."""
        return next((level for level in LEVELS if level in self.levels), None)

    async def notify(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params") or {}
        try:
            if method == "notifications/progress":
                progress = types.ProgressNotificationParams.model_validate(params)
                await self._session.report_progress(progress.progress, progress.total, progress.message)
            elif method == "notifications/message":
                entry = types.LoggingMessageNotificationParams.model_validate(params)
                if entry.level in self.levels:
                    notification = types.LoggingMessageNotification(params=entry)
                    await self._session.send_notification(notification, related_request_id=self._request_id)
        except ValidationError:
            logger.debug("dropped a malformed %s from a backend", method)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        method = message.get("method")
        if method not in _REQUESTS:
            return _error(METHOD_NOT_FOUND, f"the gateway does not relay {method!r} requests")
        request_type, result_type, capability = _REQUESTS[str(method)]
        if not self._session.check_client_capability(capability):
            # The code the SDK's own client answers with when it lacks the capability.
            return _error(INVALID_REQUEST, f"the client did not declare the capability {method!r} needs")
        try:
            request = request_type.model_validate({"method": method, "params": message.get("params")}, by_name=False)
            metadata = ServerMessageMetadata(related_request_id=self._request_id)
            result = await self._session.send_request(request, result_type, metadata=metadata)  # type: ignore[arg-type]
        except ValidationError as exc:
            return _error(INVALID_PARAMS, f"invalid {method} request or answer: {exc.error_count()} errors")
        except NoBackChannelError:
            # What a 2026 backend answers in the same spot; a 2026 client takes no requests mid-call.
            return _error(INVALID_REQUEST, f"Cannot send {method!r}: the client has no back-channel for requests")
        except MCPError as exc:
            return {"error": exc.error.model_dump(by_alias=True, mode="json", exclude_none=True)}
        return {"result": result.model_dump(by_alias=True, mode="json", exclude_none=True)}


_CAPABILITY_FIELDS = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}


class NoBackChannel:
    """The ``Sink`` of a stateless 2026 request that asked for neither progress nor log messages.

    It answers as a ``Relay`` answers for such a request: notifications are dropped, and the backend's requests
    are refused with the error the ``Relay`` gives (a 2026 client takes no requests mid-call).
    """

    def __init__(self, capabilities: types.ClientCapabilities | None) -> None:
        self._capabilities = capabilities or types.ClientCapabilities()

    async def notify(self, message: dict[str, Any]) -> None:
        return None

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        method = message.get("method")
        if method not in _REQUESTS:
            return _error(METHOD_NOT_FOUND, f"the gateway does not relay {method!r} requests")
        if getattr(self._capabilities, _CAPABILITY_FIELDS[str(method)]) is None:
            return _error(INVALID_REQUEST, f"the client did not declare the capability {method!r} needs")
        return _error(INVALID_REQUEST, f"Cannot send {method!r}: the client has no back-channel for requests")


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
