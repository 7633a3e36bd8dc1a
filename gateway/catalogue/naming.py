"""Exposed names, both directions.

A backend item gets one *canonical* name, ``<prefix>/<name>`` (``ops/search``), and one *strict* rendering that
matches ``^[a-zA-Z0-9_-]{1,64}$``, the pattern Claude, claude.ai and the OpenAI and Anthropic APIs enforce
(``ops__search``; invalid characters become ``_``; names past the length budget are cut and end in a hash of the
canonical name). Every client gets the strict rendering unless its ``clientInfo.name`` is one of the few that show
names to a person (curl, the MCP Inspector): most clients, whatever they call themselves (the SDK's default ``mcp``
included), hand the names to a model API, which refuses ``/``, and the spec's tool-name characters leave it out too.
Going back from a name to its backend is the catalog's lookup table, never a split on the separator, so every client
may call either rendering.

Resource URIs get the backend prefix in front of their scheme: ``ops://tickets/7`` is exposed as
``ops+ops://tickets/7`` (templates alike). ``+`` is a valid scheme character and never part of a prefix, so
the first ``+`` of the scheme separates the prefix from the backend's own URI.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum

from gateway.config import NamingConfig

STRICT_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_INVALID = re.compile(r"[^A-Za-z0-9_-]")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
HASH_LENGTH = 8


class Style(StrEnum):
    CANONICAL = "canonical"
    STRICT = "strict"


def canonical_name(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def strict_name(prefix: str, name: str, naming: NamingConfig, *, force_hash: bool = False) -> str:
    """A rendering every strict client accepts; deterministic, shortened with a hash when too long."""
    joined = f"{prefix}{naming.separator}{name}" if prefix else name
    clean = _INVALID.sub("_", joined) or "_"
    if len(clean) <= naming.max_length and not force_hash:
        return clean
    digest = hashlib.sha256(canonical_name(prefix, name).encode()).hexdigest()[:HASH_LENGTH]
    return f"{clean[: naming.max_length - HASH_LENGTH - 1]}_{digest}"


def style_for_client(client_name: str | None, naming: NamingConfig) -> Style:
    """The rendering a client gets: forced by config, else canonical only for a client named exactly as one of
    ``canonical_clients`` (any case). An unknown client gets names every model API accepts: a near miss costs a
    person a ``__`` instead of a ``/``, where the other mistake costs an agent every tool."""
    if naming.style != "auto":
        return Style(naming.style)
    lowered = (client_name or "").lower()
    if any(lowered == known.lower() for known in naming.canonical_clients):
        return Style.CANONICAL
    return Style.STRICT


def expose_uri(prefix: str, uri: str) -> str:
    """``ops://x`` -> ``ops+ops://x``; a backend without prefix keeps its URIs."""
    return f"{prefix}+{uri}" if prefix else uri


def split_uri(uri: str) -> tuple[str, str] | None:
    """``ops+ops://x`` -> ``("ops", "ops://x")``; ``None`` when the URI carries no gateway prefix."""
    scheme, colon, _ = uri.partition(":")
    if not colon or "+" not in scheme or not _SCHEME.match(scheme):
        return None
    prefix, _, rest = uri.partition("+")
    return (prefix, rest) if prefix and rest else None
