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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from mcp import MCPError

from gateway.errors import FORBIDDEN
from tests.support.inproc import http_client
from tests.support.procs import ROOT, Processes, free_port, http_get, listening, wait_until

pytestmark = pytest.mark.anyio
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
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        env={**_environ(), **SECRETS},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
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
    assert denied.value.code == FORBIDDEN
    assert allowed.content[0].text == "read done"  # type: ignore[union-attr]
    assert secured.journal.read_text().splitlines() == ["read"]
    lines = map(json.loads, secured.audit.read_text().splitlines())
    outcomes = [(e["principal"], e["name"], e["outcome"]) for e in lines if e["kind"] != "checkpoint"]
    assert ("alice", "ops/record", "denied") in outcomes and ("alice", "ops/slow_read", "ok") in outcomes
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
