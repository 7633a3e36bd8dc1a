"""The ``security`` section: authentication, policy, rate limits, the HTTP front's allow-lists, audit and pinning
(what each means: docs/security.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from gateway.config.common import MIB, NAME_PATTERN, Model

MIN_SECRET = 8
MIN_AUDIT_KEY = 32
LOOPBACK_HOSTS = ("127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*", "[::1]", "[::1]:*")
LOOPBACK_ORIGINS = (
    "http://127.0.0.1",
    "http://127.0.0.1:*",
    "http://localhost",
    "http://localhost:*",
    "http://[::1]:*",
)


class ApiKeyConfig(Model):
    """A static bearer token for one principal: ``key`` (hashed at load, never kept) or its hex ``sha256``."""

    principal: str = Field(pattern=NAME_PATTERN)
    key: SecretStr | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    roles: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_form(self) -> ApiKeyConfig:
        if (self.key is None) == (self.sha256 is None):
            raise ValueError("give exactly one of 'key' and 'sha256'")
        if self.key is not None and len(self.key.get_secret_value()) < 16:
            raise ValueError("an API key needs at least 16 characters")
        return self


class JwtConfig(Model):
    """JWT bearer tokens from an OAuth authorization server, checked as a resource server does."""

    issuer: str = Field(pattern=r"^https?://")
    audience: str
    algorithms: tuple[Literal["RS256", "ES256", "HS256"], ...] = ("RS256",)
    jwks_url: str | None = Field(default=None, pattern=r"^https?://")
    public_key_file: Path | None = None
    secret: SecretStr | None = None
    principal_claim: str = "sub"
    roles_claim: str = "roles"
    scopes_claim: str = "scope"
    leeway: float = Field(default=30.0, ge=0, le=600)

    @model_validator(mode="after")
    def _one_key(self) -> JwtConfig:
        sources = [s for s in (self.jwks_url, self.public_key_file, self.secret) if s is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of 'jwks_url', 'public_key_file' and 'secret'")
        symmetric = self.secret is not None
        if symmetric != (set(self.algorithms) == {"HS256"}):
            raise ValueError(
                "'secret' goes with algorithms [HS256]; RS256 and ES256 take 'jwks_url' or 'public_key_file'"
            )
        if self.secret is not None and len(self.secret.get_secret_value().encode()) < 32:
            raise ValueError("an HS256 secret needs at least 32 bytes")
        return self


class LocalPrincipal(Model):
    """Who a stdio client is: the user who started the gateway."""

    name: str = Field(default="local", pattern=NAME_PATTERN)
    roles: tuple[str, ...] = ()


class AuthConfig(Model):
    api_keys: tuple[ApiKeyConfig, ...] = ()
    jwt: JwtConfig | None = None
    # The public URL of /mcp, named in the protected-resource metadata; derived from each request when unset.
    resource_url: str | None = Field(default=None, pattern=r"^https?://")
    local: LocalPrincipal = LocalPrincipal()

    @property
    def enabled(self) -> bool:
        return bool(self.api_keys) or self.jwt is not None


class RuleConfig(Model):
    """Allow and deny patterns on canonical names, for the principals, JWT subjects, roles or scopes named.

    ``principals`` are the names the gateway's own configuration gives (API keys, the local stdio principal), and
    ``"*"`` there means everyone; ``subjects`` are subjects of the configured JWT issuer (``"*"``: any of them).
    An IdP's subject ``alice`` is not the API-key principal ``alice``.
    """

    principals: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @field_validator("principals")
    @classmethod
    def _configured_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if name != "*" and not re.match(NAME_PATTERN, name):
                raise ValueError(f"{name!r} is not a configured principal's name; name JWT subjects under 'subjects'")
        return names

    @field_validator("subjects")
    @classmethod
    def _non_empty(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name for name in names):
            raise ValueError("a JWT subject is never empty")
        return names

    @model_validator(mode="after")
    def _has_subject(self) -> RuleConfig:
        if not (self.principals or self.subjects or self.roles or self.scopes):
            raise ValueError("a rule names at least one of 'principals', 'subjects', 'roles' and 'scopes'")
        return self


class PolicyConfig(Model):
    # auto: allow everything while authentication is off (loopback), deny what no rule allows once it is on.
    default: Literal["auto", "allow", "deny"] = "auto"
    rules: tuple[RuleConfig, ...] = ()


class RateConfig(Model):
    """A token bucket: ``burst`` calls at once, refilled at ``rate`` calls per second."""

    rate: float = Field(ge=0.001, le=1_000_000)
    burst: int = Field(ge=1, le=1_000_000)


class LimitsConfig(Model):
    per_principal: RateConfig | None = None
    # Canonical tool name -> a bucket per principal for that tool, on top of the principal's own.
    per_tool: dict[str, RateConfig] = Field(default_factory=dict)
    # "memory", or a redis:// URL so replicas share one budget.
    store: SecretStr = SecretStr("memory")
    max_body_bytes: int = Field(default=4 * MIB, ge=1024, le=1024 * MIB)
    max_json_depth: int = Field(default=64, ge=4, le=1000)
    # Open 2025 client sessions: per principal (its least recently used one closes for a new one), and in all.
    max_sessions_per_principal: int = Field(default=100, ge=1, le=1_000_000)
    max_client_sessions: int = Field(default=10_000, ge=1, le=1_000_000)

    @field_validator("store")
    @classmethod
    def _store(cls, store: SecretStr) -> SecretStr:
        if not re.match(r"^(memory|rediss?://.+)$", store.get_secret_value()):
            raise ValueError("expected 'memory' or a redis:// URL")
        return store


class HttpConfig(Model):
    """The HTTP front: Host and Origin allow-lists against DNS rebinding ("host:*" any port; "*" anything), and
    what one connection may hold of the server (read by ``http_limits``)."""

    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    allowed_origins: tuple[str, ...] = LOOPBACK_ORIGINS
    # A request's line and headers together, and its number of header fields: 431 and closed above either.
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * MIB)
    max_headers: int = Field(default=100, ge=8, le=10_000)
    # Seconds a request's line and headers may take to arrive (from its first byte, or from the accept for a
    # connection's first request), and its body after them: 408 and closed past either.
    header_timeout: float = Field(default=10.0, gt=0, le=3600)
    body_timeout: float = Field(default=30.0, gt=0, le=3600)
    # Open connections from one client address (0: no cap). Behind a reverse proxy every client has its address.
    max_connections_per_client: int = Field(default=256, ge=0, le=1_000_000)
    # Seconds an idle keep-alive connection stays open between requests.
    keep_alive_timeout: int = Field(default=5, ge=1, le=3600)


class AuditConfig(Model):
    """The audit log; its HMAC key lives outside it (see ``gateway.security.audit_key``)."""

    file: Path | None = None
    # The HMAC key itself, or a file holding it; with neither, "<file>.key", generated (mode 0600) on first start.
    key: SecretStr | None = None
    key_file: Path | None = None
    # Where the last checkpoint is recorded ("<file>.anchor" by default), so lines cut off the end are found.
    anchor_file: Path | None = None
    checkpoint_every: int = Field(default=100, ge=1, le=1_000_000)
    include_arguments: bool = False
    # Key names redacted besides the common secret names (matched the same way: case and "_-. " ignored).
    redact_keys: tuple[str, ...] = ()
    # Longer strings (names, principals, argument keys and values) are cut, marked with their length.
    max_field_chars: int = Field(default=1024, ge=64, le=1_000_000)
    # Recorded arguments whose JSON is longer are replaced by a marker with their length.
    max_arguments_chars: int = Field(default=16_384, ge=256, le=100_000_000)

    @model_validator(mode="after")
    def _one_key(self) -> AuditConfig:
        if self.key is not None and self.key_file is not None:
            raise ValueError("give at most one of 'key' and 'key_file'")
        if self.key is not None and len(self.key.get_secret_value()) < MIN_AUDIT_KEY:
            raise ValueError(f"the audit key must be at least {MIN_AUDIT_KEY} characters")
        return self


class PinningConfig(Model):
    file: Path | None = None


class SecurityConfig(Model):
    auth: AuthConfig = AuthConfig()
    policy: PolicyConfig = PolicyConfig()
    limits: LimitsConfig = LimitsConfig()
    http: HttpConfig = HttpConfig()
    audit: AuditConfig = AuditConfig()
    pinning: PinningConfig = PinningConfig()
    # Refuse tool arguments that fail their inputSchema before they reach the backend. Off by default: the backend
    # is the authority on its own arguments (a null for an optional one is its call), and it validates anyway.
    validate_arguments: bool = False

    @model_validator(mode="after")
    def _subjects_apart(self) -> SecurityConfig:
        """JWT subjects and configured principals are told apart in rules; a config that mixes them up says so."""
        rules = self.policy.rules
        if self.auth.jwt is None:
            if any(rule.subjects for rule in rules):
                raise ValueError("a policy rule names JWT 'subjects', but no 'security.auth.jwt' is configured")
            return self
        known = {key.principal for key in self.auth.api_keys} | {self.auth.local.name, "*"}
        unknown = sorted({name for rule in rules for name in rule.principals} - known)
        if unknown:
            raise ValueError(
                f"policy rules name principals {unknown} that no API key or local principal has; "
                "name JWT subjects under 'subjects'"
            )
        return self
