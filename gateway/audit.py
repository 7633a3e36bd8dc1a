"""The audit log: one JSON line per call, each carrying the hash of the line before it.

A line records the time, principal (its key, which names its source: ``api_key:alice``), kind, canonical name,
backend, outcome, latency, request id and a SHA-256 of the arguments (the arguments themselves only with
``include_arguments``, and then with every key named in ``redact_keys`` replaced, at any depth). ``prev`` is the
SHA-256 of the previous line's bytes (64 zeros for the first), so ``verify`` finds any line that was edited,
removed or moved. Lines cut from the end of the file leave no trace in what remains; ship the log elsewhere if
that matters. One writer per file: give each replica its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.config import AuditConfig

logger = logging.getLogger(__name__)
GENESIS = "0" * 64
REDACTED = "[redacted]"


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
    """Appends chained lines to the configured file; a no-op without one."""

    def __init__(self, config: AuditConfig) -> None:
        self._config = config
        self._redact = {k.lower() for k in config.redact_keys}
        self._path = config.file
        self._prev = _last_hash(config.file) if config.file else GENESIS

    @property
    def enabled(self) -> bool:
        return self._path is not None

    def record(self, entry: Entry) -> None:
        if self._path is None:
            return
        line: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "principal": entry.principal,
            "kind": entry.kind,
            "name": entry.name,
            "backend": entry.backend,
            "outcome": entry.outcome,
            "latency_ms": round(entry.latency_ms, 3),
            "request_id": entry.request_id,
            "arguments_sha256": digest(entry.arguments),
            "prev": self._prev,
        }
        if self._config.include_arguments:
            line["arguments"] = self._redacted(entry.arguments)
        data = json.dumps(line, separators=(",", ":"), sort_keys=True, default=str).encode()
        try:
            with self._path.open("ab") as handle:
                handle.write(data + b"\n")
        except OSError as exc:
            logger.error("cannot write the audit log %s: %s", self._path, exc.strerror or exc)
            return
        self._prev = hashlib.sha256(data).hexdigest()

    def _redacted(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: REDACTED if str(k).lower() in self._redact else self._redacted(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redacted(v) for v in value]
        return value


def digest(arguments: Any) -> str:
    """SHA-256 of the arguments as canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(arguments, separators=(",", ":"), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _last_hash(path: Path) -> str:
    """The hash of the file's last line, so a restarted gateway continues the chain."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            handle.seek(max(0, end - 65536))
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return GENESIS
    return hashlib.sha256(lines[-1]).hexdigest() if lines else GENESIS


def verify(lines: Iterable[bytes]) -> tuple[int, str | None]:
    """Check the chain: the number of good lines, and what is wrong with the first bad one (``None``: intact)."""
    expected = GENESIS
    count = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\n")
        try:
            prev = json.loads(line).get("prev")
        except (ValueError, AttributeError):
            return count, f"line {number} is not a JSON object"
        if prev != expected:
            return count, f"line {number}: the chain breaks here (a line at or before it was edited, removed or moved)"
        expected = hashlib.sha256(line).hexdigest()
        count += 1
    return count, None
