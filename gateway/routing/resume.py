"""Multi-round-trip requests (2026-07-28): a backend's ``input_required`` answer, and the client's retry.

A backend that needs input returns ``input_required`` with its questions and an opaque ``requestState``; the client
answers them and retries the same request with ``inputResponses`` and that state. The gateway passes both ways
unchanged but for the state, which it seals to the caller that received it (an HMAC over the state, the request
it belongs to and the caller's identity, with a key that never leaves the process). Another caller's retry, or a
state the gateway never issued, is refused with ``-32602`` before it reaches the backend.

A 2025 client knows nothing of ``input_required``, but it takes requests mid-call: the gateway bridges by asking it
each question itself (``answers``) and retrying for it, as a 2026 client would.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from mcp import MCPError, types

from gateway.errors import InvalidRequestState
from gateway.upstream.sink import Sink

MAX_ROUNDS = 8

_SEP = "."


class StateSeal:
    """Seals backend request states to their caller."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def seal(self, state: str, target: str, identity: str) -> str:
        return f"{self._mac(state, target, identity)}{_SEP}{state}"

    def open(self, sealed: str, target: str, identity: str) -> str:
        """The backend's state, if the gateway issued ``sealed`` to this caller for this target."""
        mac, sep, state = sealed.partition(_SEP)
        if not sep or not hmac.compare_digest(mac, self._mac(state, target, identity)):
            raise InvalidRequestState()
        return state

    def _mac(self, state: str, target: str, identity: str) -> str:
        message = "\0".join((target, identity, state)).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]


async def answers(sink: Sink, result: types.InputRequiredResult) -> dict[str, Any]:
    """Ask the client each question of ``result`` over its request stream; its error ends the call."""
    responses: dict[str, Any] = {}
    for key, request in (result.input_requests or {}).items():
        reply = await sink.request(request.model_dump(by_alias=True, mode="json", exclude_none=True))
        if "error" in reply:
            error = types.ErrorData.model_validate(reply["error"])
            raise MCPError(error.code, error.message, error.data)
        responses[key] = reply.get("result")
    return responses
