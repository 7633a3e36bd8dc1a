"""Who is calling: principals, and the two ways an HTTP caller proves who it is.

A ``Principal`` is a name with roles and scopes; policy, rate limits and the audit log speak only of principals.
API keys are kept as SHA-256 digests and compared in constant time against every configured digest, so neither the
key nor which entry matched shows in the timing. JWTs are checked as an OAuth 2.1 resource server checks them:
signature (RS256/ES256 from a JWKS URL or a PEM file, HS256 from a secret), issuer, audience, expiry and
not-before; the principal, its roles and its scopes come from configurable claims. ``Authenticator`` is also the
SDK's ``TokenVerifier``, so the SDK's own session binding (a 2025 session answers only the credential that opened
it) works unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import jwt
from mcp.server.auth.provider import AccessToken

from gateway.config import AuthConfig, JwtConfig, LocalPrincipal
from gateway.errors import Unauthorized

logger = logging.getLogger(__name__)
# Where the HTTP security layer leaves its findings in the ASGI scope, for whatever serves the request.
SCOPE_PRINCIPAL = "gateway.principal"
SCOPE_ADMITTED = "gateway.admitted"
JWKS_TIMEOUT = 10.0
JWKS_CACHE_SECONDS = 300


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``token`` is its bearer token, kept only to forward to backends that want it."""

    name: str
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    method: str = "anonymous"
    token: str | None = field(default=None, repr=False, compare=False)


ANONYMOUS = Principal("anonymous")


def principal_of(scope: Mapping[str, Any]) -> Principal:
    """The principal the HTTP security layer authenticated; a request it did not see is refused."""
    principal = scope.get(SCOPE_PRINCIPAL)
    if not isinstance(principal, Principal):
        raise Unauthorized("The request was not authenticated")
    return principal


def local_principal(config: LocalPrincipal) -> Principal:
    return Principal(config.name, frozenset(config.roles), method="local")


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class Authenticator:
    """Turns an ``Authorization`` header into a ``Principal``, or refuses with ``Unauthorized``."""

    def __init__(self, config: AuthConfig) -> None:
        self.enabled = config.enabled
        self._keys = [
            (key_digest(k.key.get_secret_value()) if k.key else bytes.fromhex(k.sha256 or ""), k.principal, k.roles)
            for k in config.api_keys
        ]
        self._jwt = _JwtVerifier(config.jwt) if config.jwt else None

    async def authenticate(self, authorization: str | None) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Authentication required: send 'Authorization: Bearer <token>'")
        principal = self._api_key(token)
        if principal is None and self._jwt is not None and token.count(".") == 2:
            principal = await self._jwt.verify(token)
        if principal is None:
            raise Unauthorized("The bearer token is not valid")
        return principal

    async def verify_token(self, token: str) -> AccessToken | None:
        """The SDK's ``TokenVerifier`` hook: the principal as an ``AccessToken`` (client_id = principal name)."""
        try:
            principal = await self.authenticate(f"Bearer {token}")
        except Unauthorized:
            return None
        return access_token(principal)

    def _api_key(self, token: str) -> Principal | None:
        digest = key_digest(token)
        found: Principal | None = None
        for stored, name, roles in self._keys:
            if hmac.compare_digest(digest, stored) and found is None:
                found = Principal(name, frozenset(roles), method="api_key", token=token)
        return found


def access_token(principal: Principal) -> AccessToken:
    """What the SDK's auth layer knows of a principal (it binds 2025 sessions to it)."""
    return AccessToken(
        token=principal.token or "",
        client_id=principal.name,
        scopes=sorted(principal.scopes),
        subject=principal.name,
        claims={"method": principal.method, "roles": sorted(principal.roles)},
    )


class _JwtVerifier:
    def __init__(self, config: JwtConfig) -> None:
        self._config = config
        self._jwks = (
            jwt.PyJWKClient(config.jwks_url, lifespan=JWKS_CACHE_SECONDS, timeout=JWKS_TIMEOUT)
            if config.jwks_url
            else None
        )
        self._key: Any = None
        if config.secret is not None:
            self._key = config.secret.get_secret_value()
        elif config.public_key_file is not None:
            self._key = config.public_key_file.read_bytes()

    async def verify(self, token: str) -> Principal | None:
        config = self._config
        try:
            key = self._key if self._jwks is None else await self._signing_key(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=list(config.algorithms),
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            logger.info("refused a JWT: %s", exc)
            return None
        name = _claim(claims, config.principal_claim)
        if not isinstance(name, str) or not name:
            logger.info("refused a JWT without a %r claim", config.principal_claim)
            return None
        roles = _names(_claim(claims, config.roles_claim))
        scopes = _names(_claim(claims, config.scopes_claim))
        return Principal(name, roles, scopes, method="jwt", token=token)

    async def _signing_key(self, token: str) -> Any:
        assert self._jwks is not None
        jwks = self._jwks
        try:
            found = await anyio.to_thread.run_sync(jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as exc:
            logger.warning("cannot fetch the JWKS: %s", exc)
            raise
        return found.key


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, or by a dotted path into nested objects (``realm_access.roles``)."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _names(value: Any) -> frozenset[str]:
    """Roles or scopes: a list of strings, or one space-separated string (the OAuth ``scope`` form)."""
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()
