"""The gateway's error tree; ``gateway.rpc_errors`` translates it to JSON-RPC errors (the codes drawn here).

    GatewayError
    ├── ConfigError            invalid configuration (the CLI exits 2; never reaches a client)
    ├── PortUnavailable        a port the command would listen on is in use or cannot be bound (the CLI exits 2)
    ├── StartupError           a required backend could not be reached at start (the CLI exits 1)
    ├── StoreUnavailable       the shared store (Redis) did not answer; each concern fails open or closed
    │   └── AuditLogError      the audit log, its key or its anchor cannot be used as they are
    ├── UnknownTarget          no tool, prompt or resource by that name        -> -32602
    │   └── Forbidden          the principal's rules do not allow this name: answered as unknown -> -32602
    ├── InvalidCursor          a list cursor the gateway did not hand out      -> -32602
    ├── InvalidArguments       arguments that fail the tool's inputSchema (data.path names where) -> -32602
    ├── InvalidRequestState    a retry's requestState the gateway did not issue to this caller and request -> -32602
    ├── Unauthorized           no bearer credential (HTTP 401 before any JSON-RPC handling)   -> -32030
    │   └── InvalidToken       a bearer credential the gateway does not accept (error="invalid_token") -> -32030
    ├── RateLimited            the principal's (or the tool's) budget is spent; data.retryAfter -> -32032
    ├── ResultTooLarge         a backend's result exceeds its max_result_bytes                  -> -32033
    ├── ToolWithheld           a pinned tool changed and awaits an operator's approval          -> -32034
    ├── NeedsInput             a tool the gateway called for one of its own asked for input (input_required) -> -32600
    ├── HeadTooLarge           request line and headers past their size or count (HTTP 431)    -> -32600
    ├── RequestTimeout         a request's head or body not in by its deadline (HTTP 408)       -> -32600
    ├── TooManyConnections     the client's address has its share of connections (HTTP 429)     -> -32032
    └── BackendError           something about one backend
        ├── BackendUnavailable the backend is not connected, or its circuit is open  -> -32050
        ├── OutcomeUnknown     the connection dropped mid-call; the call may or may not have run  -> -32051
        ├── BackendTimeout     the backend did not answer within its deadline  -> -32001
        ├── SubscriptionsUnsupported  the resource's backend takes no subscriptions  -> -32601
        └── BackendMisbehaved  the backend answered with something that is not valid MCP  -> -32603

Errors a backend itself returns (``MCPError``) pass through unchanged: the client sees the
backend's own code, message and data. A denial is answered exactly as an unknown name (same code, message shape
and data, so the same HTTP status too): lists show a principal only what its rules allow, so a denied item is
never one the caller was shown, and a call must not reveal what the lists hide. The audit log still records it as
a denial. -32031 (the security model's "denied") is therefore reserved and not answered.

Nothing here imports the MCP SDK: the commands that only ask a running gateway over HTTP start without it.
"""

from __future__ import annotations

UNAUTHORIZED = -32030
RATE_LIMITED = -32032
RESULT_TOO_LARGE = -32033
TOOL_WITHHELD = -32034
BACKEND_UNAVAILABLE = -32050
OUTCOME_UNKNOWN = -32051


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration cannot be used; the message names the source, the field and the problem."""


class PortUnavailable(GatewayError):
    """A port the command would listen on is taken or not this host's; the message names it and what to do."""


class StoreUnavailable(GatewayError):
    """The shared store could not be reached or did not answer in time."""


class StartupError(GatewayError):
    """The gateway cannot start as configured; the message names the backend."""


class AuditLogError(StartupError):
    """The audit log cannot be continued: its key is missing or unusable, or the log or its anchor fail to verify."""


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


class InvalidArguments(GatewayError):
    """A tool's arguments do not validate against its ``inputSchema``; refused before the backend sees them."""

    def __init__(self, tool: str, path: str, problem: str) -> None:
        self.tool = tool
        self.path = path
        super().__init__(f"Invalid arguments for {tool!r} at {path}: {problem}")


class Forbidden(UnknownTarget):
    """The principal may not use this tool, prompt or resource (``name`` as the caller wrote it); to the caller it
    is unknown, as it is absent from the caller's lists."""


class NeedsInput(GatewayError):
    """A tool that one of the gateway's own tools called for the caller answered ``input_required``: the round
    would need the caller, who asked for the gateway's tool, not this one."""

    def __init__(self, tool: str) -> None:
        self.tool = tool
        super().__init__(f"Tool {tool!r} asked for input, which a call made by the gateway cannot pass on")


class Unauthorized(GatewayError):
    """The request carries no bearer credential: none at all, or another scheme."""


class InvalidToken(Unauthorized):
    """The request's bearer credential is not one the gateway accepts."""


class RateLimited(GatewayError):
    """A budget is spent; ``retry_after`` says in how many seconds the next call fits."""

    def __init__(self, scope: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"Rate limit reached for {scope}; retry in {retry_after:.3g} s")


class ResultTooLarge(GatewayError):
    """A backend's result is larger than the gateway forwards."""

    def __init__(self, backend: str, size: int, limit: int) -> None:
        self.backend = backend
        super().__init__(f"Backend {backend!r} returned {size} bytes; the limit is {limit}")


class ToolWithheld(GatewayError):
    """A pinned tool's definition changed; it stays hidden until an operator approves the new one."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"Tool {name!r} changed since it was pinned and awaits approval (mcp-gateway tools --approve)")


class HeadTooLarge(GatewayError):
    """A request's line and headers are larger, or more numerous, than the server reads."""


class RequestTimeout(GatewayError):
    """A request's head or body did not arrive within its deadline."""

    def __init__(self, part: str, seconds: float) -> None:
        super().__init__(f"Request {part} not received within {seconds:g} s")


class TooManyConnections(GatewayError):
    """The client's address already holds as many open connections as one address may."""

    def __init__(self, address: str, limit: int) -> None:
        super().__init__(f"Too many open connections from {address} (at most {limit})")


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


class SubscriptionsUnsupported(BackendError):
    """The resource's backend takes no subscriptions: the "method not found" it would answer itself."""

    def __init__(self, backend: str) -> None:
        super().__init__(backend, f"backend {backend!r} does not offer resource subscriptions")


class BackendMisbehaved(BackendError):
    """The backend's answer did not validate as MCP."""

    def __init__(self, backend: str, detail: str) -> None:
        super().__init__(backend, f"Backend {backend!r} sent an invalid answer: {detail}")
