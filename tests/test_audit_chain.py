"""The keyed chain's pieces: a log's last line read from its end whatever its length, sealed lines and anchors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import AuditLogError
from gateway.security.audit_chain import Anchor, last_line, read_anchor, seal, unseal, write_anchor
from gateway.security.audit_key import AuditKey

KEY = AuditKey.derive("k" * 32)


@pytest.mark.parametrize("length", [1, 65_535, 65_536, 65_537, 200_000])
@pytest.mark.parametrize("newline", [b"\n", b""])
def test_the_last_line_is_read_whole_however_long(tmp_path: Path, length: int, newline: bytes) -> None:
    path = tmp_path / "log"
    last = b"y" * length
    path.write_bytes(b"x" * 70_000 + b"\nshort\n" + last + newline)
    assert last_line(path) == last


def test_a_missing_or_empty_file_has_no_last_line(tmp_path: Path) -> None:
    assert last_line(tmp_path / "none") is None
    (tmp_path / "empty").write_bytes(b"")
    assert last_line(tmp_path / "empty") is None
    (tmp_path / "one").write_bytes(b"only\n")
    assert last_line(tmp_path / "one") == b"only"


def test_a_sealed_line_opens_only_unchanged_and_with_its_key() -> None:
    line, mac = seal({"seq": 1, "name": "ops/echo"}, KEY)
    assert unseal(line, KEY) == {"seq": 1, "name": "ops/echo", "mac": mac}
    assert unseal(line.replace(b"echo", b"ecko"), KEY) is None
    assert unseal(line, AuditKey.derive("j" * 32)) is None
    assert unseal(b'{"seq":1}', KEY) is None


def test_an_anchor_is_read_back_only_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "anchor"
    assert read_anchor(path, KEY) is None
    write_anchor(path, Anchor(7, "a" * 64), KEY)
    assert read_anchor(path, KEY) == Anchor(7, "a" * 64)
    with pytest.raises(AuditLogError):
        read_anchor(path, AuditKey.derive("j" * 32))
    path.write_text(path.read_text().replace('"seq": 7', '"seq": 9'))
    with pytest.raises(AuditLogError):
        read_anchor(path, KEY)
