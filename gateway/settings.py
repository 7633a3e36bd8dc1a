"""Where configuration comes from, read once by the command line.

Sources, in order: command-line flags, ``GATEWAY_*`` environment variables (``Settings``), and a config file
(YAML with ``backends:``, or the ``mcpServers`` JSON of Claude Desktop and Cursor). Without a file the gateway
fronts the three sample backends on localhost. ``${VAR}`` and ``${VAR:-default}`` are substituted in every
string of the file. What comes out is a ``GatewayConfig`` (``gateway.config``), validated once.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.config import BackendConfig, GatewayConfig, TracingConfig
from gateway.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Settings(BaseSettings):
    """The ``GATEWAY_*`` environment, read once by the CLI."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    config: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    name_style: Literal["auto", "canonical", "strict"] | None = None
    json_response: bool | None = None
    allow_unauthenticated: bool = False
    log_level: str = "info"
    log_format: Literal["human", "json", "auto"] | None = None
    workers: int = Field(default=1, ge=1, le=1024)


def default_backends(host: str = "127.0.0.1", ports: tuple[int, int, int] = (8001, 8002, 8003)) -> list[BackendConfig]:
    """The three sample backends, as ``mcp-gateway demo`` starts them."""
    names = (("ops", "ops"), ("hr", "hr"), ("finance", "fin"))
    return [
        BackendConfig(name=name, prefix=prefix, url=f"http://{host}:{port}/mcp")
        for (name, prefix), port in zip(names, ports, strict=True)
    ]


def default_composites() -> list[dict[str, Any]]:
    """The composite tools of the default configuration, over the three sample backends (``docs/composition.md``)."""
    person = {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string"}}}
    return [
        {
            "name": "incident_full_report",
            "title": "Incident full report",
            "description": (
                "The open ops incidents, the engineer on call and whom to escalate to, and the on-call team's "
                "budget for the quarter (ops tickets, hr records and finance budgets in one call)."
            ),
            "read_only": True,
            "input_schema": {
                "type": "object",
                "properties": {
                    "on_call": {
                        "type": "string",
                        "pattern": r"^E\d{4}$",
                        "description": "On-call engineer, e.g. E1007",
                    },
                    "quarter": {"type": "string", "pattern": r"^\d{4}-Q[1-4]$", "description": "e.g. 2026-Q2"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5},
                },
                "required": ["on_call", "quarter"],
            },
            "output_schema": {
                "type": "object",
                "properties": {
                    "incidents": {"type": "array", "items": {"type": "object"}},
                    "incident_count": {"type": "integer"},
                    "on_call": {**person, "required": ["name", "email"]},
                    "escalate_to": {**person, "required": ["name", "email"]},
                    "budget": {"type": "object"},
                },
                "required": ["incidents", "incident_count", "on_call", "escalate_to", "budget"],
            },
            "steps": {
                "incidents": {
                    "tool": "ops/list_tickets",
                    "arguments": {"status": "open", "limit": {"$ref": "input.limit"}},
                },
                "on_call": {"tool": "hr/get_employee", "arguments": {"employee_id": {"$ref": "input.on_call"}}},
                "manager": {
                    "tool": "hr/get_employee",
                    "arguments": {"employee_id": {"$ref": "steps.on_call.manager_id"}},
                },
                "budget": {
                    "tool": "fin/calculate_budget",
                    "arguments": {
                        "department": {"$ref": "steps.on_call.department"},
                        "quarter": {"$ref": "input.quarter"},
                    },
                },
            },
            "result": {
                "incidents": {"$ref": "steps.incidents.tickets"},
                "incident_count": {"$ref": "steps.incidents.count"},
                "on_call": {
                    "name": {"$ref": "steps.on_call.name"},
                    "email": {"$ref": "steps.on_call.email"},
                    "title": {"$ref": "steps.on_call.title"},
                    "department": {"$ref": "steps.on_call.department"},
                },
                "escalate_to": {"name": {"$ref": "steps.manager.name"}, "email": {"$ref": "steps.manager.email"}},
                "budget": {"$ref": "steps.budget"},
            },
        }
    ]


def default_servers() -> dict[str, dict[str, Any]]:
    """The virtual servers of the default configuration (``docs/composition.md``): ``oncall``, a desk's read-only
    part of the sample backends with a renamed tool, a fixed argument and the composite; ``lazy``, all three
    backends behind tool search, its ``tools/list`` showing the meta tools alone."""
    return {
        "oncall": {
            "description": "The on-call desk's view",
            "instructions": (
                "Read-only. incident_full_report says what is open, who is on call and whom to escalate to; "
                "approved_leave says who is away."
            ),
            "tools": [
                "ops/list_tickets",
                "ops/lookup_inventory",
                "ops/search",
                "hr/get_employee",
                "hr/list_leave_requests",
                "fin/calculate_budget",
            ],
            "prompts": ["ops/incident_report"],
            "resources": ["ops/ops://tickets/*"],
            "composites": ["incident_full_report"],
            "overrides": {
                "hr/list_leave_requests": {
                    "name": "approved_leave",
                    "title": "Approved leave",
                    "description": "Approved leave, latest start first; pass employee_id for one person.",
                    "fixed": {"status": "approved"},
                    "annotations": {"openWorldHint": False},
                },
            },
        },
        "lazy": {
            "description": "Every sample backend's tools, found by searching",
            "backends": ["ops", "hr", "finance"],
            "search": {"enabled": True, "lazy": True},
        },
    }


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """Where runtime changes are kept when the config names no ``state_dir``: the XDG state directory."""
    base = environ.get("XDG_STATE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".local" / "state")
    return Path(base) / "mcp-gateway"


def load_config(
    path: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    style: str | None = None,
    host: str = "127.0.0.1",
    ports: tuple[int, int, int] = (8001, 8002, 8003),
) -> GatewayConfig:
    """Read, substitute and validate a config file (or the sample backends at ``host``/``ports``).

    Raises one ``ConfigError`` that names the source, the field and the problem.
    """
    env = os.environ if environ is None else environ
    source = str(path) if path else "default configuration"
    keys: list[str] = []
    if path is None:
        data: dict[str, Any] = {
            "backends": [b.model_dump() for b in default_backends(host, ports)],
            "composites": default_composites(),
            "servers": default_servers(),
        }
    else:
        data = _read_file(path)
        data = _substitute(data, env, source, ())
        if "mcpServers" in data:
            data = _from_mcp_servers(data, source)
            keys = [f"mcpServers.{b['name']}" for b in data["backends"]]
    naming = data.get("naming") or {}
    if style is not None and isinstance(naming, dict):
        data["naming"] = {**naming, "style": style}
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, source, keys=keys)) from None


def tracing_from(env: Mapping[str, str]) -> TracingConfig:
    """Traces as the standard ``OTEL_*`` variables configure them. Unlike the SDK's own default (``otlp``), no
    ``OTEL_TRACES_EXPORTER`` and no OTLP endpoint means no traces at all: a gateway exports nothing unasked."""
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    named = env.get("OTEL_TRACES_EXPORTER") or ("otlp" if endpoint or base else "none")
    exporters = [name.strip() for name in named.split(",") if name.strip() not in ("", "none")]
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        exporters = []
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if "otlp" in exporters and protocol not in (None, "http/protobuf"):
        raise ConfigError(f"environment: OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is supported, not {protocol}")
    data: dict[str, Any] = {
        "exporters": exporters,
        "headers": _pairs(env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS")),
        "resource": _pairs(env.get("OTEL_RESOURCE_ATTRIBUTES")),
    }
    if endpoint:
        data["endpoint"] = endpoint
    elif base:
        data["endpoint"] = f"{base.rstrip('/')}/v1/traces"
    optional = {
        "timeout": _seconds(env, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or _seconds(env, "OTEL_EXPORTER_OTLP_TIMEOUT"),
        "service_name": env.get("OTEL_SERVICE_NAME") or data["resource"].get("service.name"),
        "sampler": env.get("OTEL_TRACES_SAMPLER"),
        "ratio": env.get("OTEL_TRACES_SAMPLER_ARG") if "ratio" in env.get("OTEL_TRACES_SAMPLER", "") else None,
        "batch_delay": env.get("OTEL_BSP_SCHEDULE_DELAY"),
    }
    data.update({key: value for key, value in optional.items() if value is not None})
    try:
        return TracingConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, "environment (OTEL_* traces)")) from None


def _pairs(text: str | None) -> dict[str, str]:
    """``key=value,key2=value2`` (values percent-encoded), as ``OTEL_RESOURCE_ATTRIBUTES`` and the OTLP headers."""
    pairs = (item.split("=", 1) for item in (text or "").split(",") if "=" in item)
    return {unquote(key).strip(): unquote(value).strip() for key, value in pairs}


def _seconds(env: Mapping[str, str], name: str) -> float | None:
    """A timeout the OpenTelemetry specification gives in milliseconds."""
    text = env.get(name)
    if not text:
        return None
    try:
        return float(text) / 1000
    except ValueError:
        raise ConfigError(f"environment: {name}: expected milliseconds, got {text!r}") from None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if path.suffix == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
        return _mapping(path, data)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    return _mapping(path, data)


def _mapping(path: Path, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'backends' or 'mcpServers' at the top level")
    return data


def _substitute(value: Any, env: Mapping[str, str], source: str, where: tuple[str | int, ...]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            field = _path(where) or "(top level)"
            raise ConfigError(f"{source}: {field}: environment variable {name} is not set and has no default")

        return _VAR.sub(replace, value)
    if isinstance(value, dict):
        return {k: _substitute(v, env, source, (*where, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, source, (*where, i)) for i, v in enumerate(value)]
    return value


def _from_mcp_servers(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Turn a Claude Desktop / Cursor ``mcpServers`` mapping into ``backends``, each key a name and prefix."""
    servers = data["mcpServers"]
    if not isinstance(servers, dict):
        raise ConfigError(f"{source}: mcpServers: expected a mapping of server name to server")
    backends = []
    for key, entry in servers.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: mcpServers.{key}: expected a mapping")
        backend = {k: v for k, v in entry.items() if k not in ("type", "transport", "disabled")}
        kind = str(entry.get("type") or entry.get("transport") or ("stdio" if "command" in entry else "http"))
        backend["transport"] = "sse" if kind == "sse" else "stdio" if kind == "stdio" else "streamable_http"
        backend["name"] = key
        backend.setdefault("prefix", _prefix_from_key(key))
        if not entry.get("disabled"):
            backends.append(backend)
    rest = {k: v for k, v in data.items() if k != "mcpServers"}
    return {**rest, "backends": backends}


def _prefix_from_key(key: str) -> str:
    """A server key such as ``my_files`` becomes the prefix ``my-files`` (prefixes keep to URI-scheme characters)."""
    prefix = re.sub(r"[^A-Za-z0-9-]+", "-", key).strip("-")[:32]
    return prefix if prefix[:1].isalpha() else f"s-{prefix}"[:32]


def describe_errors(exc: ValidationError, source: str, prefix: str = "", *, keys: Sequence[str] = ()) -> str:
    """One line per problem; entries that came from an ``mcpServers`` file are named by their key there."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        if prefix and loc:
            loc = [f"{prefix}{str(loc[0]).upper()}", *loc[1:]]
        if keys and loc[:1] == ["backends"] and len(loc) > 1 and isinstance(loc[1], int) and loc[1] < len(keys):
            loc = [keys[loc[1]], *loc[2:]]
        field = _path(loc) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {field}: {message}")
    return "\n".join(lines)


def _path(loc: tuple[str | int, ...] | list[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
