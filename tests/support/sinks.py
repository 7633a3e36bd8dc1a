"""A ``Sink`` (``gateway.upstream.sink``) that records what a backend sends during a call and answers its requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Reply = Callable[[dict[str, Any]], dict[str, Any]]


class RecordingSink:
    """Keeps the notifications and requests it gets; ``reply`` makes each request's JSON-RPC response."""

    def __init__(self, reply: Reply = lambda request: {"result": {}}) -> None:
        self.notes: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._reply = reply

    async def notify(self, message: dict[str, Any]) -> None:
        self.notes.append(message)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(message)
        return self._reply(message)
