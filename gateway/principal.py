"""Who a request is for, as every layer speaks of it.

A ``Principal`` is a name with roles and scopes, and the source that vouched for the name: an API key, a JWT from
the configured issuer, the local stdio user, or nobody (authentication off). Names from different sources are
different principals (an IdP's subject ``alice`` is not the API-key principal ``alice``): ``Principal.key`` tells
them apart wherever a principal owns something (sessions, per-client backend sessions, rate-limit buckets, audit
lines). Policy, rate limits and the audit log speak only of principals; ``gateway.security.auth`` makes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Source = Literal["api_key", "jwt", "local", "anonymous"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``method`` is the source that vouched for ``name``; ``issuer`` the JWT issuer that
    did (``jwt`` only). ``token`` is its bearer token, kept only to forward to backends that want it."""

    name: str
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    method: Source = "anonymous"
    issuer: str | None = None
    token: str | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        """Who this is, unique across sources: ``api_key:alice``, ``jwt:<issuer>#<subject>``, ``local:desk``."""
        if self.method == "jwt":
            return f"jwt:{self.issuer}#{self.name}"
        return f"{self.method}:{self.name}"


ANONYMOUS = Principal("anonymous")
