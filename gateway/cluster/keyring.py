"""The keys replicas share: the newest seals, every one still configured opens, so keys rotate without a cut.

Each configured secret is split (HMAC-SHA256 with a label, as the audit key is) into a key per purpose, so a value
sealed for one purpose never opens for another, and a short public id, so opening tries the one key that sealed a
value rather than each in turn. ``seal`` is AES-256-GCM over zlib-compressed bytes, with the purpose and key id as
associated data: what it carries is neither readable nor changeable by the client. A value sealed with a key that
has been removed does not open: that is how old session ids are retired.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE = 12
MAX_PLAIN = 64 * 1024


@dataclass(frozen=True)
class _Key:
    id: str
    secret: bytes

    def sub(self, purpose: str) -> bytes:
        return hmac.new(self.secret, purpose.encode(), hashlib.sha256).digest()


class Keyring:
    """Seals and opens values for one purpose at a time with the configured secrets, newest first."""

    def __init__(self, secrets_newest_first: Sequence[str]) -> None:
        if not secrets_newest_first:
            raise ValueError("a keyring needs at least one key")
        keys = [_Key(_key_id(s.encode()), s.encode()) for s in secrets_newest_first]
        self._newest = keys[0]
        self._by_id = {key.id: key for key in reversed(keys)}

    def mac_keys(self, purpose: str) -> list[bytes]:
        """The purpose's MAC keys, newest first (for HMACs that are tried against each)."""
        return [self._newest.sub(purpose), *(k.sub(purpose) for k in self._by_id.values() if k is not self._newest)]

    def seal(self, purpose: str, plain: bytes) -> str:
        """``plain`` sealed with the newest key: URL-safe text naming the key by its id."""
        nonce = secrets.token_bytes(NONCE)
        aad = f"{purpose}\0{self._newest.id}".encode()
        sealed = AESGCM(self._newest.sub(purpose)).encrypt(nonce, zlib.compress(plain), aad)
        return f"{self._newest.id}.{_b64(nonce + sealed)}"

    def open(self, purpose: str, token: str) -> bytes | None:
        """What ``seal`` sealed for ``purpose`` with a key still configured; None for anything else."""
        key_id, dot, body = token.partition(".")
        key = self._by_id.get(key_id)
        if not dot or key is None:
            return None
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            packed = AESGCM(key.sub(purpose)).decrypt(raw[:NONCE], raw[NONCE:], f"{purpose}\0{key.id}".encode())
            inflater = zlib.decompressobj()
            plain = inflater.decompress(packed, MAX_PLAIN)
        except (InvalidTag, ValueError, binascii.Error, zlib.error):
            return None
        return plain if inflater.eof else None


def _key_id(secret: bytes) -> str:
    return hmac.new(secret, b"id", hashlib.sha256).hexdigest()[:8]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
