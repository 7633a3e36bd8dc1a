"""Virtual servers: named endpoints (``/servers/<name>/mcp``), each a chosen part of the catalogue, with its own
names, descriptions, hidden arguments and access rule.

Patterns are shell-style and mean what they mean in policy rules (``gateway.security.policy``): tools and prompts
by canonical name (``ops/*``), resources and templates by exposed URI (``ops+ops://tickets/*``) or by
``<prefix>/<backend URI>`` (``ops/ops://tickets/*``). A server sees only what the global policy already allows the
caller; its own ``access`` rule can narrow who may use it, never widen what anyone may use.

What can be checked from the file alone is checked here, each problem naming its place. What needs the backends'
listings (a tool an override names, a fixed argument the tool does not have) is ``gateway.composition.views``'s
``check_servers``, run once the first listings are in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.config.search import SearchConfig

# A server's name is a segment of its URL path.
SERVER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# The name an override gives a tool reads the same in both name styles (``gateway.catalogue.naming.STRICT_NAME``).
OVERRIDE_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnnotationsConfig(_Model):
    """Tool annotations as MCP spells them; those given replace the tool's own, the others stay."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    title: str | None = None
    read_only_hint: bool | None = Field(default=None, alias="readOnlyHint")
    destructive_hint: bool | None = Field(default=None, alias="destructiveHint")
    idempotent_hint: bool | None = Field(default=None, alias="idempotentHint")
    open_world_hint: bool | None = Field(default=None, alias="openWorldHint")


class ToolOverride(_Model):
    """How a server shows one tool: a new name (the same in both name styles), title, description, annotations,
    and arguments it fixes (hidden from the tool's ``inputSchema``, their values supplied on every call)."""

    name: str | None = None
    title: str | None = None
    description: str | None = None
    annotations: AnnotationsConfig | None = None
    fixed: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _strict(cls, name: str | None) -> str | None:
        if name is not None and not OVERRIDE_NAME.match(name):
            raise ValueError(f"{name!r} is not a tool name every client accepts: 1 to 64 of A-Z a-z 0-9 _ -")
        return name

    @field_validator("fixed")
    @classmethod
    def _named_arguments(cls, fixed: dict[str, Any]) -> dict[str, Any]:
        if any(not argument for argument in fixed):
            raise ValueError("a fixed argument has a name")
        return fixed


class AccessConfig(_Model):
    """Who may use a server: any one match admits; nothing named admits everyone the gateway admits.

    As in policy rules, ``principals`` are the names the configuration vouches for (API keys, the local stdio user)
    and ``subjects`` the subjects of the configured JWT issuer.
    """

    principals: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()

    @field_validator("principals", "subjects", "roles", "scopes")
    @classmethod
    def _non_empty(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name for name in names):
            raise ValueError("a name is never empty")
        return names

    @property
    def everyone(self) -> bool:
        return not (self.principals or self.subjects or self.roles or self.scopes)


class ServerConfig(_Model):
    """One virtual server: the backends it includes whole, include patterns per kind, exclude patterns over every
    kind, overrides per tool (keyed by canonical name), and who may use it."""

    description: str | None = None
    instructions: str | None = None
    backends: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    composites: tuple[str, ...] = ()
    overrides: dict[str, ToolOverride] = Field(default_factory=dict)
    access: AccessConfig = AccessConfig()
    # Meta tools on this server's endpoint (searching what it shows), as ``search`` does for /mcp.
    search: SearchConfig = SearchConfig()

    @field_validator("backends", "tools", "prompts", "resources", "exclude", "composites")
    @classmethod
    def _no_empty_pattern(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        if any(not pattern for pattern in patterns):
            raise ValueError("an empty name or pattern matches nothing")
        return patterns

    @model_validator(mode="after")
    def _consistent(self) -> ServerConfig:
        if not (self.backends or self.tools or self.prompts or self.resources or self.composites):
            raise ValueError("a server selects something: 'backends', 'tools', 'prompts', 'resources' or 'composites'")
        names: dict[str, str] = {}
        for tool, override in self.overrides.items():
            if override.name is None:
                continue
            if override.name in names:
                raise ValueError(
                    f"overrides: {names[override.name]!r} and {tool!r} are both renamed to {override.name!r}"
                )
            names[override.name] = tool
        return self

    def selects_tool(self, canonical: str, prefixes: Iterable[str]) -> bool:
        """Whether the tool is in this server, its included backends given by their prefixes (patterns matched as
        ``gateway.security.policy`` matches them)."""
        owner, slash, _ = canonical.partition("/")
        included = (slash and owner in prefixes) or any(fnmatchcase(canonical, p) for p in self.tools)
        return bool(included) and not any(fnmatchcase(canonical, p) for p in self.exclude)


def check_static(servers: Mapping[str, ServerConfig], prefixes: Mapping[str, str]) -> None:
    """What a server's config says against the backends' (name -> exposed prefix): its name fits a URL path, the
    backends it includes exist and have a prefix to tell their items by, and each override names a tool it selects.
    Raises ``ValueError`` naming the place under ``servers``."""
    for name, server in servers.items():
        if not SERVER_NAME.match(name):
            raise ValueError(
                f"{name!r} is not a server name: 1 to 63 of a-z 0-9 _ -, starting with a letter or digit "
                "(it is a segment of the URL path /servers/<name>/mcp)"
            )
        _check_backends(f"{name}.backends", server.backends, prefixes)
        included = [prefixes[backend] for backend in server.backends]
        for tool in server.overrides:
            if not server.selects_tool(tool, included):
                raise ValueError(f"{name}.overrides.{tool}: the server does not select this tool, so nothing shows it")


def _check_backends(place: str, backends: Sequence[str], prefixes: Mapping[str, str]) -> None:
    for backend in backends:
        if backend not in prefixes:
            raise ValueError(f"{place}: unknown backend {backend!r}")
        if not prefixes[backend]:
            raise ValueError(
                f"{place}: backend {backend!r} has an empty prefix, so its items cannot be told from others' by name; "
                "select them with patterns"
            )
