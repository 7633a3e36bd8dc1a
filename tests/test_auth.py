"""Authentication: API keys, JWTs (HS256 secret, RS256 PEM file, ES256 from a JWKS URL), and the HTTP 401 path."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm
from mcp import MCPError
from mcp.types import INVALID_PARAMS, INVALID_REQUEST

from gateway.config import AuthConfig
from gateway.errors import UNAUTHORIZED, Unauthorized
from gateway.principal import Principal
from gateway.security.auth import Authenticator
from tests.support.inproc import http, http_client, running_gateway, serving
from tests.support.procs import ROOT
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ISSUER = "https://idp.example.test"
AUDIENCE = "https://gateway.example.test/mcp"
SECRET = "an-hs256-secret-of-at-least-32-bytes!"
ALICE_KEY = "alice-key-0123456789abcdef"
MCP = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


def hs256(**claims: Any) -> str:
    now = time.time()
    body = {"sub": "carol", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 60, "iat": now, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, SECRET, algorithm="HS256")


def authenticator(**auth: Any) -> Authenticator:
    return Authenticator(AuthConfig.model_validate(auth))


JWT_HS256 = {"jwt": {"issuer": ISSUER, "audience": AUDIENCE, "algorithms": ["HS256"], "secret": SECRET}}


async def test_an_api_key_maps_to_its_principal_and_roles() -> None:
    auth = authenticator(api_keys=[{"principal": "alice", "key": ALICE_KEY, "roles": ["ops"]}])
    found = await auth.authenticate(f"Bearer {ALICE_KEY}")
    assert (found.name, found.roles, found.method) == ("alice", frozenset({"ops"}), "api_key")


async def test_an_api_key_can_be_configured_by_its_sha256_alone() -> None:
    digest = hashlib.sha256(ALICE_KEY.encode()).hexdigest()
    auth = authenticator(api_keys=[{"principal": "alice", "sha256": digest}])
    assert (await auth.authenticate(f"Bearer {ALICE_KEY}")).name == "alice"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic YWxpY2U6eA==", f"Bearer {ALICE_KEY}x", "Bearer wrong"])
async def test_a_missing_or_wrong_key_is_unauthorized(header: str | None) -> None:
    auth = authenticator(api_keys=[{"principal": "alice", "key": ALICE_KEY}])
    with pytest.raises(Unauthorized):
        await auth.authenticate(header)


async def test_without_a_configured_method_everyone_is_anonymous() -> None:
    assert (await authenticator().authenticate(None)).name == "anonymous"


async def test_a_valid_jwt_gives_its_subject_roles_and_scopes() -> None:
    auth = authenticator(**JWT_HS256)
    found = await auth.authenticate(f"Bearer {hs256(roles=['finance'], scope='read write')}")
    expected = Principal("carol", frozenset({"finance"}), frozenset({"read", "write"}), method="jwt", issuer=ISSUER)
    assert found == expected and found.key == f"jwt:{ISSUER}#carol"


async def test_claims_are_configurable_and_may_be_nested() -> None:
    config = {**JWT_HS256["jwt"], "principal_claim": "email", "roles_claim": "realm_access.roles"}
    token = hs256(email="c@example.test", realm_access={"roles": ["hr"]})
    found = await authenticator(jwt=config).authenticate(f"Bearer {token}")
    assert (found.name, found.roles) == ("c@example.test", frozenset({"hr"}))


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": time.time() - 3600},
        {"nbf": time.time() + 3600},
        {"iss": "https://elsewhere.example.test"},
        {"aud": "https://another-resource.example.test"},
        {"exp": None},
        {"sub": None},
    ],
    ids=["expired", "not-yet-valid", "wrong-issuer", "wrong-audience", "no-expiry", "no-subject"],
)
async def test_jwts_failing_a_check_are_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(Unauthorized):
        await authenticator(**JWT_HS256).authenticate(f"Bearer {hs256(**claims)}")


async def test_a_jwt_signed_with_another_key_or_algorithm_is_refused() -> None:
    forged = jwt.encode({"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": time.time() + 60}, "x" * 40, "HS256")
    unsigned = jwt.encode({"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": time.time() + 60}, None, "none")
    for token in (forged, unsigned):
        with pytest.raises(Unauthorized):
            await authenticator(**JWT_HS256).authenticate(f"Bearer {token}")


async def test_rs256_tokens_are_checked_against_a_pem_file(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "public.pem"
    pem.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    auth = authenticator(jwt={"issuer": ISSUER, "audience": AUDIENCE, "public_key_file": str(pem)})
    claims = {"sub": "dave", "iss": ISSUER, "aud": AUDIENCE, "exp": time.time() + 60}
    assert (await auth.authenticate(f"Bearer {jwt.encode(claims, key, 'RS256')}")).name == "dave"
    with pytest.raises(Unauthorized):
        await auth.authenticate(f"Bearer {jwt.encode(claims, SECRET, 'HS256')}")


@pytest.fixture
def jwks() -> Iterator[tuple[str, ec.EllipticCurvePrivateKey]]:
    """An ES256 key, its JWKS served on a loopback port."""
    key = ec.generate_private_key(ec.SECP256R1())
    document = json.dumps({"keys": [{**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": "k1"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", key
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_es256_tokens_are_checked_against_a_jwks_url(jwks: tuple[str, ec.EllipticCurvePrivateKey]) -> None:
    url, key = jwks
    auth = authenticator(jwt={"issuer": ISSUER, "audience": AUDIENCE, "algorithms": ["ES256"], "jwks_url": url})
    claims = {"sub": "erin", "iss": ISSUER, "aud": AUDIENCE, "exp": time.time() + 60}
    token = jwt.encode(claims, key, "ES256", headers={"kid": "k1"})
    assert (await auth.authenticate(f"Bearer {token}")).name == "erin"
    stranger = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), "ES256", headers={"kid": "k1"})
    with pytest.raises(Unauthorized):
        await auth.authenticate(f"Bearer {stranger}")


# -- over HTTP ---------------------------------------------------------------------------------------------------

SECURED = {
    "auth": {"api_keys": [{"principal": "alice", "key": ALICE_KEY}], **JWT_HS256, "resource_url": AUDIENCE},
    "policy": {"rules": [{"principals": ["alice"], "allow": ["*"]}, {"roles": ["finance"], "allow": ["fin/*"]}]},
}


@pytest.mark.parametrize("token", [None, "wrong-key-0123456789", hs256(exp=time.time() - 3600)])
async def test_http_without_or_with_a_bad_credential_is_401_with_www_authenticate(token: str | None) -> None:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    async with running_gateway({"ops": build("ops")}, security=SECURED) as gw, http(gw) as client:
        response = await client.post("/mcp", headers={**MCP, **auth}, json=LIST)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'resource_metadata="https://gateway.example.test/.well-known/oauth-protected-resource/mcp"' in challenge
    assert ('error="invalid_token"' in challenge) == (token is not None)
    assert response.json()["error"]["code"] == UNAUTHORIZED


@pytest.mark.parametrize("authorization", ["Basic YWxpY2U6eA==", "Digest username=alice", "Bearer"])
async def test_a_request_without_a_bearer_credential_gets_a_challenge_with_no_invalid_token(authorization: str) -> None:
    async with (
        running_gateway({"ops": build("ops")}, security=SECURED) as gw,
        serving(gw) as url,
        httpx2.AsyncClient(timeout=10) as session,
    ):
        response = await session.post(url, headers={**MCP, "Authorization": authorization}, json=LIST)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and "error=" not in challenge
    assert 'resource_metadata="https://gateway.example.test/.well-known/oauth-protected-resource/mcp"' in challenge
    assert response.json()["error"]["code"] == UNAUTHORIZED


async def test_the_protected_resource_metadata_document_is_served() -> None:
    async with running_gateway({"ops": build("ops")}, security=SECURED) as gw, http(gw) as client:
        response = await client.get("/.well-known/oauth-protected-resource/mcp")
    assert response.status_code == 200
    document = response.json()
    assert document["resource"] == AUDIENCE
    assert document["authorization_servers"] == [ISSUER]
    assert document["bearer_methods_supported"] == ["header"]


async def test_health_endpoints_need_no_credentials() -> None:
    async with running_gateway({"ops": build("ops")}, security=SECURED) as gw, http(gw) as client:
        assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_valid_jwts_roles_decide_what_it_sees_and_calls(mode: str) -> None:
    servers = {"ops": build("ops"), "fin": build("fin")}
    token = hs256(roles=["finance"])
    async with (
        running_gateway(servers, security=SECURED) as gw,
        serving(gw) as url,
        http_client(url, mode=mode, token=token) as client,
    ):
        names = {t.name for t in (await client.list_tools()).tools}
        echoed = await client.call_tool("fin/echo", {"text": "hi"})
        with pytest.raises(MCPError) as caught:
            await client.call_tool("ops/echo", {"text": "hi"})
    assert names and all(n.startswith("fin/") for n in names)
    assert echoed.content[0].text == "hi"  # type: ignore[union-attr]
    assert caught.value.code == INVALID_PARAMS  # denied, and answered as unknown


async def alices_session(client: httpx2.AsyncClient) -> dict[str, str]:
    """The headers of a 2025 session opened with Alice's API key."""
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    opened = await client.post(
        "/mcp",
        headers={**MCP, "Authorization": f"Bearer {ALICE_KEY}"},
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init},
    )
    return {"Mcp-Session-Id": opened.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}


async def test_a_2025_session_answers_only_the_credential_that_opened_it() -> None:
    async with running_gateway({"ops": build("ops")}, security=SECURED) as gw, http(gw) as client:
        session = await alices_session(client)
        other = await client.post(
            "/mcp", headers={**MCP, **session, "Authorization": f"Bearer {hs256()}"}, json={**LIST, "id": 2}
        )
    assert other.status_code == 404


async def test_a_jwt_whose_subject_is_an_api_key_principals_name_is_another_principal() -> None:
    """The IdP's ``alice`` gets into neither the session the API key ``alice`` opened nor her rules."""
    token, modern = hs256(sub="alice"), {**MCP, "MCP-Protocol-Version": "2026-07-28"}
    async with running_gateway({"ops": build("ops")}, security=SECURED) as gw, http(gw) as client:
        session = await alices_session(client)
        intruder = await client.post(
            "/mcp", headers={**MCP, **session, "Authorization": f"Bearer {token}"}, json={**LIST, "id": 2}
        )
        owner = await client.post(
            "/mcp", headers={**MCP, **session, "Authorization": f"Bearer {ALICE_KEY}"}, json={**LIST, "id": 3}
        )
        meta = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        call = {"name": "ops/echo", "arguments": {"text": "hi"}, "_meta": meta}
        headers = {**modern, "Mcp-Method": "tools/call", "Mcp-Name": "ops/echo"}
        results = [
            (
                await client.post(
                    "/mcp",
                    headers={**headers, "Authorization": f"Bearer {credential}"},
                    json={"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": call},
                )
            ).json()
            for credential in (ALICE_KEY, token)
        ]
    assert intruder.status_code == 404 and owner.status_code == 200
    assert results[0]["result"]["content"][0]["text"] == "hi"
    assert results[1]["error"]["code"] == INVALID_PARAMS  # the rule names the API-key principal alice only


@pytest.mark.processes
def test_pyjwt_is_imported_only_by_a_gateway_that_takes_jwts() -> None:
    code = (
        "import sys\n"
        "from gateway.security.auth import Authenticator\n"
        "from gateway.config import AuthConfig\n"
        "import gateway.cli.main\n"
        "Authenticator(AuthConfig(api_keys=[{'principal': 'p', 'key': 'k' * 16}]))\n"
        "before = 'jwt' in sys.modules\n"
        f"Authenticator(AuthConfig(jwt={JWT_HS256['jwt']!r}))\n"
        "print(before, 'jwt' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True"]


# -- the metadata document and the Host it is built from ---------------------------------------------------------

BY_HOST = {"auth": {"api_keys": [{"principal": "alice", "key": ALICE_KEY}], **JWT_HS256}}
METADATA = "/.well-known/oauth-protected-resource/mcp"


async def _get(url: str, path: str, **headers: str) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=10) as session:
        return await session.get(url.removesuffix("/mcp") + path, headers=headers)


async def test_the_metadata_document_follows_the_host_and_origin_rules_of_mcp() -> None:
    async with running_gateway({"ops": build("ops")}, security=BY_HOST) as gw, serving(gw) as url:
        port = url.split(":")[2].split("/")[0]
        rebound = await _get(url, METADATA, Host="evil.example.com")
        foreign = await _get(url, METADATA, Origin="http://evil.example.com")
        own = await _get(url, "/.well-known/oauth-protected-resource", Host=f"localhost:{port}")
    assert (rebound.status_code, rebound.json()["error"]["code"]) == (421, INVALID_REQUEST)
    assert "evil" not in rebound.text
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (403, INVALID_REQUEST)
    assert own.status_code == 200 and own.json()["resource"] == f"http://localhost:{port}/mcp"


async def test_a_configured_resource_url_names_the_resource_whatever_the_host() -> None:
    security = {**SECURED, "http": {"allowed_hosts": ["*"]}}
    async with running_gateway({"ops": build("ops")}, security=security) as gw, serving(gw) as url:
        document = await _get(url, METADATA, Host="evil.example.com")
    assert document.status_code == 200 and document.json()["resource"] == AUDIENCE


@pytest.mark.parametrize("host", ["bad host", "evil.example.com:99999", "alice@evil.example.com", "[::zz]", "a/b"])
async def test_a_malformed_host_is_400_on_the_metadata_and_the_401_never_a_500(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    security = {**BY_HOST, "http": {"allowed_hosts": ["*"]}}
    async with running_gateway({"ops": build("ops")}, security=security) as gw, serving(gw) as url:
        document = await _get(url, METADATA, Host=host)
        async with httpx2.AsyncClient(timeout=10) as session:
            challenge = await session.post(url, headers={**MCP, "Host": host}, json=LIST)
    for response in (document, challenge):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == INVALID_REQUEST
        assert "WWW-Authenticate" not in response.headers
    assert not [r for r in caplog.records if r.exc_info]
