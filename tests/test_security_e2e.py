"""The security model end to end on real sockets: a gateway subprocess with API keys, a JWT secret, rules, an
audit log and secrets in backend headers and environments, in front of toy backends that keep a journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
import yaml
from mcp import Client, MCPError, types
from mcp.client.streamable_http import streamable_http_client

from gateway.security.redaction import SESSION_MASK
from tests.support.inproc import http_client
from tests.support.procs import ROOT, Processes, free_port, http_get, listening, run_python, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.processes]
SECRETS = {
    "ALICE_KEY": "alice-api-key-5f1d0c2e9b",
    "BOB_KEY": "bob-api-key-77e3a9c01d",
    "JWT_SECRET": "jwt-hs256-secret-0d8f7e6c5b4a39281706f5e4",
    "BACKEND_TOKEN": "backend-header-token-a1b2c3d4e5",
    "HR_SECRET": "hr-environment-secret-9z8y7x6w",
}
ISSUER = "https://idp.example.test"


@dataclass
class Secured:
    url: str
    base: str
    root: Path
    config: Path
    log: Path
    journal: Path
    audit: Path
    seen: list[str] = field(default_factory=list)  # every response body and header the tests received


def write_config(root: Path, ops_port: int) -> Path:
    config = {
        "backends": [
            {
                "name": "ops",
                "url": f"http://127.0.0.1:{ops_port}/mcp",
                "headers": {"Authorization": "Bearer ${BACKEND_TOKEN}"},
            },
            {
                "name": "hr",
                "transport": "stdio",
                "command": sys.executable,
                "args": ["-m", "tests.support.toy_server", "--stdio", "--name", "hr", "--echo-env", "HR_SECRET"],
                "env": {"HR_SECRET": "${HR_SECRET}", "PYTHONPATH": str(ROOT)},
                "cwd": str(ROOT),
            },
        ],
        "security": {
            "auth": {
                "api_keys": [
                    {"principal": "alice", "key": "${ALICE_KEY}", "roles": ["operator"]},
                    {"principal": "bob", "key": "${BOB_KEY}"},
                ],
                "jwt": {"issuer": ISSUER, "audience": "gateway", "algorithms": ["HS256"], "secret": "${JWT_SECRET}"},
            },
            "policy": {
                "rules": [
                    {"roles": ["operator"], "allow": ["ops/*", "hr/*"], "deny": ["ops/record"]},
                    {"principals": ["bob"], "allow": ["hr/echo"]},
                ]
            },
            "audit": {"file": str(root / "audit.jsonl")},
        },
    }
    path = root / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("secured")
    procs = Processes()
    ops_port, port = free_port(), free_port()
    journal = root / "journal"
    try:
        procs.start(
            "-m", "tests.support.toy_server", "--port", str(ops_port), "--name", "ops", "--journal", str(journal)
        )
        wait_until(lambda: listening(ops_port), what="the ops backend to listen")
        config = write_config(root, ops_port)
        log = root / "gateway.log"
        with log.open("wb") as sink:
            args = ("-m", "gateway", "serve", "--config", str(config), "--port", str(port), "--log-level", "debug")
            procs.start(*args, env=SECRETS, stdout=sink, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ready(base), what="the gateway to report every backend ready")
        yield Secured(f"{base}/mcp", base, root, config, log, journal, root / "audit.jsonl")
    finally:
        procs.stop_all()


def _ready(base: str) -> bool:
    try:
        return http_get(f"{base}/readyz")[0] == 200
    except OSError:
        return False


def post(secured: Secured, body: dict[str, Any], token: str | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(secured.url, json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text, extra = response.status, response.read().decode(), str(response.headers)
    except urllib.error.HTTPError as exc:
        status, text, extra = exc.code, exc.read().decode(), str(exc.headers)
    secured.seen += [text, extra]
    return status, text


def cli(secured: Secured, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_python("-m", "gateway", *args, env={**_environ(), **SECRETS})
    secured.seen += [done.stdout, done.stderr]
    return done


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


async def test_a_denied_call_never_reaches_the_backend_and_every_call_is_audited(secured: Secured) -> None:
    async with http_client(secured.url, token=SECRETS["ALICE_KEY"]) as alice:
        with pytest.raises(MCPError) as denied:
            await alice.call_tool("ops/record", {"tag": "must-not-arrive", "seconds": 0})
        allowed = await alice.call_tool("ops/slow_read", {"seconds": 0})
        secured.seen += [denied.value.message, allowed.model_dump_json()]
    assert denied.value.code == types.INVALID_PARAMS  # denied, and answered as unknown
    assert allowed.content[0].text == "read done"  # type: ignore[union-attr]
    assert secured.journal.read_text().splitlines() == ["read"]
    lines = map(json.loads, secured.audit.read_text().splitlines())
    outcomes = [(e["principal"], e["name"], e["outcome"]) for e in lines if e["kind"] != "checkpoint"]
    assert ("api_key:alice", "ops/record", "denied") in outcomes
    assert ("api_key:alice", "ops/slow_read", "ok") in outcomes
    verified = cli(secured, "audit", "verify", str(secured.audit))
    assert verified.returncode == 0, verified.stderr


async def test_a_jwt_and_a_second_key_get_their_own_rights(secured: Secured) -> None:
    token = jwt.encode(
        {"sub": "carol", "iss": ISSUER, "aud": "gateway", "exp": time.time() + 60, "roles": ["operator"]},
        SECRETS["JWT_SECRET"],
        "HS256",
    )
    async with (
        http_client(secured.url, token=token) as carol,
        http_client(secured.url, token=SECRETS["BOB_KEY"]) as bob,
    ):
        carols = {t.name for t in (await carol.list_tools()).tools}
        bobs = {t.name for t in (await bob.list_tools()).tools}
        echoed = await bob.call_tool("hr/echo", {"text": "hi"})
    assert "ops/search" in carols and "hr/search" in carols and "ops/record" not in carols
    assert bobs == {"hr/echo"}
    assert echoed.content[0].text == "hi"  # type: ignore[union-attr]


def test_configured_secrets_never_appear_in_responses_logs_or_cli_output(secured: Secured) -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "initialize"}
    assert post(secured, call)[0] == 401
    assert post(secured, call, token="wrong-key-0123456789")[0] == 401
    assert post(secured, call, token=SECRETS["JWT_SECRET"])[0] == 401
    for path in ("/readyz", "/healthz", "/.well-known/oauth-protected-resource/mcp"):
        status, body = http_get(f"{secured.base}{path}")
        secured.seen.append(json.dumps(body))
        assert status == 200
    listing = cli(secured, "tools", "--config", str(secured.config), "--json")
    assert listing.returncode == 0, listing.stderr
    assert cli(secured, "tools", "--config", str(secured.config)).returncode == 0
    log = secured.log.read_text()
    assert "backend hr stderr: HR_SECRET=[redacted]" in log  # the backend printed it; the gateway cut it
    everything = "\n".join([log, *secured.seen])
    leaked = [name for name, value in SECRETS.items() if value in everything]
    assert not leaked, f"secrets shown: {leaked}"


MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}
# What bob may not use, each with a name nobody serves in the same place: the two must be answered alike.
HIDDEN = [
    ("tools/call", {"name": "ops/search", "arguments": {"query": "x"}}, "ops/search", "ops/no_such"),
    ("prompts/get", {"name": "hr/greet", "arguments": {"who": "x"}}, "hr/greet", "hr/no_such"),
    ("resources/read", {"uri": "hr+toy://about"}, "hr+toy://about", "zz+toy://about"),
    (
        "completion/complete",
        {"ref": {"type": "ref/prompt", "name": "hr/greet"}, "argument": {"name": "who", "value": "a"}},
        "hr/greet",
        "hr/no_such",
    ),
    (
        "completion/complete",
        {
            "ref": {"type": "ref/resource", "uri": "ops+toy://notes/{note_id}"},
            "argument": {"name": "note_id", "value": "1"},
        },
        "ops+toy://notes/{note_id}",
        "zz+toy://notes/{note_id}",
    ),
]


def _swap(value: Any, old: str, new: str) -> Any:
    return json.loads(json.dumps(value).replace(old, new))


def _modern(secured: Secured, method: str, params: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
    """One stateless 2026 request, as a client sends it (routing headers included); its status and error."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {token}",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": method,
    }
    named = params.get("name", params.get("uri"))
    if method != "completion/complete" and isinstance(named, str):
        headers["Mcp-Name"] = named
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": MODERN_META}}
    request = urllib.request.Request(secured.url, json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    return status, json.loads(text)["error"]


@pytest.mark.parametrize(("method", "params", "hidden", "unknown"), HIDDEN)
def test_a_denied_name_is_answered_exactly_as_an_unknown_one_over_2026_http(
    secured: Secured, method: str, params: dict[str, Any], hidden: str, unknown: str
) -> None:
    token = SECRETS["BOB_KEY"]
    denied = _modern(secured, method, params, token)
    absent = _modern(secured, method, _swap(params, hidden, unknown), token)
    assert denied[1]["code"] == types.INVALID_PARAMS
    assert list(denied) == _swap(list(absent), unknown, hidden)
    denials = [
        e for e in map(json.loads, secured.audit.read_text().splitlines()) if e.get("principal") == "api_key:bob"
    ]
    kind = {"tools/call": "tool", "prompts/get": "prompt", "resources/read": "resource"}.get(method, "completion")
    assert any(e["kind"] == kind and e["outcome"] == "denied" for e in denials)


async def test_a_denied_name_is_answered_exactly_as_an_unknown_one_in_a_2025_session(secured: Secured) -> None:
    async with http_client(secured.url, mode="legacy", token=SECRETS["BOB_KEY"]) as bob:
        calls: dict[str, Callable[[str], Awaitable[Any]]] = {
            "tools/call": lambda name: bob.call_tool(name, {"query": "x"}),
            "prompts/get": lambda name: bob.get_prompt(name, {"who": "x"}),
            "resources/read": lambda name: bob.read_resource(name),
            "completion/complete": lambda name: bob.complete(
                types.PromptReference(type="ref/prompt", name=name), {"name": "who", "value": "a"}
            ),
        }
        answered = []
        for method, hidden, unknown in [(m, h, u) for m, _, h, u in HIDDEN[:4]]:
            errors = []
            for name in (hidden, unknown):
                with pytest.raises(MCPError) as caught:
                    await calls[method](name)
                errors.append((caught.value.code, caught.value.message, caught.value.data))
            answered.append((errors[0], _swap(list(errors[1]), unknown, hidden)))
    for denied, absent in answered:
        assert denied[0] == types.INVALID_PARAMS
        assert list(denied) == absent


async def test_session_ids_never_appear_in_the_log(secured: Secured) -> None:
    """Opened, refused to another credential, ended: the SDK logs each, and the gateway (at debug) hides the id."""
    issued: list[str] = []

    async def remember(response: httpx2.Response) -> None:
        if (session := response.headers.get("mcp-session-id")) and session not in issued:
            issued.append(session)

    alice_auth = {"Authorization": f"Bearer {SECRETS['ALICE_KEY']}"}
    async with (
        httpx2.AsyncClient(headers=alice_auth, event_hooks={"response": [remember]}) as http,
        Client(streamable_http_client(secured.url, http_client=http), mode="legacy") as alice,  # type: ignore[arg-type]
    ):
        await alice.call_tool("hr/echo", {"text": "hi"})
        headers = {
            "Authorization": f"Bearer {SECRETS['BOB_KEY']}",
            "Accept": "application/json, text/event-stream",
            "Mcp-Session-Id": issued[0],
            "MCP-Protocol-Version": "2025-11-25",
        }
        async with httpx2.AsyncClient(timeout=10) as bob:
            refused = await bob.post(secured.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers)
    assert refused.status_code == 404
    # Each line is written before the response it precedes, the last one (the DELETE's) before the client left.
    log = secured.log.read_text()
    assert issued[0] not in log
    assert log.count(SESSION_MASK) >= 3
