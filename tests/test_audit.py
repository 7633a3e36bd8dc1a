"""The audit log: a chained JSON line per call, allowed or not, and a verifier that finds tampering."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError

from gateway import cli
from gateway.audit import GENESIS, digest
from gateway.auth import Principal
from tests.support.inproc import client, running_gateway
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ALICE = Principal("alice", frozenset({"ops"}), method="api_key")


def security(path: Path, **audit: Any) -> dict[str, Any]:
    return {
        "auth": {"api_keys": [{"principal": "alice", "key": "k" * 20}]},
        "policy": {"rules": [{"roles": ["ops"], "allow": ["ops/*"]}]},
        "audit": {"file": str(path), **audit},
    }


async def audited_calls(path: Path, **audit: Any) -> list[dict[str, Any]]:
    servers = {"ops": build("ops"), "hr": build("hr")}
    async with running_gateway(servers, security=security(path, **audit)) as gw, client(gw, principal=ALICE) as alice:
        await alice.call_tool("ops/echo", {"text": "hello", "token": "t-123"})
        for name, arguments in (("hr/echo", {"text": "no"}), ("ops/echo", {"text": 5}), ("ops/nope", {})):
            with pytest.raises(MCPError):
                await alice.call_tool(name, arguments)
        await alice.read_resource("ops+toy://about")
    return [json.loads(line) for line in (await anyio.Path(path).read_bytes()).splitlines()]


async def test_a_line_is_written_for_every_call_allowed_or_not(tmp_path: Path) -> None:
    lines = await audited_calls(tmp_path / "audit.jsonl")
    summary = [(e["principal"], e["kind"], e["name"], e["backend"], e["outcome"]) for e in lines]
    assert summary == [
        ("api_key:alice", "tool", "ops/echo", "ops", "ok"),
        ("api_key:alice", "tool", "hr/echo", "hr", "denied"),
        ("api_key:alice", "tool", "ops/echo", "ops", "invalid_arguments"),
        ("api_key:alice", "tool", "ops/nope", None, "unknown"),
        ("api_key:alice", "resource", "ops/toy://about", "ops", "ok"),
    ]
    first = lines[0]
    assert first["arguments_sha256"] == digest({"text": "hello", "token": "t-123"})
    assert "arguments" not in first
    assert isinstance(first["request_id"], int) and first["latency_ms"] >= 0 and first["time"].endswith("+00:00")
    assert first["prev"] == GENESIS


async def test_raw_arguments_are_recorded_only_when_enabled_with_keys_redacted(tmp_path: Path) -> None:
    lines = await audited_calls(tmp_path / "audit.jsonl", include_arguments=True)
    assert lines[0]["arguments"] == {"text": "hello", "token": "[redacted]"}


async def test_a_restarted_gateway_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await audited_calls(path)
    await audited_calls(path)
    raw = path.read_bytes().splitlines()
    assert json.loads(raw[5])["prev"] == hashlib.sha256(raw[4]).hexdigest()
    assert verify(path) == 0


def verify(path: Path) -> int:
    with pytest.raises(SystemExit) as done:
        cli.main(["audit", "verify", str(path)])
    return int(done.value.code or 0)


def edit(lines: list[bytes]) -> list[bytes]:
    entry = json.loads(lines[1])
    entry["outcome"] = "ok"
    return [lines[0], json.dumps(entry, separators=(",", ":"), sort_keys=True).encode(), *lines[2:]]


@pytest.mark.parametrize(
    "tamper",
    [edit, lambda ls: [ls[0], *ls[2:]], lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], lambda ls: ls[1:]],
    ids=["edited", "removed", "reordered", "first-removed"],
)
async def test_verify_passes_an_intact_file_and_fails_a_tampered_one(
    tmp_path: Path, tamper: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    await audited_calls(path)
    assert verify(path) == 0
    assert "intact, 5 lines" in capsys.readouterr().out
    path.write_bytes(b"\n".join(tamper(path.read_bytes().splitlines())) + b"\n")
    assert verify(path) == 1
    assert "TAMPERED" in capsys.readouterr().err
