"""Who a request comes from, as the layers below the MCP front need to know it."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.sink import Sink


@dataclass(frozen=True)
class Caller:
    """The client behind one request.

    ``session`` is its downstream session (a 2025 ``Mcp-Session-Id``, or the stdio client; ``None`` for a
    stateless 2026 client): backends with per-client sessions keep one connection per value. ``sink`` receives
    what a backend sends during the request (progress, logs, requests of its own) on the way to this client.
    ``log_level`` is the lowest log level it wants from this request (``None``: none), asked of the backend.
    """

    session: str | None = None
    sink: Sink | None = None
    log_level: str | None = None


ANONYMOUS = Caller()
