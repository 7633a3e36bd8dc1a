"""Typed configuration: the models a config file is validated into, once, at start-up.

Where the values come from (flags, ``GATEWAY_*`` variables, a YAML or ``mcpServers`` file, ``${VAR}``) is
``gateway.settings``'s. The rest of the gateway only ever sees a ``GatewayConfig``; it never reads the environment.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from gateway.config.common import MIB, NAME_PATTERN, Model
from gateway.config.composites import Composites
from gateway.config.search import SearchConfig
from gateway.config.security import (
    LOOPBACK_HOSTS,
    LOOPBACK_ORIGINS,
    MIN_AUDIT_KEY,
    MIN_SECRET,
    ApiKeyConfig,
    AuditConfig,
    AuthConfig,
    HttpConfig,
    JwtConfig,
    LimitsConfig,
    LocalPrincipal,
    PinningConfig,
    PolicyConfig,
    RateConfig,
    RuleConfig,
    SecurityConfig,
)
from gateway.config.servers import ServerConfig, check_static

__all__ = [
    "DEFAULT_CANONICAL_CLIENTS",
    "LOOPBACK_HOSTS",
    "LOOPBACK_ORIGINS",
    "MIB",
    "MIN_AUDIT_KEY",
    "MIN_SECRET",
    "NAME_PATTERN",
    "PREFIX_PATTERN",
    "AdminConfig",
    "ApiKeyConfig",
    "AuditConfig",
    "AuthConfig",
    "BackendConfig",
    "ClusterConfig",
    "Composites",
    "GatewayConfig",
    "HttpConfig",
    "JwtConfig",
    "LimitsConfig",
    "LocalPrincipal",
    "LoggingConfig",
    "MetricsConfig",
    "NamingConfig",
    "PinningConfig",
    "PolicyConfig",
    "RateConfig",
    "RuleConfig",
    "SearchConfig",
    "SecurityConfig",
    "ServerConfig",
    "TelemetryConfig",
    "TracingConfig",
    "Transport",
]

# A prefix also becomes part of a URI scheme (``ops+inventory://``), so it keeps to scheme characters.
PREFIX_PATTERN = r"^([A-Za-z][A-Za-z0-9-]{0,31})?$"
# Clients that show names to a person rather than to a model API, and so may see ``ops/search`` (see ``naming``).
DEFAULT_CANONICAL_CLIENTS = ("curl", "mcp-inspector")


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


class BackendConfig(Model):
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


class NamingConfig(Model):
    """How exposed names are rendered for each client (see ``gateway.catalogue.naming``)."""

    style: Literal["auto", "canonical", "strict"] = "auto"
    separator: str = Field(default="__", pattern=r"^[A-Za-z0-9_-]{1,4}$")
    max_length: int = Field(default=64, ge=16, le=128)
    canonical_clients: tuple[str, ...] = DEFAULT_CANONICAL_CLIENTS


class AdminConfig(Model):
    """The admin API under ``/admin``: served to principals with ``role`` (to loopback clients without auth)."""

    enabled: bool = True
    role: str = Field(default="admin", min_length=1)


class TracingConfig(Model):
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


class MetricsConfig(Model):
    """``/metrics``: served to loopback clients alone, or to any client that shows ``token`` as a bearer token."""

    enabled: bool = True
    token: SecretStr | None = None


class TelemetryConfig(Model):
    metrics: MetricsConfig = MetricsConfig()
    tracing: TracingConfig = TracingConfig()


class LoggingConfig(Model):
    """``json``: one JSON object a line, and an access line per request; ``auto``: ``json`` unless stderr is a
    terminal."""

    format: Literal["human", "json", "auto"] = "human"


class ClusterConfig(Model):
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


class GatewayConfig(Model):
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
