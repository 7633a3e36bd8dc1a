"""Configuration: the YAML and ``mcpServers`` file formats, substitution, defaults, and one clear error per problem."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.config import PREFIX_PATTERN, BackendConfig, GatewayConfig, Transport
from gateway.errors import ConfigError
from gateway.settings import Settings, default_backends, load_config

WriteFile = Callable[..., Path]


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    def write(text: str, name: str = "gateway.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def config_error(path: Path, text: str | None = None, **kwargs: Any) -> str:
    """Load ``path`` (after writing ``text`` to it) and return the ConfigError message it must raise."""
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path, environ={}, **kwargs)
    return str(excinfo.value)


FULL_YAML = """\
backends:
  - name: ops
    prefix: ops
    transport: streamable_http
    url: http://127.0.0.1:8001/mcp
    headers:
      Authorization: Bearer abc
    connect_timeout: 5
    call_timeout: 30
  - name: hr
    transport: sse
    url: https://hr.example.com/sse
  - name: files
    prefix: fs
    transport: stdio
    command: python
    args: ["-m", "files_server", "--root", "/srv"]
    env:
      LOG_LEVEL: debug
    cwd: /srv
naming:
  style: strict
  separator: "-"
  max_length: 48
start_timeout: 12
"""


# -- the YAML format -----------------------------------------------------------------------------------------------


def test_a_yaml_file_with_every_documented_field_loads_into_typed_backends(write: WriteFile) -> None:
    config = load_config(write(FULL_YAML), environ={})

    assert isinstance(config, GatewayConfig)
    ops, hr, files = config.backends
    assert ops == BackendConfig(
        name="ops",
        prefix="ops",
        transport=Transport.STREAMABLE_HTTP,
        url="http://127.0.0.1:8001/mcp",
        headers={"Authorization": "Bearer abc"},
        connect_timeout=5.0,
        call_timeout=30.0,
    )
    assert hr.transport is Transport.SSE
    assert hr.url == "https://hr.example.com/sse"
    assert files.transport is Transport.STDIO
    assert files.command == "python"
    assert files.args == ["-m", "files_server", "--root", "/srv"]
    assert files.env == {"LOG_LEVEL": "debug"}
    assert files.cwd == "/srv"
    assert files.url is None
    assert (config.naming.style, config.naming.separator, config.naming.max_length) == ("strict", "-", 48)
    assert config.start_timeout == 12.0


def test_a_backend_without_prefix_is_exposed_under_its_name(write: WriteFile) -> None:
    config = load_config(write("backends:\n  - name: hr\n    url: http://h/mcp\n"), environ={})

    assert config.backends[0].prefix is None
    assert config.backends[0].exposed_prefix == "hr"


def test_an_empty_prefix_exposes_the_backend_unprefixed(write: WriteFile) -> None:
    config = load_config(write("backends:\n  - name: hr\n    prefix: ''\n    url: http://h/mcp\n"), environ={})

    assert config.backends[0].exposed_prefix == ""


def test_omitted_fields_take_their_documented_defaults(write: WriteFile) -> None:
    config = load_config(write("backends:\n  - name: ops\n    url: http://o/mcp\n"), environ={})

    (ops,) = config.backends
    assert ops.transport is Transport.STREAMABLE_HTTP
    assert (ops.headers, ops.args, ops.env, ops.cwd, ops.command) == ({}, [], {}, None, None)
    assert (ops.connect_timeout, ops.call_timeout) == (10.0, 60.0)
    assert config.naming.style == "auto"
    assert config.naming.separator == "__"
    assert config.naming.max_length == 64
    limits = config.security.limits
    assert (limits.max_sessions_per_principal, limits.max_client_sessions) == (100, 10_000)


# -- ${VAR} substitution -------------------------------------------------------------------------------------------


def test_variables_are_substituted_in_every_string_of_the_file(write: WriteFile) -> None:
    path = write(
        """\
backends:
  - name: ${NAME}
    url: http://${HOST}:${PORT}/mcp
    headers:
      Authorization: Bearer ${TOKEN}
    connect_timeout: ${TIMEOUT}
  - name: tool
    transport: stdio
    command: ${PYTHON}
    args: ["--root", "${ROOT}"]
    env: {KEY: "${KEY}"}
naming:
  style: ${STYLE}
"""
    )
    environ = {
        "NAME": "ops",
        "HOST": "db.internal",
        "PORT": "9001",
        "TOKEN": "s3cret",
        "TIMEOUT": "2.5",
        "PYTHON": "/usr/bin/python3",
        "ROOT": "/data",
        "KEY": "k-123",
        "STYLE": "canonical",
    }

    config = load_config(path, environ=environ)

    ops, tool = config.backends
    assert ops.name == "ops"
    assert ops.url == "http://db.internal:9001/mcp"
    assert ops.headers == {"Authorization": "Bearer s3cret"}
    assert ops.connect_timeout == 2.5
    assert tool.command == "/usr/bin/python3"
    assert tool.args == ["--root", "/data"]
    assert tool.env == {"KEY": "k-123"}
    assert config.naming.style == "canonical"


def test_a_default_is_used_only_when_the_variable_is_unset(write: WriteFile) -> None:
    path = write(
        "backends:\n"
        "  - name: ops\n"
        "    url: http://${HOST:-localhost}:${PORT:-8001}/mcp\n"
        "    headers: {X-Empty: 'a${EMPTY:-}b'}\n"
    )

    defaulted = load_config(path, environ={})
    overridden = load_config(path, environ={"HOST": "example.org", "PORT": "9999", "EMPTY": "-"})

    assert defaulted.backends[0].url == "http://localhost:8001/mcp"
    assert defaulted.backends[0].headers == {"X-Empty": "ab"}
    assert overridden.backends[0].url == "http://example.org:9999/mcp"
    assert overridden.backends[0].headers == {"X-Empty": "a-b"}


def test_a_variable_set_to_the_empty_string_wins_over_its_default(write: WriteFile) -> None:
    path = write("backends:\n  - name: ops\n    url: http://o/mcp\n    headers: {X: 'v=${V:-fallback}'}\n")

    config = load_config(path, environ={"V": ""})

    assert config.backends[0].headers == {"X": "v="}


def test_substituted_values_are_taken_literally_not_parsed_or_expanded_again(write: WriteFile) -> None:
    path = write("backends:\n  - name: ops\n    url: http://o/mcp\n    headers: {Authorization: '${TOKEN}'}\n")

    config = load_config(path, environ={"TOKEN": "a: b # c ${OTHER}", "OTHER": "nope"})

    assert config.backends[0].headers == {"Authorization": "a: b # c ${OTHER}"}


def test_a_missing_variable_without_default_names_the_file_the_field_and_the_variable(write: WriteFile) -> None:
    path = write(
        "backends:\n"
        "  - name: ops\n"
        "    url: http://o/mcp\n"
        "  - name: hr\n"
        "    url: http://h/mcp\n"
        "    headers: {Authorization: 'Bearer ${HR_TOKEN}'}\n"
    )

    message = config_error(path)

    assert str(path) in message
    assert "backends[1].headers.Authorization" in message
    assert "HR_TOKEN" in message
    assert "not set" in message


def test_load_config_reads_the_process_environment_when_no_environ_is_given(
    write: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_TEST_BACKEND_URL", "https://from-env.example/mcp")
    path = write("backends:\n  - name: ops\n    url: ${GATEWAY_TEST_BACKEND_URL}\n")

    config = load_config(path)

    assert config.backends[0].url == "https://from-env.example/mcp"


# -- the mcpServers format of Claude Desktop and Cursor ------------------------------------------------------------


CLAUDE_DESKTOP = {
    "mcpServers": {
        "filesystem": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"],
            "env": {"DEBUG": "1"},
        },
        "events": {"type": "sse", "url": "https://events.example.com/sse"},
        "api": {"type": "http", "url": "https://api.example.com/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}},
        "plain": {"url": "https://plain.example.com/mcp"},
    }
}


def test_mcp_servers_json_becomes_one_backend_per_key_with_the_key_as_name_and_prefix(write: WriteFile) -> None:
    path = write(json.dumps(CLAUDE_DESKTOP, indent=2), "claude_desktop_config.json")

    config = load_config(path, environ={"TOKEN": "t0k"})

    by_name = {b.name: b for b in config.backends}
    assert list(by_name) == ["filesystem", "events", "api", "plain"]
    assert {b.name: b.exposed_prefix for b in config.backends} == {
        "filesystem": "filesystem",
        "events": "events",
        "api": "api",
        "plain": "plain",
    }
    fs = by_name["filesystem"]
    assert fs.transport is Transport.STDIO
    assert fs.command == "npx"
    assert fs.args == ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"]
    assert fs.env == {"DEBUG": "1"}
    assert by_name["events"].transport is Transport.SSE
    assert by_name["events"].url == "https://events.example.com/sse"
    assert by_name["api"].transport is Transport.STREAMABLE_HTTP
    assert by_name["api"].headers == {"Authorization": "Bearer t0k"}
    assert by_name["plain"].transport is Transport.STREAMABLE_HTTP


def test_an_mcp_servers_key_with_underscores_gets_a_prefix_with_dashes(write: WriteFile) -> None:
    path = write(json.dumps({"mcpServers": {"my_files": {"command": "files"}}}), "mcp.json")

    (backend,) = load_config(path, environ={}).backends

    assert backend.name == "my_files"
    assert backend.prefix == "my-files"
    assert re.fullmatch(PREFIX_PATTERN, backend.exposed_prefix)


def test_an_mcp_servers_key_starting_with_a_digit_gets_a_prefix_starting_with_a_letter(write: WriteFile) -> None:
    path = write(json.dumps({"mcpServers": {"1password": {"command": "op"}}}), "mcp.json")

    (backend,) = load_config(path, environ={}).backends

    assert re.fullmatch(PREFIX_PATTERN, backend.exposed_prefix)
    assert "1password" in backend.exposed_prefix


def test_an_explicit_prefix_in_an_mcp_servers_entry_is_kept(write: WriteFile) -> None:
    path = write(json.dumps({"mcpServers": {"my_files": {"command": "files", "prefix": "f"}}}), "mcp.json")

    (backend,) = load_config(path, environ={}).backends

    assert backend.exposed_prefix == "f"


def test_disabled_mcp_servers_entries_are_left_out(write: WriteFile) -> None:
    servers = {"mcpServers": {"on": {"command": "a"}, "off": {"command": "b", "disabled": True}}}
    path = write(json.dumps(servers), "mcp.json")

    config = load_config(path, environ={})

    assert [b.name for b in config.backends] == ["on"]


def test_mcp_servers_that_is_not_a_mapping_is_rejected_with_the_file_and_field(write: WriteFile) -> None:
    path = write(json.dumps({"mcpServers": ["a", "b"]}), "mcp.json")

    message = config_error(path)

    assert str(path) in message
    assert "mcpServers" in message
    assert "mapping" in message


def test_an_mcp_servers_entry_that_is_not_a_mapping_is_rejected_with_its_key(write: WriteFile) -> None:
    path = write(json.dumps({"mcpServers": {"broken": "npx thing"}}), "mcp.json")

    message = config_error(path)

    assert str(path) in message
    assert "mcpServers.broken" in message
    assert "mapping" in message


def test_an_invalid_mcp_servers_entry_is_reported_under_its_own_key_in_the_file(write: WriteFile) -> None:
    servers = {"mcpServers": {"good": {"command": "ok"}, "web": {"url": "ftp://files.example.com"}}}
    path = write(json.dumps(servers), "mcp.json")

    message = config_error(path)

    assert str(path) in message
    assert "mcpServers.web" in message, f"the field path must be one the file has; got: {message}"
    assert "http" in message


def test_a_tab_indented_mcp_servers_json_file_loads(write: WriteFile) -> None:
    path = write(json.dumps({"mcpServers": {"files": {"command": "files"}}}, indent="\t"), "mcp.json")

    config = load_config(path, environ={})

    assert [b.name for b in config.backends] == ["files"]


# -- no file: the sample backends ----------------------------------------------------------------------------------


def test_without_a_file_the_gateway_fronts_the_three_sample_backends() -> None:
    config = load_config(None, environ={})

    assert [(b.name, b.exposed_prefix, b.url) for b in config.backends] == [
        ("ops", "ops", "http://127.0.0.1:8001/mcp"),
        ("hr", "hr", "http://127.0.0.1:8002/mcp"),
        ("finance", "fin", "http://127.0.0.1:8003/mcp"),
    ]
    assert all(b.transport is Transport.STREAMABLE_HTTP for b in config.backends)


def test_the_sample_backends_follow_the_given_host_and_ports() -> None:
    config = load_config(None, environ={}, host="10.0.0.5", ports=(9101, 9102, 9103))

    assert [b.url for b in config.backends] == [
        "http://10.0.0.5:9101/mcp",
        "http://10.0.0.5:9102/mcp",
        "http://10.0.0.5:9103/mcp",
    ]
    assert default_backends("10.0.0.5", (9101, 9102, 9103)) == list(config.backends)


# -- the style override --------------------------------------------------------------------------------------------


def test_the_style_argument_overrides_the_file_and_keeps_its_other_naming_settings(write: WriteFile) -> None:
    path = write(FULL_YAML)

    config = load_config(path, environ={}, style="canonical")

    assert config.naming.style == "canonical"
    assert config.naming.separator == "-"
    assert config.naming.max_length == 48


def test_the_style_argument_applies_to_the_sample_backends_too() -> None:
    assert load_config(None, environ={}, style="strict").naming.style == "strict"


def test_the_style_argument_applies_when_the_file_has_no_naming_section(write: WriteFile) -> None:
    path = write("backends:\n  - name: ops\n    url: http://o/mcp\n")

    assert load_config(path, environ={}, style="strict").naming.style == "strict"


def test_an_unknown_style_is_rejected_naming_the_field(write: WriteFile) -> None:
    path = write("backends:\n  - name: ops\n    url: http://o/mcp\n")

    message = config_error(path, style="fancy")

    assert str(path) in message
    assert "naming.style" in message


@pytest.mark.parametrize("spelling", ["streamable_http", "streamable-http"])
def test_both_spellings_of_streamable_http_load_as_the_one_transport(write: WriteFile, spelling: str) -> None:
    yaml_file = write(f"backends:\n  - name: ops\n    transport: {spelling}\n    url: http://o/mcp\n")
    servers = write(json.dumps({"mcpServers": {"ops": {"type": spelling, "url": "http://o/mcp"}}}), "servers.json")

    for path in (yaml_file, servers):
        backend = load_config(path).backends[0]
        assert backend.transport is Transport.STREAMABLE_HTTP
        assert backend.model_dump(mode="json")["transport"] == "streamable_http"


# -- invalid shapes: one ConfigError naming the file, the field and the problem ------------------------------------


def test_an_http_backend_without_url_is_rejected(write: WriteFile) -> None:
    path = write("backends:\n  - name: ops\n    url: http://o/mcp\n  - name: hr\n")

    message = config_error(path)

    assert str(path) in message
    assert "backends[1]" in message
    assert "needs 'url'" in message


def test_an_sse_backend_without_url_is_rejected(write: WriteFile) -> None:
    message = config_error(write("backends:\n  - name: hr\n    transport: sse\n"))

    assert "backends[0]" in message
    assert "sse backend needs 'url'" in message


def test_a_stdio_backend_without_command_is_rejected(write: WriteFile) -> None:
    path = write("backends:\n  - name: files\n    transport: stdio\n    args: [x]\n")

    message = config_error(path)

    assert str(path) in message
    assert "backends[0]" in message
    assert "needs 'command'" in message


def test_a_stdio_backend_with_a_url_is_rejected(write: WriteFile) -> None:
    path = write("backends:\n  - name: files\n    transport: stdio\n    command: x\n    url: http://x/mcp\n")

    message = config_error(path)

    assert "backends[0]" in message
    assert "not 'url'" in message


def test_an_http_backend_with_a_command_is_rejected(write: WriteFile) -> None:
    message = config_error(write("backends:\n  - name: ops\n    url: http://o/mcp\n    command: x\n"))

    assert "backends[0]" in message
    assert "not 'command'" in message


@pytest.mark.parametrize("url", ["ftp://o/mcp", "ws://o/mcp", "o.example.com/mcp", "file:///tmp/sock"])
def test_a_url_with_a_non_http_scheme_is_rejected(write: WriteFile, url: str) -> None:
    path = write(f"backends:\n  - name: ops\n    url: '{url}'\n")

    message = config_error(path)

    assert str(path) in message
    assert "backends[0]" in message
    assert "http://" in message
    assert url in message


def test_an_unknown_backend_field_is_rejected_by_its_path(write: WriteFile) -> None:
    path = write(
        "backends:\n  - name: ops\n    url: http://o/mcp\n  - name: hr\n    url: http://h/mcp\n    tiemout: 3\n"
    )

    message = config_error(path)

    assert str(path) in message
    assert "backends[1].tiemout" in message
    assert "not permitted" in message


def test_an_unknown_top_level_field_is_rejected_by_its_name(write: WriteFile) -> None:
    path = write("backend:\n  - name: ops\n    url: http://o/mcp\n")

    message = config_error(path)

    assert f"{path}: backend:" in message
    assert "not permitted" in message


def test_duplicate_backend_names_are_rejected(write: WriteFile) -> None:
    path = write(
        "backends:\n  - name: ops\n    prefix: a\n    url: http://a/mcp\n  - name: ops\n    prefix: b\n    url: http://b/mcp\n"
    )

    message = config_error(path)

    assert str(path) in message
    assert "backends" in message
    assert "names must be unique" in message
    assert "ops" in message


def test_duplicate_prefixes_are_rejected_including_a_name_used_as_prefix(write: WriteFile) -> None:
    path = write(
        "backends:\n  - name: ops\n    url: http://a/mcp\n  - name: other\n    prefix: ops\n    url: http://b/mcp\n"
    )

    message = config_error(path)

    assert str(path) in message
    assert "backends" in message
    assert "prefix" in message
    assert "must be unique" in message
    assert "ops" in message


def test_several_backends_may_share_the_empty_prefix(write: WriteFile) -> None:
    path = write(
        "backends:\n  - name: a\n    prefix: ''\n    url: http://a/mcp\n  - name: b\n    prefix: ''\n    url: http://b/mcp\n"
    )

    assert [b.exposed_prefix for b in load_config(path, environ={}).backends] == ["", ""]


@pytest.mark.parametrize("prefix", ["my_files", "9ops", "ops.v2", "ops/x", "ops+x", "a" * 33, "-ops"])
def test_a_prefix_outside_uri_scheme_characters_is_rejected(write: WriteFile, prefix: str) -> None:
    path = write(f"backends:\n  - name: ops\n    prefix: '{prefix}'\n    url: http://o/mcp\n")

    message = config_error(path)

    assert str(path) in message
    assert "backends[0].prefix" in message
    assert "pattern" in message


@pytest.mark.parametrize("name", ["my_files", "9lives", "v1.2"])
def test_a_backend_name_used_as_its_prefix_must_itself_be_a_valid_prefix(write: WriteFile, name: str) -> None:
    # The name becomes the prefix of URI schemes (``<prefix>+file://...``); a prefix that is not a URI scheme
    # prefix makes the backend's resources unreadable. Either the config is rejected or a valid prefix is used.
    path = write(f"backends:\n  - name: '{name}'\n    url: http://o/mcp\n")

    try:
        config = load_config(path, environ={})
    except ConfigError as exc:
        assert str(path) in str(exc)
        assert "backends[0]" in str(exc)
    else:
        prefix = config.backends[0].exposed_prefix
        assert re.fullmatch(PREFIX_PATTERN, prefix), f"backend {name!r} is exposed under invalid prefix {prefix!r}"


@pytest.mark.parametrize("name", ["", "-ops", "ops/x", "a" * 65, "ops search"])
def test_an_invalid_backend_name_is_rejected(write: WriteFile, name: str) -> None:
    message = config_error(write(f"backends:\n  - name: '{name}'\n    prefix: p\n    url: http://o/mcp\n"))

    assert "backends[0].name" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("connect_timeout", "0"), ("connect_timeout", "601"), ("call_timeout", "-1"), ("call_timeout", "soon")],
)
def test_out_of_range_timeouts_are_rejected_by_their_path(write: WriteFile, field: str, value: str) -> None:
    message = config_error(write(f"backends:\n  - name: ops\n    url: http://o/mcp\n    {field}: {value}\n"))

    assert f"backends[0].{field}" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_header_bytes", "100"), ("max_headers", "0"), ("header_timeout", "0"), ("body_timeout", "-1"),
     ("max_connections_per_client", "-1"), ("keep_alive_timeout", "0")],
)  # fmt: skip
def test_http_server_limits_out_of_range_are_rejected_by_their_path(write: WriteFile, field: str, value: str) -> None:
    message = config_error(write(f"backends: []\nsecurity:\n  http:\n    {field}: {value}\n"))

    assert f"security.http.{field}" in message


def test_invalid_yaml_is_reported_with_its_line(write: WriteFile) -> None:
    path = write("backends:\n  - name: ops\n   url: http://o/mcp\n")

    message = config_error(path)

    assert str(path) in message
    assert "not valid YAML" in message
    assert "line 3" in message


def test_a_missing_file_is_reported_as_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"

    message = config_error(path)

    assert str(path) in message
    assert "cannot read" in message


def test_a_directory_is_reported_as_unreadable(tmp_path: Path) -> None:
    message = config_error(tmp_path)

    assert str(tmp_path) in message
    assert "cannot read" in message


@pytest.mark.parametrize("text", ["- name: ops\n  url: http://o/mcp\n", "just text\n", "42\n", ""])
def test_a_file_whose_top_level_is_not_a_mapping_is_rejected(write: WriteFile, text: str) -> None:
    path = write(text)

    message = config_error(path)

    assert str(path) in message
    assert "mapping" in message


def test_several_problems_come_back_as_one_error_listing_each(write: WriteFile) -> None:
    path = write("backends:\n  - name: ops\n  - name: hr\n    transport: stdio\n")

    message = config_error(path)

    lines = message.splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert "backends[0]" in lines[0]
    assert "backends[1]" in lines[1]


# -- Settings: the GATEWAY_* environment ---------------------------------------------------------------------------


@pytest.fixture
def clean_gateway_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ("CONFIG", "HOST", "PORT", "NAME_STYLE", "LOG_LEVEL"):
        monkeypatch.delenv(f"GATEWAY_{var}", raising=False)
    return monkeypatch


def test_settings_have_defaults_without_gateway_variables(clean_gateway_env: pytest.MonkeyPatch) -> None:
    settings = Settings()

    assert settings.config is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.name_style is None
    assert settings.log_level == "info"


def test_settings_read_the_gateway_environment_variables(clean_gateway_env: pytest.MonkeyPatch) -> None:
    clean_gateway_env.setenv("GATEWAY_CONFIG", "/etc/gateway/backends.yaml")
    clean_gateway_env.setenv("GATEWAY_HOST", "0.0.0.0")
    clean_gateway_env.setenv("GATEWAY_PORT", "9090")
    clean_gateway_env.setenv("GATEWAY_NAME_STYLE", "strict")
    clean_gateway_env.setenv("GATEWAY_LOG_LEVEL", "debug")

    settings = Settings()

    assert settings.config == Path("/etc/gateway/backends.yaml")
    assert settings.host == "0.0.0.0"
    assert settings.port == 9090
    assert settings.name_style == "strict"
    assert settings.log_level == "debug"


def test_settings_ignore_variables_without_the_gateway_prefix(clean_gateway_env: pytest.MonkeyPatch) -> None:
    clean_gateway_env.setenv("PORT", "1234")
    clean_gateway_env.setenv("HOST", "example.org")

    settings = Settings()

    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
