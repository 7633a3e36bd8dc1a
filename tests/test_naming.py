"""Exposed names: canonical and strict renderings, the style each client gets, and prefixed resource URIs."""

from __future__ import annotations

import re

import pytest

from gateway.catalogue.naming import Style, canonical_name, expose_uri, split_uri, strict_name, style_for_client
from gateway.config import NamingConfig

STRICT = re.compile(r"[a-zA-Z0-9_-]{1,64}")
NAMING = NamingConfig()

AWKWARD_NAMES = [
    "search",
    "tickets.list",
    "files/read",
    "send email",
    "naïve-café",
    "检索",
    "emoji_🚀_tool",
    "tab\there",
    "new\nline",
    "",
    "x" * 200,
    "a.b/c d:e@f",
]


# -- canonical names -----------------------------------------------------------------------------------------------


def test_a_canonical_name_is_prefix_slash_name() -> None:
    assert canonical_name("ops", "search") == "ops/search"
    assert canonical_name("fin", "ledger.read") == "fin/ledger.read"


def test_an_empty_prefix_leaves_the_canonical_name_as_the_backend_named_it() -> None:
    assert canonical_name("", "search") == "search"
    assert canonical_name("", "weird name/with.slash") == "weird name/with.slash"


# -- strict names --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["ops", "", "a-very-long-prefix-of-32-chars-xx"])
@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_a_strict_name_always_matches_the_strict_client_pattern(prefix: str, name: str) -> None:
    rendered = strict_name(prefix, name, NAMING)

    assert STRICT.fullmatch(rendered), rendered


def test_a_valid_name_is_rendered_as_prefix_separator_name() -> None:
    assert strict_name("ops", "search", NAMING) == "ops__search"
    assert strict_name("hr", "list-employees_v2", NAMING) == "hr__list-employees_v2"


def test_invalid_characters_become_underscores() -> None:
    assert strict_name("ops", "tickets.list", NAMING) == "ops__tickets_list"
    assert strict_name("ops", "send email", NAMING) == "ops__send_email"
    assert strict_name("ops", "café", NAMING) == "ops__caf_"


def test_an_empty_prefix_gives_the_name_alone() -> None:
    assert strict_name("", "search", NAMING) == "search"
    assert strict_name("", "a.b", NAMING) == "a_b"


def test_the_configured_separator_joins_prefix_and_name() -> None:
    assert strict_name("ops", "search", NamingConfig(separator="-")) == "ops-search"
    assert strict_name("ops", "search", NamingConfig(separator="_x_")) == "ops_x_search"


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_strict_names_are_deterministic(name: str) -> None:
    assert strict_name("ops", name, NAMING) == strict_name("ops", name, NamingConfig())


def test_a_name_past_max_length_is_cut_to_max_length_and_ends_in_a_hash() -> None:
    naming = NamingConfig(max_length=32)
    long_name = "summarise_every_ticket_in_the_queue"

    rendered = strict_name("ops", long_name, naming)

    assert len(rendered) == 32
    assert rendered.startswith("ops__summarise_every_")
    assert re.fullmatch(r".*_[0-9a-f]{8}", rendered)


def test_a_name_exactly_at_max_length_is_not_shortened() -> None:
    name = "n" * (64 - len("ops__"))

    assert strict_name("ops", name, NAMING) == f"ops__{name}"


def test_different_long_names_with_a_common_beginning_get_different_strict_names() -> None:
    common = "report_" * 20
    names = [f"{common}{suffix}" for suffix in ("alpha", "beta", "gamma", "a.b", "a_b")]

    rendered = [strict_name("ops", name, NAMING) for name in names]

    assert len(set(rendered)) == len(names)
    assert all(STRICT.fullmatch(r) for r in rendered)


def test_the_same_long_name_under_different_prefixes_gets_different_strict_names() -> None:
    name = "z" * 100

    assert strict_name("ops", name, NAMING) != strict_name("hr", name, NAMING)


def test_forcing_the_hash_gives_a_valid_name_distinct_from_the_plain_rendering() -> None:
    plain = strict_name("ops", "a.b", NAMING)
    hashed_dot = strict_name("ops", "a.b", NAMING, force_hash=True)
    hashed_underscore = strict_name("ops", "a_b", NAMING, force_hash=True)

    assert plain == "ops__a_b"
    assert hashed_dot != plain
    assert hashed_dot != hashed_underscore
    assert STRICT.fullmatch(hashed_dot)
    assert STRICT.fullmatch(hashed_underscore)


# -- which style a client gets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "style"),
    [
        ("mcp", Style.STRICT),  # the Python SDK's default: openai-agents, langchain-mcp-adapters and most others
        ("openai-agents", Style.STRICT),
        ("langchain-mcp-adapters", Style.STRICT),
        ("claude-ai", Style.STRICT),  # Claude Desktop and claude.ai
        ("claude-code", Style.STRICT),
        ("cursor-vscode", Style.STRICT),
        ("", Style.STRICT),
        (None, Style.STRICT),  # a 2026 request without clientInfo, as curl sends it
        ("curl", Style.CANONICAL),
        ("mcp-inspector", Style.CANONICAL),
        ("MCP-Inspector", Style.CANONICAL),
        ("curl-but-an-agent", Style.STRICT),
    ],
)
def test_auto_style_gives_canonical_names_only_to_clients_named_as_showing_them_to_a_person(
    client: str | None, style: Style
) -> None:
    assert style_for_client(client, NAMING) is style


@pytest.mark.parametrize("client", ["claude-ai", "mcp-inspector", None])
def test_a_forced_style_applies_to_every_client(client: str | None) -> None:
    assert style_for_client(client, NamingConfig(style="canonical")) is Style.CANONICAL
    assert style_for_client(client, NamingConfig(style="strict")) is Style.STRICT


def test_the_canonical_client_list_is_configurable() -> None:
    naming = NamingConfig(canonical_clients=("my-console",))

    assert style_for_client("My-Console", naming) is Style.CANONICAL
    assert style_for_client("curl", naming) is Style.STRICT


# -- resource URIs -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "uri", "exposed"),
    [
        ("ops", "ops://tickets/7", "ops+ops://tickets/7"),
        ("hr", "hr://employees/{employee_id}", "hr+hr://employees/{employee_id}"),
        ("fin", "finance://reports/q1?format=csv#top", "fin+finance://reports/q1?format=csv#top"),
        ("ops", "git+https://x", "ops+git+https://x"),
        ("my-files", "file:///srv/a+b.txt", "my-files+file:///srv/a+b.txt"),
    ],
)
def test_an_exposed_uri_splits_back_into_prefix_and_the_backend_uri(prefix: str, uri: str, exposed: str) -> None:
    assert expose_uri(prefix, uri) == exposed
    assert split_uri(exposed) == (prefix, uri)


def test_an_empty_prefix_leaves_uris_unchanged() -> None:
    assert expose_uri("", "ops://tickets/7") == "ops://tickets/7"
    assert expose_uri("", "hr://employees/{employee_id}") == "hr://employees/{employee_id}"


@pytest.mark.parametrize(
    "uri",
    [
        "ops://tickets/7",
        "file:///srv/a+b.txt",
        "https://example.com/?q=a+b",
        "no-scheme-at-all",
        "a+b",
        "+ops://x",
        "1ops+x://y",
        "ops x+y://z",
    ],
)
def test_a_uri_without_a_gateway_prefix_does_not_split(uri: str) -> None:
    assert split_uri(uri) is None
