"""Secrets never leave the process: configured values are cut from log records, errors and status documents, and
values under secret-looking key names from the structured arguments the gateway records.

The configured secrets are the values themselves (``GatewayConfig.secret_values``). Log records are redacted
where they are made, through the logging record factory, so every handler (uvicorn's, a test's capture, stderr)
gets the redacted text, tracebacks included. Arguments are a caller's own and unknown in advance, so there the
key names decide (``SecretNames``).

Session ids are cut from the log too (``hide_session_ids``): a 2025 ``Mcp-Session-Id`` and a backend's session id
of ours are bearer-like handles, yet the SDK logs them at INFO and WARNING as it opens, refuses and ends sessions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

MASK = "[redacted]"
SESSION_MASK = "[session]"
# The SDK's loggers that name sessions, and where in their lines the id stands (any id, even a made-up one).
SESSION_LOGGERS = ("mcp.server.streamable_http_manager", "mcp.server.streamable_http", "mcp.client.streamable_http")
_SESSION_ID = re.compile(
    r"(?:(?<=session ID: )|(?<=Terminating session: )|(?<=Session )|(?<=for session ))\S+?(?=: credential|\s|$)"
)

# Secret key names, searched in a name once lowercased and stripped of "_", "-", "." and spaces, so db_password,
# newPassword, x-api-key and "API Key" are all caught. The look-aheads spare the ordinary names that contain a
# secret word: author and authority, tokens_used and max_tokens (counts), tokenizer, secretary.
_SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)|pwd|secret(?!ar)|credential|cookie|signature|bearer|authorization|auth(?!or|enticated)"
    r"|token(?!s|i[sz]|count|limit|budget|usage|used)"
    r"|(api|access|private|signing|encryption|master|license)key"
    r"|session(id|key)?$|^(pass|pin|otp)$"
)
_SEPARATORS = re.compile(r"[\s_.\-]+")


class Redactor:
    """Replaces every occurrence of a configured secret with ``[redacted]``."""

    def __init__(self, secrets: Sequence[str]) -> None:
        ordered = sorted(set(secrets), key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None

    def text(self, value: str) -> str:
        return value if self._pattern is None else self._pattern.sub(MASK, value)

    def value(self, value: Any) -> Any:
        """The same JSON-like structure with every string redacted."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    @contextmanager
    def logging(self) -> Iterator[None]:
        """Redact every log record made inside the block (the CLI keeps it for the life of the process)."""
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                record.msg, record.args = self.text(record.getMessage()), None
            except (TypeError, ValueError):  # a bad format string: logging reports it when the record is emitted
                return record
            if record.exc_info and record.exc_info[0] is not None:
                record.exc_text = self.text(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
            return record

        if self._pattern is None:
            yield
            return
        logging.setLogRecordFactory(factory)
        try:
            yield
        finally:
            logging.setLogRecordFactory(previous)


class _SessionIds(logging.Filter):
    """Masks session ids in the records of the SDK's session loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: logging reports it when the record is emitted
            return True
        hidden = _SESSION_ID.sub(SESSION_MASK, message)
        if hidden != message:
            record.msg, record.args = hidden, None
        return True


def hide_session_ids() -> None:
    """Keep session ids out of the log, whatever its level (the CLI calls this once, as it sets logging up)."""
    for name in SESSION_LOGGERS:
        found = logging.getLogger(name)
        if not any(isinstance(f, _SessionIds) for f in found.filters):
            found.addFilter(_SessionIds())


class SecretNames:
    """Key names whose values are secrets: the common ones by pattern, and ``extra`` names exactly (both after the
    same normalisation)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._extra = frozenset(_normal(name) for name in extra)

    def __contains__(self, name: object) -> bool:
        normal = _normal(str(name))
        return normal in self._extra or _SECRET_NAME.search(normal) is not None

    def redact(self, value: Any) -> Any:
        """The same JSON-like structure with the value under every secret name, at any depth, masked."""
        if isinstance(value, dict):
            return {k: MASK if k in self else self.redact(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact(v) for v in value]
        return value


def _normal(name: str) -> str:
    return _SEPARATORS.sub("", name.lower())
