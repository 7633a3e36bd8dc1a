"""``audit_verify.verify``: an intact log verifies; an edited, removed, inserted or cut line, or the wrong key, is
reported with the number of the first bad line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.security.audit_chain import GENESIS, Anchor, Chain, read_anchor
from gateway.security.audit_key import AuditKey
from gateway.security.audit_verify import Verdict, verify

KEY = AuditKey.derive("a-key-that-is-kept-far-from-the-log-0123456789")


def written(tmp_path: Path, calls: int = 4, *, close: bool = True) -> tuple[list[bytes], Anchor | None]:
    """A log of ``calls`` lines between a start checkpoint and (with ``close``) a shutdown one; and its anchor."""
    path, anchor = tmp_path / "audit.log", tmp_path / "audit.log.anchor"
    chain = Chain(path, anchor, KEY, every=100, seq=0, prev=GENESIS)
    for number in range(calls):
        chain.append({"kind": "tool", "name": f"ops/echo{number}", "outcome": "ok"})
    if close:
        chain.close()
    return path.read_bytes().splitlines(keepends=True), read_anchor(anchor, KEY)


def test_an_intact_log_verifies_every_line(tmp_path: Path) -> None:
    lines, anchor = written(tmp_path)
    assert verify(lines, KEY, anchor) == Verdict(len(lines), None, 0)


def test_one_flipped_byte_is_reported_at_its_line(tmp_path: Path) -> None:
    lines, anchor = written(tmp_path)
    lines[2] = lines[2].replace(b"echo1", b"echo7")
    verdict = verify(lines, KEY, anchor)
    assert verdict.lines == 2
    assert verdict.problem is not None and verdict.problem.startswith("line 3: the MAC does not match")


@pytest.mark.parametrize("change", ["removed", "inserted", "moved"])
def test_a_removed_inserted_or_moved_line_breaks_the_chain_at_its_place(tmp_path: Path, change: str) -> None:
    lines, anchor = written(tmp_path)
    if change == "removed":
        del lines[2]
    elif change == "inserted":
        lines.insert(2, lines[1])
    else:
        lines[2], lines[3] = lines[3], lines[2]
    verdict = verify(lines, KEY, anchor)
    assert verdict.lines == 2
    assert verdict.problem is not None and verdict.problem.startswith("line 3: the chain breaks here")


def test_lines_cut_off_the_end_are_counted_missing_from_the_anchor(tmp_path: Path) -> None:
    lines, anchor = written(tmp_path)
    verdict = verify(lines[:-2], KEY, anchor)
    assert verdict == Verdict(len(lines) - 2, f"line {len(lines) - 1}: missing; the anchor counts {len(lines)} "
                              "lines (the log was cut short)")  # fmt: skip


def test_an_anchor_naming_another_line_as_its_checkpoint_is_reported(tmp_path: Path) -> None:
    lines, anchor = written(tmp_path)
    assert anchor is not None
    verdict = verify(lines, KEY, Anchor(anchor.seq, "f" * 64))
    assert verdict.problem == f"line {anchor.seq}: not the checkpoint the anchor records"


def test_the_wrong_key_is_reported_at_the_first_line_naming_the_logs_key(tmp_path: Path) -> None:
    lines, anchor = written(tmp_path)
    other = AuditKey.derive("another-key-that-is-long-enough-0123456789")
    verdict = verify(lines, other, anchor)
    assert verdict.lines == 0
    assert verdict.problem == f"line 1: the MAC does not match: the line names key {KEY.id}, this key is {other.id}"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"not json at all", "line 1: not a JSON object"),
        (b"[1, 2]", "line 1: not a JSON object"),
        (json.dumps({"kind": "tool"}).encode(), "line 1: no MAC (written without a key, or not by the gateway)"),
    ],
)
def test_a_line_that_is_no_sealed_object_says_what_it_is(line: bytes, problem: str) -> None:
    assert verify([line + b"\n"], KEY, None) == Verdict(0, problem)


def test_lines_after_the_anchored_checkpoint_verify_and_are_counted_unanchored(tmp_path: Path) -> None:
    lines, anchor = written(tmp_path, calls=3, close=False)  # a gateway that stopped without its shutdown checkpoint
    assert anchor == Anchor(1, anchor.head if anchor else "")
    assert verify(lines, KEY, anchor) == Verdict(4, None, 3)
    assert verify(lines, KEY, None) == Verdict(4, None, 3)  # without an anchor: counted from the last checkpoint
