"""The audit log: a sealed, chained JSON line per call, allowed or not, and a verifier that finds tampering."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError
from mcp.types import INVALID_PARAMS

from gateway.cli import main as cli
from gateway.config import AuditConfig
from gateway.errors import AuditLogError
from gateway.principal import Principal
from gateway.security.audit import AuditLog, Entry, digest
from gateway.security.audit_chain import GENESIS, anchor_beside, read_anchor
from gateway.security.audit_key import beside, read_key
from tests.support.inproc import client, http_client, running_gateway
from tests.support.procs import ROOT, Processes, free_port, http_get, listening, wait_until
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ALICE = Principal("alice", frozenset({"ops"}), method="api_key")
KEY = "a-key-that-is-kept-far-from-the-log-0123456789"
SIX = ("db_password", "newPassword", "client_secret", "x-api-key", "accessToken", "private_key")


def security(path: Path, **audit: Any) -> dict[str, Any]:
    return {
        "auth": {"api_keys": [{"principal": "alice", "key": "k" * 20}]},
        "policy": {"rules": [{"roles": ["ops"], "allow": ["ops/*"]}]},
        "audit": {"file": str(path), **audit},
        "validate_arguments": True,  # so that a call is refused for its arguments too
    }


async def audited_calls(path: Path, **audit: Any) -> list[dict[str, Any]]:
    servers = {"ops": build("ops"), "hr": build("hr")}
    async with running_gateway(servers, security=security(path, **audit)) as gw, client(gw, principal=ALICE) as alice:
        await alice.call_tool("ops/echo", {"text": "hello", "token": "t-123"})
        for name, arguments in (("hr/echo", {"text": "no"}), ("ops/echo", {"text": 5}), ("ops/nope", {})):
            with pytest.raises(MCPError):
                await alice.call_tool(name, arguments)
        await alice.read_resource("ops+toy://about")
    return entries(path)


async def one_call(path: Path, name: str, arguments: dict[str, Any], **audit: Any) -> None:
    """One gateway's life: start, one call (an unknown name is refused with -32602), clean shutdown."""
    servers = {"ops": build("ops")}
    async with running_gateway(servers, security=security(path, **audit)) as gw, client(gw, principal=ALICE) as alice:
        try:
            await alice.call_tool(name, arguments)
        except MCPError as exc:
            assert exc.code == INVALID_PARAMS


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def entries(path: Path) -> list[dict[str, Any]]:
    return [e for e in lines_of(path) if e.get("kind") != "checkpoint"]


def verify(path: Path, *args: str) -> int:
    with pytest.raises(SystemExit) as done:
        cli.main(["audit", "verify", str(path), *args])
    return int(done.value.code or 0)


def rechain(lines: list[bytes], index: int, outcome: str) -> list[bytes]:
    """Edit one line, then make every later ``prev`` fit again, as anyone can who holds the log but not the key."""
    out: list[bytes] = []
    for number, raw in enumerate(lines):
        entry = json.loads(raw)
        if number == index:
            entry["outcome"] = outcome
        if out and number >= index:
            before = json.loads(out[-1])
            entry["prev"] = before.get("mac") or hashlib.sha256(out[-1]).hexdigest()
        if "mac" in entry:
            del entry["mac"]
            body = json.dumps(entry, separators=(",", ":"), sort_keys=True)
            entry["mac"] = hashlib.sha256(body.encode()).hexdigest()
        out.append(json.dumps(entry, separators=(",", ":"), sort_keys=True).encode())
    return out


def rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


async def test_a_line_is_written_for_every_call_allowed_or_not(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = await audited_calls(path)
    summary = [(e["principal"], e["kind"], e["name"], e["backend"], e["outcome"]) for e in lines]
    assert summary == [
        ("api_key:alice", "tool", "ops/echo", "ops", "ok"),
        ("api_key:alice", "tool", "hr/echo", "hr", "denied"),
        ("api_key:alice", "tool", "ops/echo", "ops", "invalid_arguments"),
        ("api_key:alice", "tool", "ops/nope", None, "unknown"),
        ("api_key:alice", "resource", "ops/toy://about", "ops", "ok"),
    ]
    first = lines[0]
    assert first["arguments_hmac"] == digest(read_key(beside(path)), {"text": "hello", "token": "t-123"})
    assert "arguments" not in first
    assert isinstance(first["request_id"], int) and first["latency_ms"] >= 0 and first["time"].endswith("+00:00")


async def test_a_start_and_a_shutdown_checkpoint_bracket_the_calls_and_the_anchor_names_the_last(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    await audited_calls(path)
    lines = lines_of(path)
    assert [(e["seq"], e.get("reason")) for e in lines] == [
        (1, "start"),
        *((n, None) for n in range(2, 7)),
        (7, "shutdown"),
    ]
    assert lines[0]["prev"] == GENESIS and all(b["prev"] == a["mac"] for a, b in itertools.pairwise(lines))
    key = read_key(beside(path))
    assert lines[0]["key_id"] == key.id
    anchor = read_anchor(anchor_beside(path), key)
    assert anchor is not None and (anchor.seq, anchor.head) == (7, lines[-1]["mac"])


async def test_raw_arguments_are_recorded_only_when_enabled_with_keys_redacted(tmp_path: Path) -> None:
    lines = await audited_calls(tmp_path / "audit.jsonl", include_arguments=True)
    assert lines[0]["arguments"] == {"text": "hello", "token": "[redacted]"}


async def test_secret_key_names_are_redacted_by_pattern_and_ordinary_ones_kept(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    arguments = {"text": "x", **{name: f"value-of-{name}" for name in SIX}, "author": "ann", "tokens_used": 7}
    await one_call(path, "ops/echo", arguments, include_arguments=True, redact_keys=["text"])
    recorded = entries(path)[0]["arguments"]
    assert recorded == {**{name: "[redacted]" for name in (*SIX, "text")}, "author": "ann", "tokens_used": 7}
    assert "value-of-" not in path.read_text()


async def test_argument_digests_cannot_be_checked_against_a_word_list_without_the_key(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await one_call(path, "ops/echo", {"text": "x", "password": "hunter2"})
    log = path.read_text()
    for word in ("letmein", "hunter2", "password", "qwerty", "dragon"):
        canonical = json.dumps({"password": word, "text": "x"}, separators=(",", ":"), sort_keys=True).encode()
        for guess in (hashlib.sha256(canonical).hexdigest(), hashlib.sha256(word.encode()).hexdigest()):
            assert guess not in log
    assert entries(path)[0]["arguments_hmac"] == digest(read_key(beside(path)), {"text": "x", "password": "hunter2"})


async def test_an_oversized_tool_name_is_cut_with_its_length_and_the_chain_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await one_call(path, "x" * 70_000, {})
    await one_call(path, "ops/nope", {})
    assert verify(path) == 0
    name = entries(path)[0]["name"]
    assert name.startswith("x" * 1024) and name.endswith("[truncated, 70000 chars]") and len(name) < 1100


def test_recorded_argument_strings_and_oversized_arguments_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(AuditConfig(file=path, include_arguments=True, max_field_chars=64, max_arguments_chars=256))
    log.record(Entry("alice", "tool", "ops/echo", "ops", "ok", 1.0, "r" * 100, {"k" * 100: "v" * 100}))
    log.record(Entry("alice", "tool", "ops/echo", "ops", "ok", 1.0, 2, {"items": ["a" * 50] * 20}))
    first, second = entries(path)
    assert first["request_id"] == "r" * 64 + "...[truncated, 100 chars]"
    assert first["arguments"] == {"k" * 64 + "...[truncated, 100 chars]": "v" * 64 + "...[truncated, 100 chars]"}
    assert re.fullmatch(r"\[truncated, \d+ chars\]", second["arguments"])


async def test_a_line_longer_than_any_buffer_chains_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = {"max_field_chars": 1_000_000}
    await one_call(path, "x" * 70_000, {}, **audit)
    await one_call(path, "ops/nope", {}, **audit)
    assert [len(e["name"]) for e in entries(path)] == [70_000, 8]
    assert verify(path) == 0


async def test_a_restarted_gateway_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await audited_calls(path)
    await audited_calls(path)
    lines = lines_of(path)
    assert [e["seq"] for e in lines] == list(range(1, 15))
    assert lines[7]["prev"] == lines[6]["mac"] and lines[7]["reason"] == "start"
    assert verify(path) == 0


async def test_checkpoints_are_written_every_n_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await audited_calls(path, checkpoint_every=2)
    reasons = [e.get("reason") for e in lines_of(path)]
    assert reasons == ["start", None, None, "periodic", None, None, "periodic", None, "shutdown"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda ls: rechain(ls, 2, "ok"),
        lambda ls: rechain(ls, len(ls) - 2, "ok"),
        lambda ls: rechain(ls, len(ls) - 1, "ok"),
        lambda ls: [ls[0], *ls[2:]],
        lambda ls: [ls[0], ls[2], ls[1], *ls[3:]],
        lambda ls: ls[1:],
        lambda ls: ls[:-1],
        lambda ls: ls[:-2],
    ],
    ids=[
        "edited-and-rechained",
        "last-entry-edited",
        "last-line-edited",
        "removed",
        "reordered",
        "first-removed",
        "last-removed",
        "last-two-removed",
    ],
)
async def test_verify_passes_an_intact_file_and_fails_a_tampered_one(
    tmp_path: Path, tamper: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    await audited_calls(path)
    assert verify(path) == 0
    assert re.search(r"intact, \d+ lines$", capsys.readouterr().out.strip())
    rewrite(path, tamper(path.read_bytes().splitlines()))
    assert verify(path) == 1
    assert "TAMPERED: line " in capsys.readouterr().err


async def test_a_gateway_does_not_continue_a_log_cut_short_while_it_was_stopped(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await audited_calls(path)
    rewrite(path, path.read_bytes().splitlines()[:-2])
    with pytest.raises(AuditLogError, match="cut short"):
        await one_call(path, "ops/nope", {})
    assert verify(path) == 1


def test_lines_after_the_last_checkpoint_verify_and_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(AuditConfig(file=path))
    for number in range(3):
        log.record(Entry("alice", "tool", "ops/echo", "ops", "ok", 1.0, number))
    assert verify(path) == 0  # no shutdown checkpoint: as a gateway that was killed leaves it
    assert capsys.readouterr().out.strip().endswith("intact, 4 lines (3 after the last checkpoint)")
    rewrite(path, path.read_bytes().splitlines()[:-1])
    assert verify(path) == 0


def test_a_new_key_is_generated_beside_a_new_log_readable_only_by_its_owner(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    with caplog.at_level(logging.WARNING, "gateway.security.audit_key"):
        AuditLog(AuditConfig(file=path))
    key = beside(path)
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_text().strip()) >= 32
    assert str(key) in caplog.text


def test_a_log_without_its_key_is_not_continued(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(AuditConfig(file=path))
    log.record(Entry("alice", "tool", "ops/echo", "ops", "ok", 1.0, 1))
    log.close()
    beside(path).unlink()
    with pytest.raises(AuditLogError, match="key"):
        AuditLog(AuditConfig(file=path))


def test_a_configured_key_must_be_long_and_alone() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        AuditConfig(file=Path("a"), key="short")
    with pytest.raises(ValueError, match="at most one"):
        AuditConfig(file=Path("a"), key="k" * 32, key_file=Path("k"))


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "verify", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.processes
async def test_audit_verify_takes_the_key_from_a_file_or_the_environment(tmp_path: Path) -> None:
    path, key_file = tmp_path / "audit.jsonl", tmp_path / "secrets" / "audit.key"
    key_file.parent.mkdir()
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    await audited_calls(path, key_file=str(key_file))
    assert not beside(path).exists()
    done = run_cli(str(path), "--key-file", str(key_file))
    assert done.returncode == 0 and done.stdout.strip().endswith("intact, 7 lines"), done.stderr
    done = run_cli(str(path), "--key-env", "AUDIT_KEY", env={"AUDIT_KEY": KEY})
    assert done.returncode == 0 and KEY not in done.stdout + done.stderr, done.stderr


async def test_audit_verify_tells_a_wrong_missing_or_short_key_and_a_cut_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path, key_file = tmp_path / "audit.jsonl", tmp_path / "audit.key"
    key_file.write_text(KEY)
    await audited_calls(path, key_file=str(key_file))
    monkeypatch.setenv("OTHER_KEY", "another-key-of-sufficient-length-0123456789")
    monkeypatch.setenv("SHORT_KEY", "short")
    assert verify(path, "--key-env", "OTHER_KEY") == 1
    assert "TAMPERED: line 1: the MAC does not match: the line names key" in capsys.readouterr().err
    assert verify(path) == 2  # no key given, and none beside the log
    assert verify(path, "--key-env", "SHORT_KEY") == 2
    assert verify(path, "--key-env", "UNSET_KEY") == 2
    rewrite(path, path.read_bytes().splitlines()[:-1])
    capsys.readouterr()
    assert verify(path, "--key-file", str(key_file)) == 1
    assert "TAMPERED: line 7: missing" in capsys.readouterr().err
    assert verify(path, "--key-file", str(key_file), "--no-anchor") == 0
    anchor_beside(path).unlink()
    assert verify(path, "--key-file", str(key_file)) == 1


def test_a_served_gateway_restarted_after_an_oversized_name_keeps_an_intact_anchored_log(
    processes: Processes, tmp_path: Path
) -> None:
    """Real sockets and SIGTERM: each run ends with its shutdown checkpoint, and the next one continues the chain."""
    path, ops_port, port = tmp_path / "audit.jsonl", free_port(), free_port()
    processes.start("-m", "tests.support.toy_server", "--port", str(ops_port), "--name", "ops")
    wait_until(lambda: listening(ops_port), what="the ops backend to listen")
    config = tmp_path / "gateway.json"
    backend = {"name": "ops", "url": f"http://127.0.0.1:{ops_port}/mcp"}
    config.write_text(json.dumps({"backends": [backend], "security": {"audit": {"file": str(path)}}}))

    async def call(name: str) -> None:
        # A 2025 session: a 2026 client would also put the name in its Mcp-Name header, which the front caps.
        async with http_client(f"http://127.0.0.1:{port}/mcp", mode="legacy") as caller:
            with pytest.raises(MCPError) as refused:
                await caller.call_tool(name, {})
        assert refused.value.code == INVALID_PARAMS

    for name in ("x" * 70_000, "ops/nope"):
        gateway = processes.start("-m", "gateway", "serve", "--config", str(config), "--port", str(port))
        wait_until(lambda: listening(port) and http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200)
        anyio.run(call, name)
        assert processes.stop(gateway) == 0
    assert verify(path) == 0
    assert [(e["seq"], e.get("reason")) for e in lines_of(path)][-1] == (6, "shutdown")
