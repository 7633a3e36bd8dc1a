"""JWT bearer tokens checked as an OAuth 2.1 resource server checks them (``gateway.security.auth`` uses this when JWTs
are configured, and imports it only then).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

import anyio.to_thread
import jwt

from gateway.config import JwtConfig

logger = logging.getLogger(__name__)
JWKS_TIMEOUT = 10.0
JWKS_CACHE_SECONDS = 300


class Identity(NamedTuple):
    """Who a valid token names, from the configured claims."""

    name: str
    roles: frozenset[str]
    scopes: frozenset[str]
    issuer: str


class JwtVerifier:
    """A JWT to the identity it names, as ``auth`` describes: signature, issuer, audience, expiry, not-before."""

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

    async def verify(self, token: str) -> Identity | None:
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
        return Identity(name, roles, scopes, str(claims["iss"]))

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
