"""A virtual server's view: what it selects, how it shows a tool it overrides, how a call to it is resolved and
completed, who may use it, and what its overrides say against the tools the backends list."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import types

from backends.finance.server import build_server as finance
from backends.hr.server import build_server as hr
from backends.ops.server import build_server as ops
from gateway.composition.views import View, check_server_composites, check_servers, views
from gateway.config import GatewayConfig
from gateway.errors import InvalidArguments
from gateway.principal import Principal
from gateway.rpc_errors import to_mcp_error
from gateway.settings import default_backends, default_composites, load_config

STATUS = {"type": "string", "enum": ["open", "in_progress", "closed"]}
LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": {"TicketStatus": STATUS},
    "properties": {
        "status": {"$ref": "#/$defs/TicketStatus"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
    "required": ["status"],
}
UPDATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ticket_id": {"type": "integer"}, "status": STATUS},
    "required": ["ticket_id", "status"],
}
READ = types.ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=True)


def tool(name: str, schema: dict[str, Any] | None = None, **fields: Any) -> types.Tool:
    return types.Tool(name=name, input_schema=schema or {"type": "object", "properties": {}}, **fields)


TOOLS = {
    "ops/list_tickets": tool("ops/list_tickets", LIST_SCHEMA, title="List tickets", annotations=READ),
    "ops/update_ticket_status": tool("ops/update_ticket_status", UPDATE_SCHEMA),
    "ops/search": tool("ops/search"),
    "people/get_employee": tool("people/get_employee"),
    "people/approve_leave": tool("people/approve_leave"),
    "fin/list_expenses": tool("fin/list_expenses"),
}
BACKENDS = [
    {"name": "ops", "url": "http://127.0.0.1:8001/mcp"},
    {"name": "hr", "prefix": "people", "url": "http://127.0.0.1:8002/mcp"},
    {"name": "finance", "prefix": "fin", "url": "http://127.0.0.1:8003/mcp"},
]
ONCALL = {
    "backends": ["hr"],
    "tools": ["ops/list_*", "ops/search"],
    "prompts": ["ops/incident_*"],
    "resources": ["ops/ops://tickets/*", "fin+finance://departments"],
    "exclude": ["people/approve_*", "*://tickets/secret*", "ops+ops://tickets/8"],
    "composites": ["incident_*"],
    "overrides": {
        "ops/list_tickets": {
            "name": "open_tickets",
            "description": "Tickets still open.",
            "annotations": {"readOnlyHint": False, "idempotentHint": True},
            "fixed": {"status": "open"},
        },
        "ops/search": {"title": "Find in ops"},
    },
}


def gateway_config(**servers: dict[str, Any]) -> GatewayConfig:
    return GatewayConfig.model_validate({"backends": BACKENDS, "servers": servers})


def oncall(**changes: Any) -> View:
    return views(gateway_config(oncall={**ONCALL, **changes}))["oncall"]


@pytest.mark.parametrize(
    ("kind", "name", "selected"),
    [
        ("tools", "people/get_employee", True),  # its backend is included whole, under the backend's prefix
        ("tools", "hr/get_employee", False),  # the backend's name is not its prefix
        ("tools", "people/approve_leave", False),  # excluded
        ("tools", "ops/search", True),  # a pattern
        ("tools", "ops/update_ticket_status", False),
        ("tools", "fin/list_expenses", False),
        ("prompts", "ops/incident_report", True),
        ("prompts", "people/onboarding_checklist", True),
        ("prompts", "ops/search", False),
        ("resources", "ops+ops://tickets/7", True),  # as <prefix>/<backend URI>
        ("resources", "ops+ops://tickets/secret-1", False),  # excluded
        ("resources", "ops+ops://tickets/8", False),  # excluded by its exposed URI, included as ops/ops://…
        ("resources", "fin+finance://departments", True),  # by exposed URI
        ("resources", "fin+finance://budgets/Q1", False),
        ("resources", "people+hr://policies", True),
        ("templates", "ops+ops://tickets/{ticket_id}", True),
        ("templates", "people+hr://employees/{employee_id}", True),
        ("templates", "fin+finance://budgets/{quarter}", False),
        ("composites", "incident_full_report", True),
        ("composites", "people/whatever", False),  # backends hold no composites
    ],
)
def test_an_item_is_selected_by_its_backend_or_a_pattern_unless_excluded(kind: Any, name: str, selected: bool) -> None:
    assert oncall().select(kind, name) is selected


def test_a_renamed_tool_is_in_the_view_under_its_new_name_alone() -> None:
    view = oncall()
    assert view.select("tools", "ops/list_tickets") is False
    assert view.target("open_tickets") == ("ops/list_tickets", {"status": "open"})
    assert view.target("ops/list_tickets") is None
    assert view.target("ops__search") is None


def test_the_list_holds_the_selected_tools_shown_as_overridden_and_sorted_by_the_name_shown() -> None:
    listed = oncall().tools(list(TOOLS.items()))
    assert [t.name for t in listed] == ["open_tickets", "ops/search", "people/get_employee"]
    assert listed[1].title == "Find in ops"
    assert listed[2] is TOOLS["people/get_employee"]


def test_in_the_strict_style_names_stay_as_given_unless_the_view_renames_them() -> None:
    strict = [(c, t.model_copy(update={"name": c.replace("/", "__")})) for c, t in TOOLS.items()]
    assert [t.name for t in oncall().tools(strict)] == ["open_tickets", "ops__search", "people__get_employee"]


def test_a_fixed_argument_leaves_the_exposed_schema_and_its_required_list() -> None:
    shown = oncall().show_tool(TOOLS["ops/list_tickets"], "ops/list_tickets")
    assert shown.name == "open_tickets"
    assert shown.description == "Tickets still open."
    assert shown.title == "List tickets"
    assert set(shown.input_schema["properties"]) == {"limit"}
    assert "required" not in shown.input_schema
    assert shown.input_schema["$defs"] == {"TicketStatus": STATUS}
    assert TOOLS["ops/list_tickets"].input_schema == LIST_SCHEMA  # the catalogue's tool is untouched
    assert LIST_SCHEMA["required"] == ["status"]


def test_a_required_argument_that_is_not_fixed_stays_required() -> None:
    view = oncall(tools=["ops/*"], overrides={"ops/update_ticket_status": {"fixed": {"status": "closed"}}})
    shown = view.show_tool(TOOLS["ops/update_ticket_status"], "ops/update_ticket_status")
    assert shown.input_schema["required"] == ["ticket_id"]
    assert set(shown.input_schema["properties"]) == {"ticket_id"}
    assert shown.name == "ops/update_ticket_status"


def test_annotations_given_replace_the_tools_own_and_the_others_stay() -> None:
    shown = oncall().show_tool(TOOLS["ops/list_tickets"], "ops/list_tickets")
    assert shown.annotations == types.ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
    )
    bare = oncall().show_tool(tool("ops/list_tickets", LIST_SCHEMA), "ops/list_tickets")
    assert bare.annotations == types.ToolAnnotations(read_only_hint=False, idempotent_hint=True)


def test_a_tool_is_copied_once_per_listing_of_it() -> None:
    view, listed = oncall(), TOOLS["ops/list_tickets"]
    first = view.show_tool(listed, "ops/list_tickets")
    assert view.show_tool(listed, "ops/list_tickets") is first
    relisted = listed.model_copy(update={"description": "new"})
    assert view.show_tool(relisted, "ops/list_tickets") is not first
    assert view.show_tool(TOOLS["ops/search"], "ops/search").title == "Find in ops"


def test_fixed_arguments_are_merged_into_every_call() -> None:
    view = oncall()
    assert view.arguments("ops/list_tickets", {"limit": 5}) == {"limit": 5, "status": "open"}
    assert view.arguments("ops/list_tickets", None) == {"status": "open"}
    given = {"query": "disk"}
    assert view.arguments("ops/search", given) is given
    assert view.arguments("people/get_employee", None) is None


def test_a_caller_that_passes_a_fixed_argument_is_refused_as_invalid_arguments() -> None:
    with pytest.raises(InvalidArguments) as excinfo:
        oncall().arguments("ops/list_tickets", {"status": "closed"})
    assert excinfo.value.tool == "open_tickets"
    assert excinfo.value.path == "$.status"
    assert to_mcp_error(excinfo.value).error.code == types.INVALID_PARAMS


def test_prompts_resources_and_templates_are_filtered_by_selection() -> None:
    view = oncall()
    prompts = [
        ("people/onboarding_checklist", types.Prompt(name="people/onboarding_checklist")),
        ("ops/incident_report", types.Prompt(name="ops/incident_report")),
        ("fin/budget_review", types.Prompt(name="fin/budget_review")),
    ]
    assert [p.name for p in view.prompts(prompts)] == ["ops/incident_report", "people/onboarding_checklist"]
    resources = [
        types.Resource(name="s", uri="fin+finance://budgets/Q1"),
        types.Resource(name="d", uri="fin+finance://departments"),
        types.Resource(name="t", uri="ops+ops://tickets/7"),
    ]
    assert [str(r.uri) for r in view.resources(resources)] == ["fin+finance://departments", "ops+ops://tickets/7"]
    templates = [
        types.ResourceTemplate(name="b", uri_template="fin+finance://budgets/{quarter}"),
        types.ResourceTemplate(name="t", uri_template="ops+ops://tickets/{ticket_id}"),
    ]
    assert [t.uri_template for t in view.templates(templates)] == ["ops+ops://tickets/{ticket_id}"]


ALICE_KEY = Principal("alice", method="api_key")
ALICE_JWT = Principal("alice", method="jwt", issuer="https://idp.example")


@pytest.mark.parametrize(
    ("access", "principal", "admitted"),
    [
        ({}, Principal("anyone"), True),
        ({"principals": ["alice"]}, ALICE_KEY, True),
        ({"principals": ["alice"]}, ALICE_JWT, False),  # an IdP's subject is not the configured principal
        ({"subjects": ["alice"]}, ALICE_JWT, True),
        ({"subjects": ["alice"]}, ALICE_KEY, False),
        ({"roles": ["oncall"]}, Principal("bob", roles=frozenset({"oncall", "ops"})), True),
        ({"roles": ["oncall"]}, Principal("bob", roles=frozenset({"ops"})), False),
        ({"scopes": ["ops:read"]}, Principal("bob", scopes=frozenset({"ops:read"})), True),
        ({"principals": ["carol"], "scopes": ["ops:read"]}, Principal("bob"), False),
    ],
)
def test_any_match_of_the_access_rule_admits_and_none_given_admits_everyone(
    access: dict[str, Any], principal: Principal, admitted: bool
) -> None:
    assert oncall(access=access).admits(principal) is admitted


def test_a_backend_unknown_to_the_view_selects_nothing() -> None:
    config = gateway_config(oncall={"backends": ["hr"]})
    view = View(config.servers["oncall"], config.backends[:1])
    assert view.select("tools", "people/get_employee") is False


def test_servers_that_fit_the_listed_tools_have_no_problems() -> None:
    assert check_servers(gateway_config(oncall=ONCALL), TOOLS) == []


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        (
            {"ops/nope": {"title": "x"}},
            "servers.oncall.overrides.ops/nope: unknown tool 'ops/nope'",
        ),
        (
            {"ops/search": {"fixed": {"limit": 3}}},
            "servers.oncall.overrides.ops/search.fixed.limit: the tool 'ops/search' has no argument 'limit'",
        ),
        (
            {"ops/list_tickets": {"fixed": {"status": "lost"}}},
            "servers.oncall.overrides.ops/list_tickets.fixed.status: 'lost' does not fit the argument's schema: "
            "$.status: 'lost' is not one of ['open', 'in_progress', 'closed']",
        ),
        (
            {"ops/list_tickets": {"fixed": {"limit": 1000}}},
            "servers.oncall.overrides.ops/list_tickets.fixed.limit: 1000 does not fit the argument's schema: "
            "$.limit: 1000 is greater than the maximum of 100",
        ),
        (
            {"ops/list_tickets": {"name": "ops__search"}},
            "servers.oncall.overrides.ops/list_tickets.name: 'ops__search' is already the name of another tool "
            "of the server",
        ),
        (
            {"ops/list_tickets": {"name": "people__get_employee"}},
            "servers.oncall.overrides.ops/list_tickets.name: 'people__get_employee' is already the name of another "
            "tool of the server",
        ),
    ],
)
def test_what_an_override_says_against_the_listed_tools_is_checked(override: dict[str, Any], problem: str) -> None:
    config = gateway_config(oncall={"backends": ["ops", "hr"], "overrides": override})
    assert check_servers(config, TOOLS) == [problem]


def test_a_new_name_may_be_one_a_tool_outside_the_view_or_the_tool_itself_has() -> None:
    config = gateway_config(
        oncall={
            "tools": ["ops/*"],
            "overrides": {"ops/search": {"name": "ops__search"}, "ops/list_tickets": {"name": "fin__list_expenses"}},
        }
    )
    assert check_servers(config, TOOLS) == []


def test_a_fixed_value_that_fits_a_schema_by_reference_is_taken() -> None:
    config = gateway_config(
        oncall={"tools": ["ops/*"], "overrides": {"ops/list_tickets": {"fixed": {"status": "closed"}}}}
    )
    assert check_servers(config, TOOLS) == []


async def sample_tools(tmp_path: Path) -> dict[str, types.Tool]:
    servers = {"ops": ops(tmp_path / "ops.db"), "hr": hr(tmp_path / "hr.db"), "fin": finance(tmp_path / "fin.db")}
    listed = [(f"{prefix}/{t.name}", t) for prefix, server in servers.items() for t in await server.list_tools()]
    return {canonical: t.model_copy(update={"name": canonical}) for canonical, t in listed}


def documented_server() -> GatewayConfig:
    """The worked example of docs/composition.md, on the sample backends."""
    text = (Path(__file__).parents[1] / "docs" / "composition.md").read_text(encoding="utf-8")
    section = text.split("## Virtual servers", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert example is not None
    data = {**yaml.safe_load(example.group(1)), "backends": [b.model_dump() for b in default_backends()]}
    return GatewayConfig.model_validate(data)


@pytest.mark.anyio
async def test_the_documented_example_fits_the_sample_backends_and_shows_what_the_docs_say(tmp_path: Path) -> None:
    config, tools = documented_server(), await sample_tools(tmp_path)
    assert check_servers(config, tools) == []
    view = views(config)["oncall"]
    listed = {t.name: t for t in view.tools(sorted(tools.items()))}
    assert list(listed) == [
        "approved_leave",
        "fin/calculate_budget",
        "hr/get_employee",
        "ops/list_tickets",
        "ops/lookup_inventory",
        "ops/search",
    ]
    assert set(listed["approved_leave"].input_schema["properties"]) == {"employee_id"}
    assert view.target("approved_leave") == ("hr/list_leave_requests", {"status": "approved"})
    assert view.select("composites", "incident_full_report")
    assert view.select("templates", "ops+ops://tickets/{ticket_id}")
    assert not view.select("resources", "fin+finance://departments")


def test_the_documented_example_is_the_demos_oncall_server() -> None:
    assert documented_server().servers["oncall"] == load_config(None, environ={}).servers["oncall"]


def with_composites(**server: Any) -> GatewayConfig:
    backends = [b.model_dump() for b in default_backends()]
    return GatewayConfig.model_validate(
        {"backends": backends, "composites": default_composites(), "servers": {"desk": server}}
    )


DESK = {"tools": ["ops/list_tickets", "hr/get_employee", "fin/calculate_budget"], "composites": ["incident_*"]}
STEPS = "servers.desk.composites.incident_full_report.steps"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("server", "problems"),
    [
        (DESK, []),
        ({**DESK, "composites": []}, []),
        (
            {**DESK, "tools": ["ops/list_tickets", "hr/get_employee"]},
            [f"{STEPS}.budget: the server does not show 'fin/calculate_budget', so the step cannot call it"],
        ),
        (
            {**DESK, "overrides": {"ops/list_tickets": {"name": "open_tickets"}}},
            [f"{STEPS}.incidents: the server does not show 'ops/list_tickets', so the step cannot call it"],
        ),
        (
            {**DESK, "exclude": ["hr/*"]},
            [
                f"{STEPS}.on_call: the server does not show 'hr/get_employee', so the step cannot call it",
                f"{STEPS}.manager: the server does not show 'hr/get_employee', so the step cannot call it",
            ],
        ),
        (
            {**DESK, "overrides": {"ops/list_tickets": {"fixed": {"status": "open", "limit": 5}}}},
            [
                f"{STEPS}.incidents.arguments.limit: the server fixes it, so the step may not pass it",
                f"{STEPS}.incidents.arguments.status: the server fixes it, so the step may not pass it",
            ],
        ),
    ],
)
async def test_a_composite_a_server_selects_calls_only_what_the_server_shows_as_it_shows_it(
    server: dict[str, Any], problems: list[str], tmp_path: Path
) -> None:
    assert check_server_composites(with_composites(**server), await sample_tools(tmp_path)) == problems
