"""Gateway errors, and their one translation to JSON-RPC errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mcp import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, REQUEST_TIMEOUT

from gateway.errors import (
    BACKEND_UNAVAILABLE,
    RATE_LIMITED,
    AuditLogError,
    BackendError,
    BackendMisbehaved,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    Forbidden,
    GatewayError,
    HeadTooLarge,
    InvalidArguments,
    InvalidCursor,
    InvalidRequestState,
    InvalidToken,
    NeedsInput,
    OutcomeUnknown,
    PortUnavailable,
    RateLimited,
    RequestTimeout,
    ResultTooLarge,
    StartupError,
    StoreUnavailable,
    SubscriptionsUnsupported,
    ToolWithheld,
    TooManyConnections,
    Unauthorized,
    UnknownTarget,
)
from gateway.rpc_errors import to_mcp_error

ROOT = Path(__file__).resolve().parents[1]
# One of each error in the tree; a class missing here fails the first test below.
EXAMPLES: list[GatewayError] = [
    GatewayError("odd"),
    ConfigError("bad"),
    PortUnavailable("port 8000 on 127.0.0.1 is in use"),
    StartupError("ops"),
    AuditLogError("key"),
    StoreUnavailable("shared store unavailable: ConnectionError"),
    UnknownTarget("tool", "x"),
    Forbidden("tool", "x"),
    InvalidCursor("c"),
    InvalidRequestState(),
    InvalidArguments("ops/x", "$.a", "not a string"),
    Unauthorized("none"),
    InvalidToken("expired"),
    RateLimited("alice", 1.0),
    ResultTooLarge("ops", 2, 1),
    ToolWithheld("ops/x"),
    NeedsInput("ops/x"),
    HeadTooLarge("too many fields"),
    RequestTimeout("head", 10),
    TooManyConnections("10.0.0.7", 256),
    BackendError("ops", "odd"),
    BackendUnavailable("ops"),
    OutcomeUnknown("ops", "x"),
    BackendTimeout("ops", 1),
    SubscriptionsUnsupported("ops"),
    BackendMisbehaved("ops", "not MCP"),
]
# Reserved for "denied": listed in the tables, never answered (a denial is answered as unknown).
RESERVED = {-32031}


def test_an_unknown_target_becomes_invalid_params_naming_what_was_asked_for() -> None:
    error = to_mcp_error(UnknownTarget("tool", "ops/nope"))

    assert isinstance(error, MCPError)
    assert error.code == INVALID_PARAMS == -32602
    assert error.data == {"tool": "ops/nope"}
    assert "ops/nope" in error.message
    assert "tool" in error.message.lower()


def test_an_unknown_target_hint_is_part_of_the_message() -> None:
    error = to_mcp_error(UnknownTarget("resource", "x://y", hint="no backend owns scheme x"))

    assert error.data == {"resource": "x://y"}
    assert "no backend owns scheme x" in error.message


def test_an_unavailable_backend_becomes_code_minus_32050_naming_the_backend() -> None:
    error = to_mcp_error(BackendUnavailable("finance", "connection refused"))

    assert error.code == BACKEND_UNAVAILABLE == -32050
    assert error.data == {"backend": "finance"}
    assert "finance" in error.message
    assert "unavailable" in error.message
    assert "connection refused" in error.message


def test_an_unavailable_backend_without_reason_still_names_the_backend() -> None:
    error = to_mcp_error(BackendUnavailable("hr"))

    assert error.code == -32050
    assert error.data == {"backend": "hr"}
    assert "'hr'" in error.message


def test_a_backend_timeout_becomes_request_timeout_with_the_backend_and_deadline() -> None:
    exc = BackendTimeout("ops", 2.5)

    error = to_mcp_error(exc)

    assert error.code == REQUEST_TIMEOUT == -32001
    assert error.data == {"backend": "ops"}
    assert "ops" in error.message
    assert "2.5 s" in error.message
    assert exc.seconds == 2.5


def test_any_other_gateway_error_becomes_an_internal_error() -> None:
    error = to_mcp_error(GatewayError("something odd"))

    assert error.code == INTERNAL_ERROR
    assert error.message == "something odd"


def test_the_error_data_survives_the_wire_form() -> None:
    wire = to_mcp_error(BackendUnavailable("ops")).error

    assert wire.model_dump(exclude_none=True) == {
        "code": -32050,
        "message": "Backend 'ops' is unavailable",
        "data": {"backend": "ops"},
    }


@pytest.mark.parametrize(
    "exc",
    [ConfigError("bad"), UnknownTarget("tool", "x"), BackendUnavailable("a"), BackendTimeout("a", 1)],
)
def test_every_gateway_error_is_a_gateway_error(exc: Exception) -> None:
    assert isinstance(exc, GatewayError)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (HeadTooLarge("More than 100 request header fields"), INVALID_REQUEST),
        (RequestTimeout("body", 30), INVALID_REQUEST),
        (TooManyConnections("10.0.0.7", 256), RATE_LIMITED),
    ],
)
def test_the_http_servers_refusals_become_json_rpc_errors(exc: GatewayError, code: int) -> None:
    assert to_mcp_error(exc).code == code


def test_backend_errors_carry_the_backend_name() -> None:
    for exc in (BackendUnavailable("ops", "down"), BackendTimeout("ops", 3)):
        assert isinstance(exc, BackendError)
        assert exc.backend == "ops"


def subclasses(cls: type[GatewayError]) -> set[type[GatewayError]]:
    return {cls}.union(*(subclasses(sub) for sub in cls.__subclasses__()))


def table_codes(document: Path) -> set[int]:
    """The codes in the first column of a document's "## Errors" table."""
    text = document.read_text()
    start = text.index("## Errors\n")
    end = text.find("\n## ", start + 1)
    rows = re.findall(r"^\| ([^|]*) \|", text[start : end if end != -1 else None], flags=re.M)
    return {int(code) for row in rows for code in re.findall(r"`(-\d+)`", row)}


def test_the_examples_hold_one_of_every_error_in_the_tree() -> None:
    assert {type(exc) for exc in EXAMPLES} == subclasses(GatewayError)


@pytest.mark.parametrize("document", ["README.md", "docs/architecture.md"])
def test_the_error_tables_list_exactly_the_codes_the_tree_answers(document: str) -> None:
    answered = {to_mcp_error(exc).code for exc in EXAMPLES}

    assert table_codes(ROOT / document) == answered | RESERVED
