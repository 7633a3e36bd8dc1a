"""One request on one backend link, and the ways it can fail.

A link is whatever carries a request to a backend and its answer back: the SDK client session (stdio, SSE,
per-client connections: ``gateway.upstream.exchange.SdkLink``) or the raw path of a streamable-HTTP backend's shared
connection (``gateway.upstream.forward.Forwarder``). ``gateway.upstream.calls`` holds one through ``UpstreamLink``
and never asks which it is. Every link fails with these, never with the SDK's or the HTTP client's own exceptions:

    LinkError
    ├── LinkClosed       the link was gone before the request left: not sent (connection closed, nobody listening)
    ├── NotDelivered     the backend closed this request's connection while it was written: it cannot have acted
    ├── SessionGone      the backend no longer knows the link's session (a 404 to it): not acted on, link gone
    ├── ConnectionLost   the connection dropped after the request went out: the backend may have acted on it
    ├── TimedOut         no answer within the deadline; the request was cancelled at the backend
    ├── InvalidAnswer    the answer is not a valid response to the request for the negotiated protocol version
    ├── AnswerTooLarge   the answer passed the size the gateway reads
    └── BackendRejected  the backend's own JSON-RPC error, to be passed on unchanged (``error``)
"""

from __future__ import annotations

from typing import Any, Protocol

from mcp import MCPError
from mcp.types import INVALID_REQUEST
from pydantic import ValidationError

from gateway.upstream.caller import Caller

# How the SDK says a backend no longer knows our session: its client's wording for a bare 404 in a session, and
# its server's 404 body. Neither comes with a type of its own, so the links tell them by these words, here only.
_SESSION_GONE = ("session terminated", "session not found")


class UpstreamLink(Protocol):
    async def send(self, method: str, params: dict[str, Any], deadline: float, caller: Caller) -> dict[str, Any]:
        """Send one request and return its ``result`` as the backend sent it, checked against the negotiated
        protocol version; what the backend sends meanwhile goes to ``caller.sink``. Raises ``LinkError``."""


class LinkError(Exception):
    """A request on a link did not come back with a result."""


class LinkClosed(LinkError):
    """The link was already gone: the request did not leave."""


class NotDelivered(LinkError):
    """The backend took the connection but closed it before the whole request was written: this request's failure
    (one the backend refused to read, say), not the link's."""


class SessionGone(LinkError):
    """The backend answered 404 to the link's session: it restarted or expired it, and did not act on the request."""


class ConnectionLost(LinkError):
    """The connection dropped after the request was sent: the backend may have acted on it."""


class TimedOut(LinkError):
    """No answer within the deadline."""


class InvalidAnswer(LinkError):
    """The backend answered with something that is not a valid response to the request."""


class AnswerTooLarge(LinkError):
    """The backend's answer passed the size the gateway reads (the connection is dropped, not drained)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the answer passed {limit} bytes")


class BackendRejected(LinkError):
    """The backend answered with a JSON-RPC error of its own."""

    def __init__(self, error: MCPError) -> None:
        self.error = error
        super().__init__(str(error))


def rejected(error: MCPError) -> SessionGone | BackendRejected:
    """A JSON-RPC error that came back for a request: the SDK's or the backend's word that our session is gone, or
    the backend's own error."""
    if error.code == INVALID_REQUEST and error.message.lower() in _SESSION_GONE:
        return SessionGone(error.message)
    return BackendRejected(error)


def invalid(exc: ValidationError) -> InvalidAnswer:
    """An answer that failed its schema."""
    return InvalidAnswer(f"{exc.error_count()} validation errors")
