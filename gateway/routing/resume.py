"""Multi-round-trip requests (2026-07-28): a backend's ``input_required`` answer, and the client's retry.

A backend that needs input returns ``input_required`` with its questions and an opaque ``requestState``; the client
answers them and retries the same request with ``inputResponses`` and that state. The gateway passes both ways
unchanged but for the state, which it seals to the caller that received it (an HMAC over the state, the request
it belongs to and the caller's identity, with a key that never leaves the process, or, with ``cluster``
session keys, one derived from them, so every replica opens what any sealed; the newest seals, each opens).
Another caller's retry, or a state the gateway never issued, is refused with ``-32602`` before it reaches the
backend.

A 2025 client knows nothing of ``input_required``, but it takes requests mid-call: the gateway bridges by asking it
each question itself (``answers``) and retrying for it, as a 2026 client would.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Any

from mcp import MCPError, types

from gateway.errors import InvalidRequestState
from gateway.upstream.sink import Sink

MAX_ROUNDS = 8

_SEP = "."


class StateSeal:
    """Seals backend request states to their caller."""

    def __init__(self, keys: Sequence[bytes] = ()) -> None:
        """``keys``: newest first; none, a random key of this process's own."""
        self._keys = list(keys) or [secrets.token_bytes(32)]

    def seal(self, state: str, target: str, identity: str) -> str:
        return f"{_mac(self._keys[0], state, target, identity)}{_SEP}{state}"

    def open(self, sealed: str, target: str, identity: str) -> str:
        """The backend's state, if the gateway issued ``sealed`` to this caller for this target."""
        mac, sep, state = sealed.partition(_SEP)
        if not sep or not any(hmac.compare_digest(mac, _mac(k, state, target, identity)) for k in self._keys):
            raise InvalidRequestState()
        return state


def _mac(key: bytes, state: str, target: str, identity: str) -> str:
    message = "\0".join((target, identity, state)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


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
