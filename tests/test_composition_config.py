"""Composite tools in the config: what loads, what is refused at load with its place named, and what the backends'
listings show wrong (``check_composites``)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from mcp import types
from pydantic import ValidationError

from backends.finance.server import build_server as finance_server
from backends.hr.server import build_server as hr_server
from backends.ops.server import build_server as ops_server
from gateway.config import GatewayConfig
from gateway.config.composites import CompositeConfig, check_composites, find_cycle
from gateway.errors import ConfigError
from gateway.settings import default_composites, load_config


def composite(**changes: Any) -> dict[str, Any]:
    """A small valid composite, with ``changes`` on top."""
    base: dict[str, Any] = {
        "name": "report",
        "input_schema": {"type": "object", "properties": {"who": {"type": "string"}}},
        "steps": {
            "person": {"tool": "hr/get_employee", "arguments": {"employee_id": {"$ref": "input.who"}}},
            "budget": {
                "tool": "fin/calculate_budget",
                "arguments": {"department": {"$ref": "steps.person.department"}, "quarter": "2026-Q2"},
            },
        },
        "result": {"budget": {"$ref": "steps.budget"}},
    }
    return {**base, **changes}


def refused(*composites: dict[str, Any]) -> str:
    """The one message a config file with these composites is refused with."""
    with pytest.raises(ValidationError) as excinfo:
        GatewayConfig.model_validate({"composites": list(composites)})
    errors = excinfo.value.errors()
    assert len(errors) == 1
    return str(errors[0]["msg"]).removeprefix("Value error, ")


def with_step(step: str, config: dict[str, Any]) -> dict[str, Any]:
    steps = copy.deepcopy(composite()["steps"])
    steps[step] = config
    return composite(steps=steps)


# -- accepted ------------------------------------------------------------------------------------------------------


def test_a_composite_loads_with_its_steps_and_the_dependencies_its_references_make() -> None:
    config = GatewayConfig.model_validate({"composites": [composite()]})

    (loaded,) = config.composites
    assert loaded.dependencies() == {"person": set(), "budget": {"person"}}
    assert loaded.steps["budget"].arguments["quarter"] == "2026-Q2"


def test_a_composite_from_a_yaml_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"composites": [composite()]}))

    assert [c.name for c in load_config(path, environ={}).composites] == ["report"]


def test_the_default_configuration_ships_incident_full_report_and_writes_it_back_unchanged() -> None:
    config = load_config(None, environ={})

    assert [c.name for c in config.composites] == ["incident_full_report"]
    dumped = yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True))
    assert GatewayConfig.model_validate(yaml.safe_load(dumped)) == config


def test_a_reference_to_the_whole_input_or_into_a_list_is_accepted() -> None:
    result = {"all": {"$ref": "input"}, "first": {"$ref": "steps.person.balances.0.kind"}, "fixed": [1, "two"]}

    assert CompositeConfig.model_validate(composite(result=result)).result["fixed"] == [1, "two"]


# -- refused at load -----------------------------------------------------------------------------------------------


def test_a_reference_to_an_unknown_step_is_refused_naming_the_place(tmp_path: Path) -> None:
    broken = composite(name="incident_full_report")
    broken["steps"]["budget"]["arguments"]["department"] = {"$ref": "steps.oncal.department"}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"composites": [broken]}))

    with pytest.raises(ConfigError) as excinfo:
        load_config(path, environ={})

    assert str(excinfo.value) == (
        f"{path}: composites[0]: incident_full_report: steps.budget.arguments.department: unknown step 'oncal'"
    )


def test_a_cycle_between_steps_is_refused_naming_the_cycle() -> None:
    steps = {
        "a": {"tool": "t/a", "arguments": {"x": {"$ref": "steps.b.y"}}},
        "b": {"tool": "t/b", "arguments": {"y": {"$ref": "steps.c.z"}}},
        "c": {"tool": "t/c", "arguments": {"z": {"$ref": "steps.a.x"}}},
    }

    message = refused(composite(steps=steps, result={"out": {"$ref": "steps.a"}}))

    assert message == "report: steps: the steps a -> b -> c -> a form a cycle"


def test_a_step_that_refers_to_itself_is_a_cycle() -> None:
    message = refused(with_step("loop", {"tool": "t/a", "arguments": {"x": {"$ref": "steps.loop.x"}}}))

    assert message == "report: steps: the steps loop -> loop form a cycle"


def test_a_reference_to_an_input_field_the_schema_does_not_declare_is_refused() -> None:
    message = refused(with_step("extra", {"tool": "t/a", "arguments": {"x": {"$ref": "input.whom"}}}))

    assert message == "report: steps.extra.arguments.x: input field 'whom' is not in input_schema.properties"


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("budget.remaining", "reference 'budget.remaining' starts with neither 'input' nor 'steps.<step>'"),
        ("steps", "reference 'steps' starts with neither 'input' nor 'steps.<step>'"),
        ("steps..x", "reference 'steps..x' has an empty name in it"),
        (7, "a reference is a string such as 'input.x' or 'steps.a.x', got 7"),
    ],
)
def test_a_malformed_reference_is_refused(ref: object, problem: str) -> None:
    message = refused(composite(result={"out": {"nested": [{"$ref": ref}]}}))

    assert message == f"report: result.out.nested[0]: {problem}"


def test_a_reference_with_other_keys_beside_ref_is_refused() -> None:
    message = refused(composite(result={"out": {"$ref": "input.who", "default": "x"}}))

    assert message == "report: a reference has the one key '$ref', not also ['default']"


def test_a_result_that_refers_to_nothing_is_refused() -> None:
    assert refused(composite(result={"status": "done"})) == (
        "report: result: refers to no input and no step; a composite's result is built from them"
    )


def test_composite_names_are_unique() -> None:
    message = refused(composite(), composite(), composite(name="other"))

    assert message == "composite names must be unique; repeated: report"


@pytest.mark.parametrize("name", ["ops/report", "a report", "x" * 65, ""])
def test_a_composite_name_reads_the_same_in_both_name_styles(name: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        GatewayConfig.model_validate({"composites": [composite(name=name)]})

    assert excinfo.value.errors()[0]["loc"] == ("composites", 0, "name")


def test_a_step_id_with_a_dot_is_refused() -> None:
    message = refused(with_step("a.b", {"tool": "t/a"}))

    assert message == "report: steps.a.b: a step id has 1 to 64 letters, digits, '_' or '-'"


def test_an_input_schema_that_is_not_json_schema_is_refused() -> None:
    schema = {"type": "object", "properties": {"who": {"type": "strng"}}}

    message = refused(composite(input_schema=schema))

    assert message.startswith("report: input_schema.properties.who.type: not a valid JSON Schema: ")


def test_schemas_describe_objects() -> None:
    assert refused(composite(input_schema={"type": "string"})) == (
        'report: input_schema: a tool\'s schema must say "type": "object"'
    )
    assert refused(composite(output_schema={"type": "array"})) == (
        'report: output_schema: a tool\'s schema must say "type": "object"'
    )


def test_an_output_schema_that_is_not_json_schema_is_refused() -> None:
    message = refused(composite(output_schema={"type": "object", "required": "budget"}))

    assert message.startswith("report: output_schema.required: not a valid JSON Schema: ")


def test_a_result_missing_a_field_the_output_schema_requires_is_refused() -> None:
    schema = {"type": "object", "properties": {"budget": {}, "owner": {}}, "required": ["budget", "owner"]}

    assert refused(composite(output_schema=schema)) == (
        "report: result: output_schema requires 'owner', which the result does not set"
    )


def test_a_result_field_a_closed_output_schema_does_not_allow_is_refused() -> None:
    schema = {"type": "object", "properties": {"total": {}}, "additionalProperties": False}

    assert refused(composite(output_schema=schema)) == (
        "report: result.budget: not in output_schema.properties, which allows no others"
    )


def test_a_composite_without_steps_is_refused() -> None:
    with pytest.raises(ValidationError) as excinfo:
        GatewayConfig.model_validate({"composites": [composite(steps={})]})

    assert excinfo.value.errors()[0]["loc"] == ("composites", 0, "steps")


def test_find_cycle_finds_none_in_a_graph_without_one() -> None:
    assert find_cycle({"a": set(), "b": {"a"}, "c": {"a", "b"}}) == []


# -- against the backends' listings --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_tools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, types.Tool]:
    """The sample backends' tools under their canonical names, as the demo exposes them."""
    folder = tmp_path_factory.mktemp("samples")
    servers = {
        "ops": ops_server(folder / "ops.db"),
        "hr": hr_server(folder / "hr.db"),
        "fin": finance_server(folder / "f.db"),
    }

    async def listings() -> dict[str, types.Tool]:
        return {
            f"{prefix}/{tool.name}": tool for prefix, server in servers.items() for tool in await server.list_tools()
        }

    return anyio.run(listings)


def checked(sample_tools: dict[str, types.Tool], data: dict[str, Any]) -> list[str]:
    return check_composites((CompositeConfig.model_validate(data),), sample_tools)


def test_the_shipped_example_matches_the_sample_backends(sample_tools: dict[str, types.Tool]) -> None:
    (example,) = default_composites()

    assert checked(sample_tools, example) == []


def test_a_step_naming_an_unknown_tool_is_named(sample_tools: dict[str, types.Tool]) -> None:
    data = with_step("cost", {"tool": "fin/nope"})

    assert checked(sample_tools, data) == ["composites.report.steps.cost: unknown tool 'fin/nope'"]


def test_an_argument_the_tool_does_not_take_and_a_required_one_missing_are_named(
    sample_tools: dict[str, types.Tool],
) -> None:
    data = with_step("person", {"tool": "hr/get_employee", "arguments": {"employee": {"$ref": "input.who"}}})

    assert checked(sample_tools, data) == [
        "composites.report.steps.person.arguments.employee: not an argument of 'get_employee'",
        "composites.report.steps.person.arguments: 'get_employee' requires 'employee_id'",
    ]


def test_a_reference_to_a_field_the_step_tools_output_schema_lacks_is_named(
    sample_tools: dict[str, types.Tool],
) -> None:
    data = with_step("tickets", {"tool": "ops/list_tickets"})
    data["result"] = {
        "dept": {"$ref": "steps.person.departement"},
        "first": {"$ref": "steps.tickets.tickets.0.titel"},
        "fine": {"$ref": "steps.tickets.tickets.0.title"},
    }

    assert checked(sample_tools, data) == [
        "composites.report.result.dept: 'steps.person.departement': the tool's outputSchema has no field 'departement'",
        "composites.report.result.first: 'steps.tickets.tickets.0.titel': the tool's outputSchema has no field 'titel'",
    ]


def test_read_only_holds_only_when_every_step_tool_is_read_only(sample_tools: dict[str, types.Tool]) -> None:
    data = with_step(
        "ticket",
        {"tool": "ops/create_ticket", "arguments": {"title": "abc", "description": "d", "priority": "low"}},
    )

    assert checked(sample_tools, {**data, "read_only": True}) == [
        "composites.report.steps.ticket: read_only, but 'ops/create_ticket' is not read-only"
    ]
    assert checked(sample_tools, data) == []


def test_a_composite_named_like_a_backends_tool_is_named(sample_tools: dict[str, types.Tool]) -> None:
    tools = {**sample_tools, "hr__search": sample_tools["hr/search"]}

    assert check_composites((CompositeConfig.model_validate(composite(name="hr__search")),), tools) == [
        "composites.hr__search: the name is also a backend's tool"
    ]


def test_the_example_in_the_docs_is_the_one_the_default_configuration_ships() -> None:
    text = (Path(__file__).parents[1] / "docs" / "composition.md").read_text()
    section = text[text.index("## Composite tools\n") :]
    example = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)[0]

    documented = GatewayConfig.model_validate(yaml.safe_load(example)).composites
    assert documented == load_config(None, environ={}).composites
