"""Typed configuration: the models a config file is validated into, once, at start-up.

Where the values come from (flags, ``GATEWAY_*`` variables, a YAML or ``mcpServers`` file, ``${VAR}``) is
``gateway.settings``'s. The rest of the gateway only ever sees a ``GatewayConfig``; it never reads the environment.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from gateway.config.composites import Composites
from gateway.config.search import SearchConfig
from gateway.config.servers import ServerConfig, check_static

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# A prefix also becomes part of a URI scheme (``ops+inventory://``), so it keeps to scheme characters.
PREFIX_PATTERN = r"^([A-Za-z][A-Za-z0-9-]{0,31})?$"
# Clients that show names to a person rather than to a model API, and so may see ``ops/search`` (see ``naming``).
DEFAULT_CANONICAL_CLIENTS = ("curl", "mcp-inspector")
MIB = 1024 * 1024
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


class Transport(StrEnum):
    """How a backend is reached. ``streamable-http``, the SDK's and the backends' spelling, is read as
    ``streamable_http``: one value inside, whichever a file uses."""

    STREAMABLE_HTTP = "streamable_http"
    SSE = "sse"
    STDIO = "stdio"

    @classmethod
    def _missing_(cls, value: object) -> Transport | None:
        spelled = value.replace("-", "_") if isinstance(value, str) else value
        return next((member for member in cls if member.value == spelled), None)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackendConfig(_Model):
    """One MCP server behind the gateway."""

    name: str = Field(pattern=NAME_PATTERN)
    prefix: str | None = Field(default=None, pattern=PREFIX_PATTERN)
    transport: Transport = Transport.STREAMABLE_HTTP
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    protocol: Literal["auto", "legacy", "2026-07-28"] = "auto"
    connect_timeout: float = Field(default=10.0, gt=0, le=600)
    call_timeout: float = Field(default=60.0, gt=0, le=86_400)
    tool_timeouts: dict[str, float] = Field(default_factory=dict)
    idempotent_tools: list[str] = Field(default_factory=list)
    required: bool = False
    breaker_threshold: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown: float = Field(default=30.0, gt=0, le=3600)
    session: Literal["shared", "per_client"] = "shared"
    max_sessions: int = Field(default=32, ge=1, le=10_000)
    session_idle_timeout: float = Field(default=1800.0, gt=0, le=86_400)
    # Send the caller's own bearer token to this backend on each call (streamable HTTP only).
    forward_token: bool = False
    max_result_bytes: int = Field(default=4 * MIB, ge=1024, le=1024 * MIB)
    oversized_result: Literal["refuse", "truncate"] = "refuse"
    # Check tool arguments against their inputSchema at the gateway for this backend; unset: as
    # ``security.validate_arguments`` says.
    validate_arguments: bool | None = None

    @field_validator("tool_timeouts")
    @classmethod
    def _positive(cls, timeouts: dict[str, float]) -> dict[str, float]:
        bad = sorted(name for name, seconds in timeouts.items() if not 0 < seconds <= 86_400)
        if bad:
            raise ValueError(f"timeouts must be between 0 and 86400 seconds; check {', '.join(bad)}")
        return timeouts

    @model_validator(mode="after")
    def _transport_fields(self) -> BackendConfig:
        if self.prefix is None and not re.match(PREFIX_PATTERN, self.name):
            raise ValueError(
                f"the name {self.name!r} cannot double as the prefix (letters, digits and '-', starting with a "
                "letter); set 'prefix'"
            )
        if self.transport is Transport.STDIO:
            if not self.command:
                raise ValueError("a stdio backend needs 'command'")
            if self.url:
                raise ValueError("a stdio backend takes 'command', not 'url'")
        else:
            if not self.url:
                raise ValueError(f"a {self.transport.value} backend needs 'url'")
            if not re.match(r"^https?://", self.url):
                raise ValueError(f"'url' must start with http:// or https://, got {self.url!r}")
            if self.command:
                raise ValueError(f"a {self.transport.value} backend takes 'url', not 'command'")
        if self.forward_token and self.transport is not Transport.STREAMABLE_HTTP:
            raise ValueError("'forward_token' needs a streamable_http backend: only it sends one request per call")
        return self

    @property
    def exposed_prefix(self) -> str:
        """The prefix clients see; defaults to the backend's name."""
        return self.name if self.prefix is None else self.prefix


class NamingConfig(_Model):
    """How exposed names are rendered for each client (see ``gateway.catalogue.naming``)."""

    style: Literal["auto", "canonical", "strict"] = "auto"
    separator: str = Field(default="__", pattern=r"^[A-Za-z0-9_-]{1,4}$")
    max_length: int = Field(default=64, ge=16, le=128)
    canonical_clients: tuple[str, ...] = DEFAULT_CANONICAL_CLIENTS


class ApiKeyConfig(_Model):
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


class JwtConfig(_Model):
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


class LocalPrincipal(_Model):
    """Who a stdio client is: the user who started the gateway."""

    name: str = Field(default="local", pattern=NAME_PATTERN)
    roles: tuple[str, ...] = ()


class AuthConfig(_Model):
    api_keys: tuple[ApiKeyConfig, ...] = ()
    jwt: JwtConfig | None = None
    # The public URL of /mcp, named in the protected-resource metadata; derived from each request when unset.
    resource_url: str | None = Field(default=None, pattern=r"^https?://")
    local: LocalPrincipal = LocalPrincipal()

    @property
    def enabled(self) -> bool:
        return bool(self.api_keys) or self.jwt is not None


class RuleConfig(_Model):
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


class PolicyConfig(_Model):
    # auto: allow everything while authentication is off (loopback), deny what no rule allows once it is on.
    default: Literal["auto", "allow", "deny"] = "auto"
    rules: tuple[RuleConfig, ...] = ()


class RateConfig(_Model):
    """A token bucket: ``burst`` calls at once, refilled at ``rate`` calls per second."""

    rate: float = Field(ge=0.001, le=1_000_000)
    burst: int = Field(ge=1, le=1_000_000)


class LimitsConfig(_Model):
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


class HttpConfig(_Model):
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


class AuditConfig(_Model):
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


class PinningConfig(_Model):
    file: Path | None = None


class SecurityConfig(_Model):
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


class AdminConfig(_Model):
    """The admin API under ``/admin``: served to principals with ``role`` (to loopback clients without auth)."""

    enabled: bool = True
    role: str = Field(default="admin", min_length=1)


class TracingConfig(_Model):
    """OpenTelemetry traces (``gateway.telemetry.tracing``): off unless an exporter is named. The command line fills
    it from the standard ``OTEL_*`` variables (``gateway.settings.tracing_from``)."""

    exporters: tuple[Literal["otlp", "console"], ...] = ()
    # OTLP over HTTP with protobuf bodies: the full URL of the traces resource.
    endpoint: str = "http://localhost:4318/v1/traces"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=10.0, gt=0, le=600)
    service_name: str = "mcp-gateway"
    resource: dict[str, str] = Field(default_factory=dict)
    sampler: Literal[
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ] = "parentbased_always_on"
    ratio: float = Field(default=1.0, ge=0, le=1)
    # How long finished spans wait to be sent in one batch (milliseconds).
    batch_delay: int = Field(default=5000, ge=0, le=600_000)

    @property
    def enabled(self) -> bool:
        return bool(self.exporters)


class MetricsConfig(_Model):
    """``/metrics``: served to loopback clients alone, or to any client that shows ``token`` as a bearer token."""

    enabled: bool = True
    token: SecretStr | None = None


class TelemetryConfig(_Model):
    metrics: MetricsConfig = MetricsConfig()
    tracing: TracingConfig = TracingConfig()


class LoggingConfig(_Model):
    """``json``: one JSON object a line, and an access line per request; ``auto``: ``json`` unless stderr is a
    terminal."""

    format: Literal["human", "json", "auto"] = "human"


class ClusterConfig(_Model):
    """Running as one of several replicas: the store they share, and the keys that seal 2025 session ids."""

    # Unset: a single process, everything in memory. ``memory`` or a redis:// URL: 2025 sessions are portable
    # between every gateway sharing the store (``memory`` shares nothing beyond this process).
    store: SecretStr | None = None
    # Secrets (each at least 32 characters) that seal session ids and request states; the first seals, every one
    # opens. Rotate by putting a new key first, and remove an old one once the sessions it sealed may go.
    session_keys: tuple[SecretStr, ...] = ()

    @field_validator("store")
    @classmethod
    def _store_url(cls, store: SecretStr | None) -> SecretStr | None:
        if store is not None and not re.match(r"^(memory|rediss?://.+)$", store.get_secret_value()):
            raise ValueError("expected 'memory' or a redis:// URL")
        return store

    @field_validator("session_keys")
    @classmethod
    def _long_keys(cls, keys: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        if any(len(key.get_secret_value()) < MIN_AUDIT_KEY for key in keys):
            raise ValueError(f"each session key must be at least {MIN_AUDIT_KEY} characters")
        return keys

    @model_validator(mode="after")
    def _keys_with_store(self) -> ClusterConfig:
        if self.store is not None and not self.session_keys:
            raise ValueError("a shared store needs session_keys, the same on every replica")
        return self


class GatewayConfig(_Model):
    """Everything the gateway core needs, validated."""

    backends: tuple[BackendConfig, ...] = ()
    # Virtual servers by name, each served at /servers/<name>/mcp (``gateway.config.servers``).
    servers: dict[str, ServerConfig] = Field(default_factory=dict)
    naming: NamingConfig = NamingConfig()
    start_timeout: float = Field(default=30.0, gt=0, le=600)
    reconnect_min: float = Field(default=0.5, gt=0, le=60)
    reconnect_max: float = Field(default=15.0, gt=0, le=3600)
    health_interval: float = Field(default=10.0, gt=0, le=3600)
    shutdown_grace: int = Field(default=10, ge=0, le=3600)
    # Answer 2025-era POSTs with plain JSON instead of an SSE stream (no progress or server requests mid-call).
    json_response: bool = False
    # Items per page of the gateway's own tools/prompts/resources lists; clients follow nextCursor for the rest.
    list_page_size: int = Field(default=1000, ge=1, le=100_000)
    # Answer plain 2026 tools/call and cached list pages around the SDK's endpoint; off, the SDK answers them all.
    fast_path: bool = True
    # Where runtime changes to the backends are kept (``runtime.sqlite3``); unset: the command line's default,
    # ``$XDG_STATE_HOME/mcp-gateway`` (``~/.local/state/mcp-gateway``).
    state_dir: Path | None = None
    # Seconds the calls in flight to a backend removed, disabled or replaced at run time get to finish before they
    # are cut short; unset: ``shutdown_grace``.
    retire_grace: float | None = Field(default=None, ge=0, le=3600)
    security: SecurityConfig = SecurityConfig()
    admin: AdminConfig = AdminConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    logging: LoggingConfig = LoggingConfig()
    cluster: ClusterConfig = ClusterConfig()
    composites: Composites = ()
    # Meta tools on /mcp that search, describe and call the catalogue's tools; lazy listing.
    search: SearchConfig = SearchConfig()

    @property
    def redis_url(self) -> str | None:
        """The Redis the replicas share: a redis:// ``cluster.store``, else a redis:// rate-limit store, else none."""
        for store in (self.cluster.store, self.security.limits.store):
            if store is not None and store.get_secret_value() != "memory":
                return store.get_secret_value()
        return None

    @field_validator("backends")
    @classmethod
    def _unique(cls, backends: tuple[BackendConfig, ...]) -> tuple[BackendConfig, ...]:
        names = [b.name for b in backends]
        prefixes = [b.exposed_prefix for b in backends if b.exposed_prefix]
        for label, values in (("names", names), ("prefixes", prefixes)):
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"backend {label} must be unique; repeated: {', '.join(dupes)}")
        return backends

    @field_validator("servers")
    @classmethod
    def _servers_fit(cls, servers: dict[str, ServerConfig], info: ValidationInfo) -> dict[str, ServerConfig]:
        if "backends" in info.data:  # else the backends' own errors are the ones to read
            check_static(servers, {b.name: b.exposed_prefix for b in info.data["backends"]})
        return servers

    def secret_values(self) -> list[str]:
        """Every configured value that must never be shown: keys, the JWT secret, the store URL, the audit key, and each
        backend's header and environment values (those shorter than ``MIN_SECRET`` cannot be told from words)."""
        auth, found = self.security.auth, []
        found += [k.key.get_secret_value() for k in auth.api_keys if k.key is not None]
        if auth.jwt is not None and auth.jwt.secret is not None:
            found.append(auth.jwt.secret.get_secret_value())
        if self.security.limits.store.get_secret_value() != "memory":
            found.append(self.security.limits.store.get_secret_value())
        if self.security.audit.key is not None:
            found.append(self.security.audit.key.get_secret_value())
        if self.telemetry.metrics.token is not None:
            found.append(self.telemetry.metrics.token.get_secret_value())
        if self.cluster.store is not None and self.cluster.store.get_secret_value() != "memory":
            found.append(self.cluster.store.get_secret_value())
        found += [key.get_secret_value() for key in self.cluster.session_keys]
        for backend in self.backends:
            for value in [*backend.headers.values(), *backend.env.values()]:
                found += [value, *value.split(" ", 1)[1:]]  # "Bearer t0k": the token on its own too
        for value in self.telemetry.tracing.headers.values():
            found += [value, *value.split(" ", 1)[1:]]
        return sorted({v for v in found if len(v) >= MIN_SECRET}, key=len, reverse=True)
