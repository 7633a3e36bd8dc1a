"""The gateway's error tree, and its one translation to JSON-RPC errors.

    GatewayError
    ├── ConfigError            invalid configuration (the CLI exits 2; never reaches a client)
    ├── StartupError           a required backend could not be reached at start (the CLI exits 1)
    ├── UnknownTarget          no tool, prompt or resource by that name        -> -32602
    ├── InvalidCursor          a list cursor the gateway did not hand out      -> -32602
    └── BackendError           something about one backend
        ├── BackendUnavailable the backend is not connected, or its circuit is open  -> -32050
        ├── OutcomeUnknown     the connection dropped mid-call; the call may or may not have run  -> -32051
        ├── BackendTimeout     the backend did not answer within its deadline  -> -32001
        └── BackendMisbehaved  the backend answered with something that is not valid MCP  -> -32603

Errors a backend itself returns (``MCPError``) pass through unchanged: the client sees the
backend's own code, message and data.
"""

from __future__ import annotations

from typing import Any

from mcp import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS, REQUEST_TIMEOUT

BACKEND_UNAVAILABLE = -32050
OUTCOME_UNKNOWN = -32051


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration cannot be used; the message names the source, the field and the problem."""


class StartupError(GatewayError):
    """The gateway cannot start as configured; the message names the backend."""


class UnknownTarget(GatewayError):
    """A client named a tool, prompt or resource that no connected backend offers."""

    def __init__(self, kind: str, name: str, hint: str | None = None) -> None:
        self.kind = kind
        self.name = name
        message = f"Unknown {kind}: {name!r}"
        super().__init__(f"{message} ({hint})" if hint else message)


class InvalidCursor(GatewayError):
    """A client sent a list cursor that is not one the gateway handed out for that list."""

    def __init__(self, cursor: str) -> None:
        self.cursor = cursor
        super().__init__(f"Invalid cursor: {cursor[:100]!r}")


class InvalidRequestState(GatewayError):
    """A retry carried a ``requestState`` the gateway did not issue to this caller for this request."""

    def __init__(self) -> None:
        super().__init__("Invalid requestState: it was not issued to this client for this request")


class BackendError(GatewayError):
    """A failure that belongs to one backend, named in the message."""

    def __init__(self, backend: str, message: str) -> None:
        self.backend = backend
        super().__init__(message)


class BackendUnavailable(BackendError):
    """The backend is down, still connecting, or its connection broke during the call."""

    def __init__(self, backend: str, reason: str | None = None) -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(backend, f"Backend {backend!r} is unavailable{detail}")


class BackendTimeout(BackendError):
    """The backend did not answer within its deadline."""

    def __init__(self, backend: str, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(backend, f"Backend {backend!r} did not answer within {seconds:g} s")


class OutcomeUnknown(BackendError):
    """A call that is not safe to repeat was in flight when the backend's connection dropped."""

    def __init__(self, backend: str, tool: str) -> None:
        self.tool = tool
        super().__init__(
            backend,
            f"Backend {backend!r} lost the connection while {tool!r} was running; it may or may not have completed, "
            "and it was not repeated because the tool is not marked idempotent or read-only",
        )


class BackendMisbehaved(BackendError):
    """The backend's answer did not validate as MCP."""

    def __init__(self, backend: str, detail: str) -> None:
        super().__init__(backend, f"Backend {backend!r} sent an invalid answer: {detail}")


_CODES: dict[type[BackendError], int] = {
    BackendTimeout: REQUEST_TIMEOUT,
    OutcomeUnknown: OUTCOME_UNKNOWN,
    BackendMisbehaved: INTERNAL_ERROR,
}


def to_mcp_error(exc: GatewayError) -> MCPError:
    """The one place gateway errors become JSON-RPC errors."""
    if isinstance(exc, UnknownTarget):
        return MCPError(INVALID_PARAMS, str(exc), {exc.kind: exc.name})
    if isinstance(exc, InvalidCursor | InvalidRequestState):
        return MCPError(INVALID_PARAMS, str(exc))
    if isinstance(exc, BackendError):
        data: dict[str, Any] = {"backend": exc.backend}
        return MCPError(_CODES.get(type(exc), BACKEND_UNAVAILABLE), str(exc), data)
    return MCPError(INTERNAL_ERROR, str(exc))
