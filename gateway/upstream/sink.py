"""Where a backend's messages during one call go: the per-call hook for in-call notifications and requests.

While a call is in flight a backend may send, on that call's response stream, notifications (progress, logging)
and requests of its own (sampling, elicitation, roots). A ``Sink`` passed with the call receives them; without
one, notifications are dropped and requests are answered with a JSON-RPC error, so the backend never waits on
an answer that will not come. Messages are JSON-RPC objects as decoded from the wire, ids as the backend sent
them.
"""

from __future__ import annotations

from typing import Any, Protocol


class Sink(Protocol):
    async def notify(self, message: dict[str, Any]) -> None:
        """A notification the backend sent during the call."""

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """A request the backend sent during the call; returns the JSON-RPC response (``result`` or ``error``).

        The id of the returned object is replaced with the backend's request id before it is sent back.
        """
