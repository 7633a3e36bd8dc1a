"""The audit log: one sealed JSON line per call, allowed or refused, chained to the line before it.

A line records the time, principal (its key, which names its source: ``api_key:alice``), kind, canonical name,
backend, outcome, latency, request id and an HMAC of the arguments under the audit key, so a guess at them cannot
be checked without the key (the arguments themselves only with ``include_arguments``, and then with the value
under every secret-looking key name masked, at any depth). Strings longer than ``max_field_chars`` are cut and
marked with their length, and recorded arguments longer than ``max_arguments_chars`` are replaced by a marker, so
no caller decides how long a line is. Sealing, chaining, checkpoints and the anchor are
``gateway.security.audit_chain``'s. One writer per file: give each replica its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from gateway.config import AuditConfig
from gateway.security.audit_chain import Chain
from gateway.security.audit_key import AuditKey
from gateway.security.redaction import SecretNames


@dataclass(frozen=True)
class Entry:
    """One call as the audit log sees it."""

    principal: str
    kind: str
    name: str
    backend: str | None
    outcome: str
    latency_ms: float
    request_id: str | int | None
    arguments: Any = None


class AuditLog:
    """Appends sealed lines to the configured file; a no-op without one."""

    def __init__(self, config: AuditConfig) -> None:
        self._config = config
        self._names = SecretNames(config.redact_keys)
        self._chain = Chain.open(config, config.file) if config.file else None

    @property
    def enabled(self) -> bool:
        return self._chain is not None

    def record(self, entry: Entry) -> None:
        if self._chain is None:
            return
        cut = self._config.max_field_chars
        fields: dict[str, Any] = {
            "principal": bounded(entry.principal, cut),
            "kind": entry.kind,
            "name": bounded(entry.name, cut),
            "backend": entry.backend,
            "outcome": entry.outcome,
            "latency_ms": round(entry.latency_ms, 3),
            "request_id": bounded(entry.request_id, cut) if isinstance(entry.request_id, str) else entry.request_id,
            "arguments_hmac": digest(self._chain.key, entry.arguments),
        }
        if self._config.include_arguments:
            fields["arguments"] = self._recorded(entry.arguments)
        self._chain.append(fields)

    def close(self) -> None:
        """A clean shutdown: a last checkpoint, anchored, so every line written is covered."""
        if self._chain is not None:
            self._chain.close()

    def _recorded(self, arguments: Any) -> Any:
        shown = _bounded_strings(self._names.redact(arguments), self._config.max_field_chars)
        size = len(json.dumps(shown, separators=(",", ":"), default=str))
        return shown if size <= self._config.max_arguments_chars else f"[truncated, {size} chars]"


def digest(key: AuditKey, arguments: Any) -> str:
    """HMAC-SHA256 of the arguments as canonical JSON (sorted keys, no spaces) under the audit key's argument key."""
    canonical = json.dumps(arguments, separators=(",", ":"), sort_keys=True, default=str)
    return hmac.new(key.arguments, canonical.encode(), hashlib.sha256).hexdigest()


def bounded(value: str, limit: int) -> str:
    """``value``, or its first ``limit`` characters marked with the full length."""
    return value if len(value) <= limit else f"{value[:limit]}...[truncated, {len(value)} chars]"


def _bounded_strings(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return bounded(value, limit)
    if isinstance(value, dict):
        return {bounded(str(k), limit): _bounded_strings(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_bounded_strings(v, limit) for v in value]
    return value
