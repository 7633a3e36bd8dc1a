"""What a link negotiated, applied to each request the raw path sends and each answer it gets back.

The SDK client session puts a stamp on every request after its handshake, and checks every result against the
negotiated version's schema; the raw path (``gateway.upstream.forward``) sends beside that session, so it does
both itself, from the SDK's public pieces: the header names, ``NAME_BEARING_METHODS``, ``encode_header_value`` and
the ``Mcp-Param-*`` helpers of ``mcp.shared.inbound``, the ``_meta`` keys of ``mcp_types``, and the per-version
result schemas of ``mcp_types.methods``. On a 2025 link the stamp is the ``MCP-Protocol-Version`` header; on a 2026
link also ``Mcp-Method``, ``Mcp-Name`` and the ``Mcp-Param-*`` headers its listed tools declare, and the ``_meta``
envelope (protocol version, client info, client capabilities). ``tests/test_upstream_link.py`` compares the stamp
with the SDK session's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, cast

from mcp import types
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
    mcp_param_headers,
    x_mcp_header_map,
)
from mcp_types import CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY, methods
from mcp_types.version import KNOWN_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import TypeAdapter

from gateway import __version__

CLIENT_INFO = types.Implementation(name="mcp-gateway", version=__version__)
# What the SDK client declares for the callbacks every gateway connection gives it (``gateway.upstream.backchannel``):
# sampling, both kinds of elicitation, and roots.
CAPABILITIES = types.ClientCapabilities(
    sampling=types.SamplingCapability(),
    elicitation=types.ElicitationCapability(
        form=types.FormElicitationCapability(), url=types.UrlElicitationCapability()
    ),
    roots=types.RootsCapability(list_changed=True),
)


@dataclass(frozen=True)
class Negotiated:
    """A link's protocol version and, on a 2026 link, what its requests carry for it."""

    version: str
    envelope: Mapping[str, Any] = field(default_factory=dict)
    param_maps: Mapping[str, Mapping[tuple[str, ...], str]] = field(default_factory=dict)

    @classmethod
    def at(cls, version: str, tools: Iterable[types.Tool] = ()) -> Negotiated:
        """After a handshake at ``version``, with the backend's listed tools (their ``x-mcp-header`` maps)."""
        if version not in MODERN_PROTOCOL_VERSIONS:
            return cls(version)
        envelope = {
            PROTOCOL_VERSION_META_KEY: version,
            CLIENT_INFO_META_KEY: CLIENT_INFO.model_dump(by_alias=True, mode="json", exclude_none=True),
            CLIENT_CAPABILITIES_META_KEY: CAPABILITIES.model_dump(by_alias=True, mode="json", exclude_none=True),
        }
        maps = {tool.name: x_mcp_header_map(tool.input_schema) for tool in tools}
        return cls(version, envelope, {name: found for name, found in maps.items() if found})

    @property
    def modern(self) -> bool:
        return bool(self.envelope)

    def stamp(self, method: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """``params`` with the envelope in their ``_meta`` (over the caller's own keys, as the SDK does), and the
        request's headers."""
        if not self.envelope:
            return params, {MCP_PROTOCOL_VERSION_HEADER: self.version}
        params = {**params, "_meta": {**(params.get("_meta") or {}), **self.envelope}}
        headers = {MCP_PROTOCOL_VERSION_HEADER: self.version, MCP_METHOD_HEADER: method}
        name_key = NAME_BEARING_METHODS.get(method)
        if name_key is not None and isinstance(name := params.get(name_key), str):
            headers[MCP_NAME_HEADER] = encode_header_value(name)
            if method == "tools/call" and (found := self.param_maps.get(name)):
                headers.update(mcp_param_headers(found, params.get("arguments") or {}))
        return params, headers

    def checked(self, method: str, result: dict[str, Any]) -> dict[str, Any]:
        """``result`` as the SDK session takes it: a negative ``ttlMs`` floored, validated against the version's
        schema (``pydantic.ValidationError`` if it fails), fields of later revisions dropped.

        The schema is the one ``mcp_types.methods.validate_server_result`` checks, without the dump it makes too.
        """
        ttl = result.get("ttlMs")
        if isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl < 0:
            result["ttlMs"] = 0
        schema = _schema(method, self.version)
        if schema is not None:  # a method the version's tables do not name passes, as in the SDK
            schema.validate_python(result, by_name=False)
        foreign = _later_fields(method, self.version)
        if foreign.isdisjoint(result):
            return result
        return {key: value for key, value in result.items() if key not in foreign}


@cache
def _schema(method: str, version: str) -> TypeAdapter[Any] | None:
    """The result schema of ``method`` at ``version``."""
    surface = methods.SERVER_RESULTS.get((method, version))
    return None if surface is None else TypeAdapter(cast(Any, surface))


@cache
def _later_fields(method: str, version: str) -> frozenset[str]:
    """Result keys that a revision newer than ``version`` declares for ``method`` and ``version`` does not."""
    current = methods.SERVER_RESULTS.get((method, version))
    if current is None or version not in KNOWN_PROTOCOL_VERSIONS:
        return frozenset()
    later: set[str] = set()
    for revision in KNOWN_PROTOCOL_VERSIONS[KNOWN_PROTOCOL_VERSIONS.index(version) + 1 :]:
        if (row := methods.SERVER_RESULTS.get((method, revision))) is not None:
            later |= _fields(row)
    return frozenset(later - _fields(current))


def _fields(target: Any) -> set[str]:
    """The wire keys a result type declares (its members', for a union)."""
    members = getattr(target, "__args__", (target,))
    return {f.alias or name for m in members if hasattr(m, "model_fields") for name, f in m.model_fields.items()}
