"""Structured logs: every log record as one JSON object a line, and one access line per MCP call.

With ``--log-format json`` (``logging.format: json``) the command line puts ``JsonFormatter`` on the log handler and
turns the access lines on; in the human format there are none, so its lines stay as they were. An access line
(logger ``gateway.access``) carries the call's method, name, principal, backend, era, duration, outcome, the
W3C trace id of the request's ``traceparent`` header and the caller's downstream session as a digest, never the id.
Configured secrets are cut from every field (the redactor the formatter is given), as from every other log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from gateway.telemetry import tracing

logger = logging.getLogger("gateway.access")
ACCESS = "access"
# W3C Trace Context: version-traceid-parentid-flags; an all-zero trace id is invalid.
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_traceparent: ContextVar[str | None] = ContextVar("traceparent", default=None)
_on = False


def enable(on: bool) -> None:
    """Write access lines, or not (the human format has none)."""
    global _on
    _on = on


def enabled() -> bool:
    return _on


def served(method: str, principal: str, era: str, session: str | None) -> None:
    """The access line of a request answered from a cache (a list page): no backend, no time worth counting."""
    write(method, "", principal, None, era, 0.0, "ok", session)


def use_json(redact: Callable[[Any], Any]) -> None:
    """JSON lines on every handler of the root logger, and access lines on."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter(redact))
    enable(True)


def as_line(message: str) -> str:
    """A message printed to stderr outside logging (the listening banner), as a JSON line while they are on."""
    if not _on:
        return message
    record = logging.LogRecord("gateway.cli", logging.INFO, "", 0, message, None, None)
    return JsonFormatter().format(record)


def keep_traceparent(value: str | None) -> None:
    """The ``traceparent`` header of the request being served, for ``current_trace_id``."""
    _traceparent.set(value)


def current_trace_id() -> str | None:
    """The trace id of the request being served: its span's while traces are on, else its ``traceparent`` header's,
    when that is valid."""
    traced = tracing.current_trace_id()
    if traced is not None:
        return traced
    header = _traceparent.get()
    match = _TRACEPARENT.fullmatch(header.strip().lower()) if header else None
    trace = match.group(1) if match else None
    return trace if trace and trace != "0" * 32 else None


def masked(session: str | None) -> str | None:
    """A downstream session as the log shows it: a short digest that tells sessions apart and names none."""
    return None if session is None else "s-" + hashlib.sha256(session.encode()).hexdigest()[:12]


def write(
    method: str,
    name: str,
    principal: str,
    backend: str | None,
    era: str | None,
    seconds: float,
    outcome: str,
    session: str | None,
) -> None:
    """One call's access line, when they are on."""
    if not _on:
        return
    fields = {
        "method": method,
        "name": name,
        "principal": principal,
        "backend": backend,
        "era": era,
        "duration_ms": round(seconds * 1000, 3),
        "outcome": outcome,
        "trace_id": current_trace_id(),
        "session": masked(session),
    }
    logger.info("%s %s %s", method, name, outcome, extra={ACCESS: fields})


class JsonFormatter(logging.Formatter):
    """A record as one JSON line: time (UTC, RFC 3339), level, logger, message, an access line's fields, and a
    traceback as text; ``redact`` cuts configured secrets from the fields (the message is redacted already)."""

    def __init__(self, redact: Callable[[Any], Any] = lambda value: value) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, ACCESS, None)
        if isinstance(fields, dict):
            line.update(self._redact(fields))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["error"] = record.exc_text
        return json.dumps(line, default=str)


def _rfc3339(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"
