"""Virtual servers' configuration: what a file may say about them, and every mistake refused with its place named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway.catalogue.naming import STRICT_NAME
from gateway.config import GatewayConfig
from gateway.config.servers import OVERRIDE_NAME
from gateway.errors import ConfigError
from gateway.settings import load_config

BACKENDS = """\
backends:
  - name: ops
    url: http://127.0.0.1:8001/mcp
  - name: hr
    prefix: people
    url: http://127.0.0.1:8002/mcp
  - name: bare
    prefix: ""
    url: http://127.0.0.1:8004/mcp
"""


def load(tmp_path: Path, servers: str) -> GatewayConfig:
    path = tmp_path / "gateway.yaml"
    path.write_text(BACKENDS + "servers:\n" + textwrap.indent(textwrap.dedent(servers), "  "), encoding="utf-8")
    return load_config(path, environ={})


def refusal(tmp_path: Path, servers: str) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load(tmp_path, servers)
    return str(excinfo.value)


def test_a_server_with_every_documented_field_loads(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        oncall:
          description: On-call desk
          instructions: Read before you act.
          backends: [hr]
          tools: ["ops/list_tickets", "ops/search"]
          prompts: ["ops/*"]
          resources: ["ops+ops://tickets/*"]
          exclude: ["people/approve_*"]
          composites: ["incident_*"]
          overrides:
            ops/list_tickets:
              name: open_tickets
              title: Open tickets
              description: Tickets still open.
              annotations: {readOnlyHint: true, openWorldHint: false}
              fixed: {status: open}
          access: {principals: [alice], subjects: [sub-1], roles: [oncall], scopes: ["ops:read"]}
        """,
    )
    server = config.servers["oncall"]
    assert server.backends == ("hr",)
    assert server.exclude == ("people/approve_*",)
    override = server.overrides["ops/list_tickets"]
    assert override.name == "open_tickets"
    assert override.fixed == {"status": "open"}
    assert override.annotations is not None
    assert override.annotations.read_only_hint is True
    assert override.annotations.model_dump(exclude_unset=True) == {"read_only_hint": True, "open_world_hint": False}
    assert server.access.roles == ("oncall",)


def test_without_servers_the_config_has_none() -> None:
    assert GatewayConfig().servers == {}


def test_an_override_name_is_held_to_the_strict_name_rule_of_the_catalogue() -> None:
    assert OVERRIDE_NAME.pattern == STRICT_NAME.pattern


@pytest.mark.parametrize("name", ["Oncall", "on call", "-oncall", "a" * 64, "on/call", ""])
def test_a_server_name_that_does_not_fit_a_url_path_is_refused(tmp_path: Path, name: str) -> None:
    message = refusal(tmp_path, f'"{name}":\n  backends: [ops]\n')
    assert "servers:" in message
    assert f"{name!r} is not a server name" in message


def test_names_that_fit_a_url_path_are_taken(tmp_path: Path) -> None:
    config = load(tmp_path, "on-call_2:\n  backends: [ops]\n" + f"{'a' * 63}:\n  backends: [ops]\n")
    assert set(config.servers) == {"on-call_2", "a" * 63}


@pytest.mark.parametrize(
    ("servers", "place", "problem"),
    [
        ("oncall: {description: nothing}", "servers.oncall", "a server selects something"),
        ("oncall: {backends: [ops], colour: red}", "servers.oncall.colour", "Extra inputs are not permitted"),
        ("oncall: {tools: ['']}", "servers.oncall.tools", "an empty name or pattern matches nothing"),
        (
            "oncall: {backends: [ops], overrides: {ops/search: {name: ops/find}}}",
            "servers.oncall.overrides.ops/search.name",
            "'ops/find' is not a tool name every client accepts",
        ),
        (
            "oncall: {backends: [ops], overrides: {ops/search: {name: " + "x" * 65 + "}}}",
            "servers.oncall.overrides.ops/search.name",
            "is not a tool name every client accepts",
        ),
        (
            "oncall: {backends: [ops], overrides: {ops/search: {annotations: {readonly: true}}}}",
            "servers.oncall.overrides.ops/search.annotations.readonly",
            "Extra inputs are not permitted",
        ),
        (
            "oncall: {backends: [ops], overrides: {ops/search: {fixed: {'': 1}}}}",
            "servers.oncall.overrides.ops/search.fixed",
            "a fixed argument has a name",
        ),
        (
            "oncall: {backends: [ops], overrides: {ops/search: {name: find}, ops/list_tickets: {name: find}}}",
            "servers.oncall",
            "'ops/search' and 'ops/list_tickets' are both renamed to 'find'",
        ),
        ("oncall: {backends: [ops], access: {roles: ['']}}", "servers.oncall.access.roles", "a name is never empty"),
        ("oncall: {backends: [ops, finance]}", "servers", "oncall.backends: unknown backend 'finance'"),
        ("oncall: {backends: [bare]}", "servers", "oncall.backends: backend 'bare' has an empty prefix"),
        (
            "oncall: {tools: ['ops/list_*'], overrides: {ops/search: {title: Find}}}",
            "servers",
            "oncall.overrides.ops/search: the server does not select this tool",
        ),
        (
            "oncall: {backends: [ops], exclude: [ops/search], overrides: {ops/search: {title: Find}}}",
            "servers",
            "oncall.overrides.ops/search: the server does not select this tool",
        ),
        (
            "oncall: {backends: [hr], overrides: {hr/search: {title: Find}}}",
            "servers",
            "oncall.overrides.hr/search: the server does not select this tool",
        ),
    ],
)
def test_a_mistake_is_refused_naming_its_place(tmp_path: Path, servers: str, place: str, problem: str) -> None:
    message = refusal(tmp_path, servers + "\n")
    assert f"gateway.yaml: {place}: " in message
    assert problem in message


def test_an_override_of_a_tool_selected_by_its_backend_or_a_pattern_is_taken(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        by-backend: {backends: [hr], overrides: {people/search: {title: Find}}}
        by-pattern: {tools: ["ops/*"], overrides: {ops/search: {title: Find}}}
        """,
    )
    assert set(config.servers) == {"by-backend", "by-pattern"}


def test_a_backend_removed_while_a_server_names_it_is_refused_as_the_file_would_be(tmp_path: Path) -> None:
    config = load(tmp_path, "oncall: {backends: [hr]}\n")
    data = config.model_dump()
    data["backends"] = [b for b in data["backends"] if b["name"] != "hr"]
    with pytest.raises(ValueError, match="unknown backend 'hr'"):
        GatewayConfig.model_validate(data)
