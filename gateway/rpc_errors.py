"""The one translation of the gateway's errors (``gateway.errors``) to the JSON-RPC errors clients get."""

from __future__ import annotations

from typing import Any

from mcp import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, REQUEST_TIMEOUT

from gateway.errors import (
    BACKEND_UNAVAILABLE,
    OUTCOME_UNKNOWN,
    RATE_LIMITED,
    RESULT_TOO_LARGE,
    TOOL_WITHHELD,
    UNAUTHORIZED,
    BackendError,
    BackendMisbehaved,
    BackendTimeout,
    GatewayError,
    HeadTooLarge,
    InvalidArguments,
    InvalidCursor,
    InvalidRequestState,
    NeedsInput,
    OutcomeUnknown,
    RateLimited,
    RequestTimeout,
    ResultTooLarge,
    SubscriptionsUnsupported,
    ToolWithheld,
    TooManyConnections,
    Unauthorized,
    UnknownTarget,
)

_CODES: dict[type[BackendError], int] = {
    BackendTimeout: REQUEST_TIMEOUT,
    OutcomeUnknown: OUTCOME_UNKNOWN,
    BackendMisbehaved: INTERNAL_ERROR,
    SubscriptionsUnsupported: METHOD_NOT_FOUND,
}


def to_mcp_error(exc: GatewayError) -> MCPError:
    """The one place gateway errors become JSON-RPC errors."""
    if isinstance(exc, UnknownTarget):
        return MCPError(INVALID_PARAMS, str(exc), {exc.kind: exc.name})
    if isinstance(exc, InvalidCursor | InvalidRequestState):
        return MCPError(INVALID_PARAMS, str(exc))
    if isinstance(exc, InvalidArguments):
        return MCPError(INVALID_PARAMS, str(exc), {"tool": exc.tool, "path": exc.path})
    if isinstance(exc, RateLimited):
        return MCPError(RATE_LIMITED, str(exc), {"retryAfter": exc.retry_after})
    if isinstance(exc, ResultTooLarge):
        return MCPError(RESULT_TOO_LARGE, str(exc), {"backend": exc.backend})
    if isinstance(exc, ToolWithheld):
        return MCPError(TOOL_WITHHELD, str(exc), {"tool": exc.name})
    if isinstance(exc, Unauthorized):
        return MCPError(UNAUTHORIZED, str(exc))
    if isinstance(exc, NeedsInput):
        return MCPError(INVALID_REQUEST, str(exc), {"tool": exc.tool})
    if isinstance(exc, HeadTooLarge | RequestTimeout):
        return MCPError(INVALID_REQUEST, str(exc))
    if isinstance(exc, TooManyConnections):
        return MCPError(RATE_LIMITED, str(exc))
    if isinstance(exc, BackendError):
        data: dict[str, Any] = {"backend": exc.backend}
        return MCPError(_CODES.get(type(exc), BACKEND_UNAVAILABLE), str(exc), data)
    return MCPError(INTERNAL_ERROR, str(exc))
