"""Who a request comes from, as the layers below the MCP front need to know it."""

from __future__ import annotations

from dataclasses import dataclass

from mcp.types import ClientCapabilities

from gateway.principal import Principal
from gateway.upstream.sink import Sink


@dataclass(frozen=True)
class Caller:
    """The client behind one request.

    ``session`` is its downstream session, one the gateway issued: a 2025 ``Mcp-Session-Id`` the SDK's session
    manager let this principal into, or the stdio client; ``None`` for a 2026 client, whatever headers it sent.
    Backends with per-client sessions keep one connection per ``session_key``. ``sink`` receives
    what a backend sends during the request (progress, logs, requests of its own) on the way to this client.
    ``log_level`` is the lowest log level it wants from this request (``None``: none), asked of the backend.
    ``capabilities`` are the ones it declared, told to 2026 backends in its place. ``identity`` is
    who it is for request-state binding (see ``gateway.routing.resume``). ``modern``: it speaks 2026-07-28 and takes
    ``input_required`` answers itself. ``principal``: who it authenticated as (see ``gateway.principal``).
    """

    session: str | None = None
    sink: Sink | None = None
    log_level: str | None = None
    capabilities: ClientCapabilities | None = None
    identity: str = ""
    modern: bool = True
    principal: Principal | None = None

    @property
    def session_key(self) -> tuple[str, str] | None:
        """The per-client backend sessions this caller may use: its principal's, in its downstream session."""
        if self.session is None:
            return None
        return (self.principal.key if self.principal is not None else "", self.session)


ANONYMOUS = Caller()
