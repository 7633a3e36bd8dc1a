"""Configured secrets are cut from log records (tracebacks included), status documents and errors; values under
secret-looking key names from recorded arguments."""

from __future__ import annotations

import logging

import pytest

from gateway.config import GatewayConfig
from gateway.security.redaction import MASK, Redactor, SecretNames

TOKEN = "s3cr3t-token-value"


def test_every_configured_secret_is_collected_short_values_aside() -> None:
    config = GatewayConfig.model_validate(
        {
            "backends": [
                {"name": "ops", "url": "http://ops/mcp", "headers": {"Authorization": f"Bearer {TOKEN}"}},
                {"name": "fs", "transport": "stdio", "command": "x", "env": {"KEY": "k-0123456789", "LEVEL": "info"}},
            ],
            "security": {
                "auth": {
                    "api_keys": [{"principal": "a", "key": "a" * 16}],
                    "jwt": {"issuer": "https://i", "audience": "g", "algorithms": ["HS256"], "secret": "j" * 32},
                },
                "limits": {"store": "redis://:pw-123456@127.0.0.1:6379/0"},
            },
        }
    )
    found = set(config.secret_values())
    assert {f"Bearer {TOKEN}", TOKEN, "k-0123456789", "a" * 16, "j" * 32} <= found
    assert "redis://:pw-123456@127.0.0.1:6379/0" in found
    assert "info" not in found


def test_text_and_structures_are_redacted() -> None:
    redactor = Redactor([TOKEN])
    assert redactor.text(f"failed with {TOKEN}!") == f"failed with {MASK}!"
    assert redactor.value({"a": [f"x{TOKEN}"], "n": 1}) == {"a": [f"x{MASK}"], "n": 1}


def test_log_records_are_redacted_where_they_are_made(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("gateway.test")
    with Redactor([TOKEN]).logging(), caplog.at_level(logging.INFO):
        logger.info("header was %s", f"Bearer {TOKEN}")
        try:
            raise RuntimeError(f"backend said {TOKEN}")
        except RuntimeError:
            logger.exception("call failed")
    text = caplog.text
    assert f"header was Bearer {MASK}" in text and f"backend said {MASK}" in text
    assert TOKEN not in text


@pytest.mark.parametrize(
    "name",
    [
        "db_password",
        "newPassword",
        "client_secret",
        "x-api-key",
        "accessToken",
        "private_key",
        "API Key",
        "Authorization",
        "auth",
        "basicAuth",
        "refresh_token",
        "id.token",
        "session_id",
        "Set-Cookie",
        "credentials",
        "signature",
        "passphrase",
        "pwd",
        "pass",
    ],
)
def test_secret_looking_key_names_are_caught_whatever_their_case_and_separators(name: str) -> None:
    assert name in SecretNames()
    assert SecretNames().redact({"outer": [{name: "hunter2", "n": 1}]}) == {"outer": [{name: MASK, "n": 1}]}


@pytest.mark.parametrize(
    "name",
    [
        "author",
        "authority",
        "co-author",
        "tokens_used",
        "max_tokens",
        "tokenizer",
        "secretary",
        "keyboard",
        "passenger",
        "bypass",
        "sort_key",
        "session_timeout",
        "is_authenticated",
        "text",
    ],
)
def test_ordinary_key_names_that_contain_a_secret_word_are_kept(name: str) -> None:
    assert name not in SecretNames()


def test_configured_names_are_matched_after_the_same_normalisation() -> None:
    names = SecretNames(["employee_ssn"])
    assert "Employee-SSN" in names and "employee_ssn_hint" not in names
