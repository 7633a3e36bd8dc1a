"""The keyed chain the audit log is made of: sealed lines, and the anchor kept outside the log.

A line is a JSON object whose last member is ``"mac"``: the HMAC-SHA256, under the audit key, of the line's bytes
without that member. ``seq`` is the line's number and ``prev`` the previous line's ``mac`` (64 zeros for the
first), so an edited line fails its MAC and a removed, inserted or moved one breaks the chain; without the key
neither can be made good again. Checkpoint lines (``kind: checkpoint``) are written every so many lines and at
shutdown, and the anchor file records the last one's ``seq`` and ``mac``, sealed too: lines cut off the end of
the log take the anchored checkpoint with them, or leave fewer lines than it counts.

``Chain`` is the writing end. A restart continues it from the last line, read backwards from the end of the file
however long it is (appends never re-read the log), once that line and the anchor verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from gateway.config import AuditConfig
from gateway.errors import AuditLogError
from gateway.security.audit_key import AuditKey, beside, load_key

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
CHECKPOINT = "checkpoint"
_MAC = re.compile(rb',"mac":"([0-9a-f]{64})"\}\Z')
_CHUNK = 65536


def seal(fields: dict[str, Any], key: AuditKey) -> tuple[bytes, str]:
    """The line for ``fields`` (a non-empty mapping) and its MAC."""
    body = json.dumps(fields, separators=(",", ":"), sort_keys=True, default=str).encode()
    mac = hmac.new(key.chain, body, hashlib.sha256).hexdigest()
    return body[:-1] + b',"mac":"' + mac.encode() + b'"}', mac


def unseal(line: bytes, key: AuditKey) -> dict[str, Any] | None:
    """The fields of a line whose MAC is good (``mac`` among them), else ``None``."""
    found = _MAC.search(line)
    if found is None:
        return None
    body = line[: found.start()] + b"}"
    if not hmac.compare_digest(hmac.new(key.chain, body, hashlib.sha256).hexdigest().encode(), found.group(1)):
        return None
    fields = json.loads(body)
    fields["mac"] = found.group(1).decode()
    return dict(fields)


@dataclass(frozen=True)
class Anchor:
    """The last checkpoint written: its line number and MAC."""

    seq: int
    head: str

    def seal(self, key: AuditKey) -> str:
        return hmac.new(key.anchor, f"{self.seq}:{self.head}".encode(), hashlib.sha256).hexdigest()


def anchor_beside(log: Path) -> Path:
    """Where a log's anchor is when none is configured."""
    return log.with_name(f"{log.name}.anchor")


def write_anchor(path: Path, anchor: Anchor, key: AuditKey) -> None:
    """Replace the anchor in one step, so a crash leaves the old one or the new one."""
    data = json.dumps({"seq": anchor.seq, "head": anchor.head, "mac": anchor.seal(key)}) + "\n"
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(data, encoding="utf-8")
    os.replace(partial, path)


def read_anchor(path: Path, key: AuditKey) -> Anchor | None:
    """The anchor at ``path`` (``None`` when there is none); one that does not verify is an ``AuditLogError``."""
    try:
        data = json.loads(path.read_bytes())
        anchor = Anchor(int(data["seq"]), str(data["head"]))
        mac = str(data["mac"])
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuditLogError(f"cannot read the audit anchor {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, KeyError):
        raise AuditLogError(f"the audit anchor {path} is not an anchor") from None
    if not hmac.compare_digest(anchor.seal(key), mac):
        raise AuditLogError(f"the audit anchor {path} does not verify with this key")
    return anchor


def last_line(path: Path) -> bytes | None:
    """The file's last line however long it is, read backwards from the end (``None`` for no file or no line)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    with handle:
        end = handle.seek(0, os.SEEK_END)
        if end and _byte_at(handle, end - 1) == b"\n":
            end -= 1
        chunks: list[bytes] = []
        position = end
        while position > 0:
            step = min(_CHUNK, position)
            position -= step
            handle.seek(position)
            chunk = handle.read(step)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                chunks.append(chunk[newline + 1 :])
                break
            chunks.append(chunk)
    line = b"".join(reversed(chunks))
    return line or None


def _byte_at(handle: BinaryIO, offset: int) -> bytes:
    handle.seek(offset)
    return handle.read(1)


class Chain:
    """The end of the log: the next line's number and ``prev``, the checkpoints, and the anchor."""

    def __init__(self, path: Path, anchor: Path, key: AuditKey, every: int, seq: int, prev: str) -> None:
        self.key = key
        self._path, self._anchor, self._every = path, anchor, every
        self._seq, self._prev = seq, prev
        self._since = 0
        self._started = False

    @classmethod
    def open(cls, config: AuditConfig, path: Path) -> Chain:
        key = load_key(config, path)
        anchor = config.anchor_file or anchor_beside(path)
        seq, prev = _resume(path, anchor, key)
        source = "security.audit.key" if config.key else config.key_file or beside(path)
        logger.info(
            "audit log %s continues at line %d (key %s from %s, anchor %s)", path, seq + 1, key.id, source, anchor
        )
        return cls(path, anchor, key, config.checkpoint_every, seq, prev)

    def append(self, fields: dict[str, Any]) -> None:
        if not self._started:
            self._started = True
            self._checkpoint("start")
        self._write(fields)
        self._since += 1
        if self._since >= self._every:
            self._checkpoint("periodic")

    def close(self) -> None:
        if self._started:
            self._checkpoint("shutdown")

    def _checkpoint(self, reason: str) -> None:
        """A line that counts the log and names the key, then the anchor moved to it."""
        if not self._write({"kind": CHECKPOINT, "reason": reason, "key_id": self.key.id}):
            return
        self._since = 0
        try:
            write_anchor(self._anchor, Anchor(self._seq, self._prev), self.key)
        except OSError as exc:
            logger.error("cannot write the audit anchor %s: %s", self._anchor, exc.strerror or exc)

    def _write(self, fields: dict[str, Any]) -> bool:
        line, mac = seal({**fields, "time": _now(), "seq": self._seq + 1, "prev": self._prev}, self.key)
        try:
            with self._path.open("ab") as handle:
                handle.write(line + b"\n")
        except OSError as exc:
            logger.error("cannot write the audit log %s: %s", self._path, exc.strerror or exc)
            return False
        self._seq, self._prev = self._seq + 1, mac
        return True


def _resume(path: Path, anchor_path: Path, key: AuditKey) -> tuple[int, str]:
    """The last line's number and MAC, once it and the anchor show the log was not cut or edited at its end."""
    anchor = read_anchor(anchor_path, key)
    line = last_line(path)
    if line is None:
        if anchor is not None:
            raise AuditLogError(
                f"the audit log {path} is empty or gone but its anchor {anchor_path} counts {anchor.seq} lines"
            )
        return 0, GENESIS
    fields = unseal(line, key)
    if fields is None or not isinstance(fields.get("seq"), int):
        raise AuditLogError(
            f"the last line of the audit log {path} does not verify with its key (edited, cut short, written "
            "without a key, or the key is not this log's): run 'mcp-gateway audit verify', and move the log aside"
        )
    if anchor is None:
        raise AuditLogError(f"the audit log {path} has no anchor at {anchor_path}: restore it, or move the log aside")
    if anchor.seq > fields["seq"]:
        raise AuditLogError(
            f"the audit log {path} ends at line {fields['seq']} but its anchor counts {anchor.seq}: it was cut short"
        )
    return int(fields["seq"]), str(fields["mac"])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
