"""The two ways an HTTP caller proves who it is, each ending in a ``Principal`` (``gateway.principal``).

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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mcp.server.auth.provider import AccessToken

from gateway.config import AuthConfig, JwtConfig, LocalPrincipal
from gateway.errors import InvalidToken, Unauthorized
from gateway.principal import ANONYMOUS, Principal

if TYPE_CHECKING:
    from gateway.security.jwt_auth import JwtVerifier

# Where the HTTP security layer leaves its findings in the ASGI scope, for whatever serves the request.
SCOPE_PRINCIPAL = "gateway.principal"
SCOPE_ADMITTED = "gateway.admitted"


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
        self._jwt = _jwt_verifier(config.jwt) if config.jwt else None

    async def authenticate(self, authorization: str | None) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme and scheme.lower() != "bearer":
            raise Unauthorized("The Bearer scheme is required: send 'Authorization: Bearer <token>'")
        if not token:
            raise Unauthorized("Authentication required: send 'Authorization: Bearer <token>'")
        principal = self._api_key(token)
        if principal is None and self._jwt is not None and token.count(".") == 2:
            identity = await self._jwt.verify(token)
            if identity is not None:
                name, roles, scopes, issuer = identity
                principal = Principal(name, roles, scopes, method="jwt", issuer=issuer, token=token)
        if principal is None:
            raise InvalidToken("The bearer token is not valid")
        return principal

    async def verify_token(self, token: str) -> AccessToken | None:
        """The SDK's ``TokenVerifier`` hook: the principal as an ``AccessToken`` (client_id = principal key)."""
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
    """What the SDK's auth layer knows of a principal. It binds a 2025 session to the client id, issuer and
    subject of the credential that opened it, so the client id is the principal's key: a JWT subject never
    shares a session with the API-key principal of the same name."""
    claims: dict[str, Any] = {"method": principal.method, "roles": sorted(principal.roles)}
    if principal.issuer is not None:
        claims["iss"] = principal.issuer
    return AccessToken(
        token=principal.token or "",
        client_id=principal.key,
        scopes=sorted(principal.scopes),
        subject=principal.name,
        claims=claims,
    )


def _jwt_verifier(config: JwtConfig) -> JwtVerifier:
    """PyJWT and the parts of cryptography it loads take 50 ms to import; only a gateway that takes JWTs pays."""
    from gateway.security.jwt_auth import JwtVerifier

    return JwtVerifier(config)
