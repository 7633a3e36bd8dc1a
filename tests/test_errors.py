"""Gateway errors, and their one translation to JSON-RPC errors."""

from __future__ import annotations

import pytest
from mcp import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, REQUEST_TIMEOUT

from gateway.errors import (
    BACKEND_UNAVAILABLE,
    RATE_LIMITED,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    GatewayError,
    HeadTooLarge,
    RequestTimeout,
    TooManyConnections,
    UnknownTarget,
    to_mcp_error,
)


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
