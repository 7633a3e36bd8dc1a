"""Pages of the gateway's own lists: opaque cursors, and the wire answers cached per catalogue generation.

A cursor names the sort key of the last item a page returned (keyset paging), so a client that walks every page
gets each item exactly once even when the catalogue changes between two pages: items are sorted by a unique key
and each page starts strictly after the previous one. The key is wrapped in URL-safe base64 with the list it
belongs to; anything else a client sends as a cursor is refused with -32602.

The SDK validates and serialises every list answer again on every request (for 10,000 tools, a second of CPU).
``ListCache`` keeps the answer the SDK produced, per list, name style, protocol version and cursor, and drops
every entry when the catalogue's generation moves; the fast path (``gateway.front.fastpath``) writes the cached
answer's JSON encoding, made once, instead of having the SDK dump it again: encoded as the SDK's stateless
transport encodes it (``json.dumps``) for 2026 clients, and as its session transport does (pydantic's JSON, which
leaves non-ASCII text unescaped) for 2025 sessions, so either era gets the bytes the SDK would have written.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Sequence
from typing import Any, TypeVar

import pydantic_core

from gateway.errors import InvalidCursor

ItemT = TypeVar("ItemT")
Key = tuple[str | int, ...]


def encode_cursor(kind: str, key: Key) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> Key:
    """The key a cursor names; ``InvalidCursor`` for anything the gateway did not hand out for this list."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidCursor(cursor) from None
    if not isinstance(value, list) or len(value) < 2 or value[0] != kind:
        raise InvalidCursor(cursor)
    key = value[1:]
    if not all(isinstance(part, str | int) and not isinstance(part, bool) for part in key):
        raise InvalidCursor(cursor)
    return tuple(key)


def page(
    kind: str, items: Sequence[ItemT], keys: Sequence[Key], cursor: str | None, size: int
) -> tuple[list[ItemT], str | None]:
    """The page after ``cursor`` (from the start without one) and the cursor of the next page, if any."""
    start = 0
    if cursor is not None:
        key = decode_cursor(kind, cursor)
        if keys and [type(part) for part in key] != [type(part) for part in keys[0]]:
            raise InvalidCursor(cursor)
        start = bisect.bisect_right(keys, key)
    end = start + size
    if end >= len(items):
        return list(items[start:]), None
    return list(items[start:end]), encode_cursor(kind, keys[end - 1])


def list_key(method: str, style: str, version: str | None, cursor: Any) -> tuple[Any, ...]:
    """What a list answer depends on besides the catalogue: the list, name style, protocol version and page."""
    return (method, style, version, cursor)


class Cached:
    """One list answer as the SDK shaped it, and its JSON encodings (each made once, on first use)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self._encoded: bytes | None = None
        self._session_encoded: bytes | None = None

    @property
    def encoded(self) -> bytes:
        """As the SDK's stateless (2026) transport encodes a result."""
        if self._encoded is None:
            self._encoded = json.dumps(self.answer, separators=(",", ":")).encode()
        return self._encoded

    @property
    def session_encoded(self) -> bytes:
        """As the SDK's 2025 session transport encodes a result (inside ``model_dump_json`` of the response)."""
        if self._session_encoded is None:
            self._session_encoded = pydantic_core.to_json(self.answer)
        return self._session_encoded


class ListCache:
    """Wire answers of list requests, valid for one catalogue generation."""

    def __init__(self) -> None:
        self._generation = -1
        self._answers: dict[tuple[Any, ...], Cached] = {}

    def get(self, generation: int, key: tuple[Any, ...]) -> Cached | None:
        if generation != self._generation:
            self._generation, self._answers = generation, {}
        return self._answers.get(key)

    def put(self, generation: int, key: tuple[Any, ...], answer: dict[str, Any]) -> None:
        if generation == self._generation:
            self._answers[key] = Cached(answer)
