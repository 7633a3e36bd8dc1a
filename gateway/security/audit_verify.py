"""``mcp-gateway audit verify``: check every line's MAC and the chain, and the log's end against its anchor.

An edited line fails its MAC; a removed, inserted or moved one breaks the chain (``prev``, ``seq``); lines cut
off the end leave fewer lines than the anchor counts, or another line where its checkpoint was. Lines written after
the anchored checkpoint (a gateway that stopped without its shutdown checkpoint) verify, and are reported: cut
off, they would leave no trace.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.security.audit_chain import CHECKPOINT, GENESIS, Anchor, unseal
from gateway.security.audit_key import AuditKey


@dataclass(frozen=True)
class Verdict:
    """How many lines verified, what is wrong with the first bad one (``None``: intact), and how many of the good
    ones come after the last anchored (or, without an anchor, the last) checkpoint."""

    lines: int
    problem: str | None = None
    unanchored: int = 0


def verify(lines: Iterable[bytes], key: AuditKey, anchor: Anchor | None) -> Verdict:
    prev, count, checkpoint = GENESIS, 0, 0
    for number, raw in enumerate(lines, start=1):
        line = raw.removesuffix(b"\n")
        fields = unseal(line, key)
        if fields is None:
            return Verdict(count, f"line {number}: {_unsealed(line, key)}")
        if fields.get("prev") != prev or fields.get("seq") != number:
            return Verdict(
                count, f"line {number}: the chain breaks here (a line before it was removed, inserted or moved)"
            )
        if fields.get("kind") == CHECKPOINT:
            checkpoint = number
        if anchor is not None and number == anchor.seq and fields["mac"] != anchor.head:
            return Verdict(count, f"line {number}: not the checkpoint the anchor records")
        prev, count = fields["mac"], count + 1
    if anchor is not None and count < anchor.seq:
        return Verdict(
            count, f"line {count + 1}: missing; the anchor counts {anchor.seq} lines (the log was cut short)"
        )
    return Verdict(count, None, count - (anchor.seq if anchor is not None else checkpoint))


def _unsealed(line: bytes, key: AuditKey) -> str:
    """Why a line's MAC does not verify, as far as the line tells."""
    try:
        fields = json.loads(line)
    except ValueError:
        return "not a JSON object"
    if not isinstance(fields, dict):
        return "not a JSON object"
    if "mac" not in fields:
        return "no MAC (written without a key, or not by the gateway)"
    named = fields.get("key_id")
    if isinstance(named, str) and named != key.id:
        return f"the MAC does not match: the line names key {named}, this key is {key.id}"
    return "the MAC does not match (the line was edited, or the key is not this log's)"
