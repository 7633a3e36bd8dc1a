"""Portable 2025 sessions: what never changes sealed in the session id, what changes kept in the shared store.

A 2025 client's ``Mcp-Session-Id`` is issued by the gateway, sealed with the cluster keyring (``Claims``: the
principal that opened it, the negotiated protocol version, the client's ``clientInfo`` and capabilities, when). Any
replica can open it, so any replica can re-create the session without a new ``initialize``. What a session gains
later (its resource subscriptions) lives in the store under a digest of the id, with a time to live of the
session idle timeout, restarted by every request on any replica (one ``GETEX``). The record's presence is the
session's life: a DELETE on any replica removes it, so every replica then refuses the id (404), as it refuses an
id that expired, was forged, or was sealed with a key no longer configured.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from gateway.cluster.keyring import Keyring
from gateway.cluster.store import Store

PURPOSE = "mcp-session-id"
KEY_PREFIX = "mcp-gateway:session:"


@dataclass(frozen=True)
class Claims:
    """What a session id carries: fixed at ``initialize``."""

    principal: str
    version: str
    client_info: dict[str, Any]
    capabilities: dict[str, Any]
    created: float


@dataclass(frozen=True)
class Record:
    """What a live session has gained since: the resources it subscribed to, by the URIs the client knows."""

    subscriptions: tuple[str, ...] = ()


class SharedSessions:
    """Issues and opens sealed session ids, and keeps each live session's record in the shared store."""

    def __init__(self, store: Store, keyring: Keyring, ttl: float) -> None:
        self._store = store
        self._keyring = keyring
        self.ttl = ttl

    def mint(self, claims: Claims) -> str:
        return self._keyring.seal(PURPOSE, json.dumps(asdict(claims), separators=(",", ":")).encode())

    def claims(self, session_id: str) -> Claims | None:
        """The id's claims, if a configured key sealed it; None for anything forged, altered or retired."""
        plain = self._keyring.open(PURPOSE, session_id)
        if plain is None:
            return None
        try:
            return Claims(**json.loads(plain))
        except (TypeError, ValueError):
            return None

    async def opened(self, session_id: str) -> None:
        await self._write(session_id, Record())

    async def touch(self, session_id: str) -> Record | None:
        """The live session's record, its time to live restarted; None once it ended or expired."""
        raw = await self._store.touch(_key(session_id), self.ttl)
        return None if raw is None else Record(tuple(json.loads(raw)["subscriptions"]))

    async def ended(self, session_id: str) -> None:
        await self._store.delete(_key(session_id))

    async def subscribed(self, session_id: str, uri: str, on: bool) -> None:
        """Note a subscription made (``on``) or dropped; a session that ended meanwhile stays ended."""
        record = await self.touch(session_id)
        if record is None:
            return
        uris = dict.fromkeys(record.subscriptions)
        if on:
            uris[uri] = None
        else:
            uris.pop(uri, None)
        await self._write(session_id, Record(tuple(uris)))

    @staticmethod
    def digest(session_id: str) -> str:
        """What names the session between replicas: a digest, as in the store, never the id itself."""
        return _key(session_id)

    async def _write(self, session_id: str, record: Record) -> None:
        value = json.dumps({"subscriptions": list(record.subscriptions)}).encode()
        await self._store.set(_key(session_id), value, ttl=self.ttl)


def _key(session_id: str) -> str:
    """The store holds a digest of the id, never the id itself (which is a bearer of the session)."""
    return KEY_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()[:32]
