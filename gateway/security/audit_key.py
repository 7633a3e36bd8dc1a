"""The audit key: the secret that seals audit lines, checkpoints and the anchor, and keys the argument digests.

It is ``security.audit.key``, or the contents of ``key_file``, or, with neither, of ``<log>.key`` beside the log.
A key file that does not exist is generated (mode 0600) when its log does not exist either, and the start logs
where; a log that exists without its key is not continued, since a new key could not verify it. Keep a copy of
the key away from the log: whoever holds it can rewrite the log undetected.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from gateway.config import MIN_AUDIT_KEY, AuditConfig
from gateway.errors import AuditLogError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditKey:
    """One secret, split into a key per use, so a MAC made for one purpose never passes for another."""

    chain: bytes
    anchor: bytes
    arguments: bytes
    id: str

    @classmethod
    def derive(cls, secret: str) -> AuditKey:
        if len(secret) < MIN_AUDIT_KEY:
            raise AuditLogError(f"the audit key must be at least {MIN_AUDIT_KEY} characters")
        master = secret.encode()

        def sub(label: bytes) -> bytes:
            return hmac.new(master, label, hashlib.sha256).digest()

        return cls(sub(b"chain"), sub(b"anchor"), sub(b"arguments"), sub(b"id").hex()[:16])


def beside(log: Path) -> Path:
    """Where a log's key is when none is configured."""
    return log.with_name(f"{log.name}.key")


def load_key(config: AuditConfig, log: Path) -> AuditKey:
    """The gateway's key for ``log``: from the config, else from its key file, generated on the log's first start."""
    if config.key is not None:
        return AuditKey.derive(config.key.get_secret_value())
    path = config.key_file or beside(log)
    if not path.exists():
        if log.exists() and log.stat().st_size > 0:
            raise AuditLogError(
                f"the audit log {log} exists but its key file {path} does not: restore the key, "
                "or move the log aside to start a new one"
            )
        _generate(path)
        logger.warning("generated a new audit key in %s (mode 0600); keep a copy away from the log", path)
    return read_key(path)


def read_key(path: Path) -> AuditKey:
    try:
        text = path.read_text(encoding="utf-8").strip()
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditLogError(f"cannot read the audit key {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if mode & 0o077:
        logger.warning("the audit key %s can be read by other users (mode %o); chmod 600 it", path, mode & 0o777)
    try:
        return AuditKey.derive(text)
    except AuditLogError as exc:
        raise AuditLogError(f"{path}: {exc}") from None


def _generate(path: Path) -> None:
    """A new random key, created only if no file is there (two processes starting at once agree on one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise AuditLogError(f"cannot create the audit key {path}: {exc.strerror or exc}") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(48) + "\n")
