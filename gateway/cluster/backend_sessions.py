"""Per-client backend sessions that outlive the replica that opened them: what another replica needs to adopt one.

A ``session: per_client`` backend over streamable HTTP gives the gateway a session of its own (the backend's
``Mcp-Session-Id``) for each downstream session. The replica that opens it keeps a ``BackendRecord`` in the shared
store, under the downstream session's digest and the backend's name (never either session id in the clear), with
a time to live of the backend's ``session_idle_timeout``, restarted whenever any replica uses it. The record is
sealed with the session keys, since the backend's session id lets its holder act in that session. Another replica
serving the same downstream session adopts the backend session from the record instead of opening its own.

Each backend session is ended once, by whichever replica claims it first (``closing``), however many replicas
hold a connection to it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from gateway.cluster.keyring import Keyring
from gateway.cluster.sessions import SharedSessions
from gateway.cluster.store import Store

PURPOSE = "backend-session"


@dataclass(frozen=True)
class BackendRecord:
    """One backend session as its opener saw it: who it is for, where, its id and the backend's ``initialize``
    result (the negotiated version and the server's capabilities), as the backend sent it."""

    principal: str
    url: str
    session_id: str
    result: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.result.get("protocolVersion", ""))


class BackendSessions:
    """The records of per-client backend sessions in the shared store."""

    def __init__(self, store: Store, keyring: Keyring) -> None:
        self._store = store
        self._keyring = keyring

    async def keep(self, backend: str, downstream: str, record: BackendRecord, ttl: float) -> None:
        sealed = self._keyring.seal(PURPOSE, json.dumps(asdict(record), separators=(",", ":")).encode())
        await self._store.set(_key(backend, downstream), sealed.encode(), ttl=ttl)

    async def find(self, backend: str, downstream: str, ttl: float) -> BackendRecord | None:
        """The record, its time to live restarted; None if there is none or it does not open with a current key."""
        raw = await self._store.touch(_key(backend, downstream), ttl)
        return None if raw is None else self._open(raw)

    async def peek(self, backend: str, downstream: str) -> BackendRecord | None:
        """The record, its time to live left as it is."""
        raw = await self._store.get(_key(backend, downstream))
        return None if raw is None else self._open(raw)

    async def used(self, backend: str, downstream: str, ttl: float) -> None:
        """Restart the record's time to live: the backend session is in use on this replica."""
        await self._store.touch(_key(backend, downstream), ttl)

    async def closing(self, backend: str, session_id: str, ttl: float) -> bool:
        """Whether this replica is the one to end the backend session ``session_id`` (the first to ask)."""
        digest = hashlib.sha256(session_id.encode()).hexdigest()[:32]
        return await self._store.claim(f"mcp-gateway:backend-session-closing:{backend}:{digest}", ttl)

    async def forget(self, backend: str, downstream: str) -> None:
        await self._store.delete(_key(backend, downstream))

    def _open(self, raw: bytes) -> BackendRecord | None:
        plain = self._keyring.open(PURPOSE, raw.decode())
        if plain is None:
            return None
        try:
            record = BackendRecord(**json.loads(plain))
        except (TypeError, ValueError):
            return None
        return record if isinstance(record.result, dict) else None


def _key(backend: str, downstream: str) -> str:
    """Under the downstream session's digest, as its own record is."""
    return f"{SharedSessions.digest(downstream)}:backend:{backend}"
