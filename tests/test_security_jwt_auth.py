"""``JwtVerifier``: which tokens name an identity, and what that identity is, for a symmetric (HS256) key."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from gateway.config import JwtConfig
from gateway.security.jwt_auth import Identity, JwtVerifier

pytestmark = pytest.mark.anyio
ISSUER = "https://issuer.example"
AUDIENCE = "mcp-gateway"
SECRET = "s" * 64  # long enough for HS512 too


def verifier(**settings: Any) -> JwtVerifier:
    config = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "algorithms": ["HS256"],
        "secret": SECRET,
        "leeway": 0,
        **settings,
    }
    return JwtVerifier(JwtConfig.model_validate(config))


def token(key: str = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm=algorithm)


async def test_a_valid_token_names_its_subject_roles_scopes_and_issuer() -> None:
    identity = await verifier().verify(token(roles=["ops", 7, "hr"], scope="read write"))
    assert identity == Identity("alice", frozenset({"ops", "hr"}), frozenset({"read", "write"}), ISSUER)


REFUSED = {
    "expired": {"exp": int(time.time()) - 60},
    "not-yet-valid": {"nbf": int(time.time()) + 600},
    "wrong-audience": {"aud": "another-service"},
    "wrong-issuer": {"iss": "https://elsewhere.example"},
    "no-exp": {"exp": None},
    "no-aud": {"aud": None},
    "no-iss": {"iss": None},
    "no-subject": {"sub": None},
    "empty-subject": {"sub": ""},
    "non-string-subject": {"sub": 42},
}


@pytest.mark.parametrize("claims", REFUSED.values(), ids=REFUSED)
async def test_a_token_failing_a_check_names_nobody(claims: dict[str, Any]) -> None:
    assert await verifier().verify(token(**claims)) is None


async def test_a_token_signed_with_another_key_or_an_algorithm_not_configured_names_nobody() -> None:
    assert await verifier().verify(token(key="t" * 64)) is None
    assert await verifier().verify(token(algorithm="HS512")) is None
    assert await verifier().verify("not.a.jwt") is None


async def test_leeway_admits_a_token_just_expired() -> None:
    just_expired = token(exp=int(time.time()) - 10)
    assert await verifier(leeway=60).verify(just_expired) is not None
    assert await verifier(leeway=0).verify(just_expired) is None


async def test_claims_are_read_from_configured_and_nested_paths() -> None:
    settings = {"principal_claim": "email", "roles_claim": "realm_access.roles", "scopes_claim": "scp"}
    claims = {"email": "bob@example.com", "realm_access": {"roles": ["admin"]}, "scp": ["tools:call"]}
    identity = await verifier(**settings).verify(token(**claims))
    assert identity == Identity("bob@example.com", frozenset({"admin"}), frozenset({"tools:call"}), ISSUER)


async def test_roles_or_scopes_as_a_string_are_split_and_of_any_other_shape_are_none() -> None:
    identity = await verifier().verify(token(roles="ops hr", scope=42))
    assert identity is not None
    assert (identity.roles, identity.scopes) == (frozenset({"ops", "hr"}), frozenset())
    identity = await verifier(roles_claim="realm_access.roles").verify(token(realm_access=["not", "a", "mapping"]))
    assert identity is not None and identity.roles == frozenset()
