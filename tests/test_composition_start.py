"""``mcp-gateway serve`` refusing a composition config it cannot serve: exit status 2 and one message naming the
place, no traceback. What the file alone shows is refused when it is loaded; what needs the backends' listings
(an unknown tool, a field a tool's output schema lacks, a fixed value a tool's schema refuses) once the three
real sample backends have listed their tools."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.procs import Processes, free_port, listening, run_python, wait_until
from tests.support.stack import BACKENDS, Stack

pytestmark = pytest.mark.processes
HEADER = "mcp-gateway: invalid configuration"
EMPLOYEE = {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}
PERSON = {"type": "object", "properties": {"name": {"type": "string"}}}


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    """The three sample backends, once for the module, as a config's ``backends``."""
    procs = Processes()
    try:
        stack = Stack(tmp_path_factory.mktemp("backends"), procs)
        for name in BACKENDS:
            stack.start_backend(name)
        for port in stack.ports.values():
            wait_until(lambda port=port: listening(port), what=f"a sample backend on port {port}")
        yield [{"name": name, "prefix": prefix, "url": stack.backend_url(name)} for name, prefix in BACKENDS.items()]
    finally:
        procs.stop_all()


def composite(steps: dict[str, Any], result: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": "person",
        "input_schema": EMPLOYEE,
        "output_schema": PERSON,
        "steps": steps,
        "result": result or {"name": {"$ref": "steps.who.name"}},
    }


WHO = {"tool": "hr/get_employee", "arguments": {"employee_id": {"$ref": "input.id"}}}
DESK = {"tools": ["ops/*", "hr/get_employee"]}
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "a cycle between steps": (
        {
            "composites": [
                composite(
                    {
                        "who": {"tool": "hr/get_employee", "arguments": {"employee_id": {"$ref": "steps.boss.id"}}},
                        "boss": {"tool": "hr/get_employee", "arguments": {"employee_id": {"$ref": "steps.who.id"}}},
                    }
                )
            ]
        },
        "composites[0]: person: steps: the steps boss -> who -> boss form a cycle",
    ),
    "a step's unknown tool": (
        {"composites": [composite({"who": WHO, "cost": {"tool": "fin/nope", "arguments": {}}})]},
        "composites.person.steps.cost: unknown tool 'fin/nope'",
    ),
    "a field the step tool's output schema does not have": (
        {"composites": [composite({"who": WHO}, {"name": {"$ref": "steps.who.nickname"}})]},
        "composites.person.result.name: 'steps.who.nickname': the tool's outputSchema has no field 'nickname'",
    ),
    "a fixed value the tool's schema refuses": (
        {"servers": {"desk": {**DESK, "overrides": {"ops/list_tickets": {"fixed": {"status": "shut"}}}}}},
        "servers.desk.overrides.ops/list_tickets.fixed.status: 'shut' does not fit the argument's schema: "
        "$.status: 'shut' is not one of ['open', 'in_progress', 'closed']",
    ),
    "an override of an unknown tool": (
        {"servers": {"desk": {**DESK, "overrides": {"ops/nope": {"title": "Nope"}}}}},
        "servers.desk.overrides.ops/nope: unknown tool 'ops/nope'",
    ),
    "a composite a server selects whose step's tool it does not show": (
        {
            "composites": [composite({"who": WHO})],
            "servers": {"desk": {"tools": ["ops/*"], "composites": ["person"]}},
        },
        "servers.desk.composites.person.steps.who: the server does not show 'hr/get_employee', so the step cannot "
        "call it",
    ),
}


@pytest.mark.parametrize(("config", "place"), list(CASES.values()), ids=list(CASES))
def test_serve_refuses_the_config_with_status_2_and_one_message_naming_the_place(
    backends: list[dict[str, Any]], config: dict[str, Any], place: str, tmp_path: Path
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"backends": backends, **config}))
    args = ["serve", "--config", str(path), "--port", str(free_port()), "--log-level", "warning"]
    done = run_python("-m", "gateway", *args)
    assert done.returncode == 2, done.stderr
    source = f"{path}: " if place.startswith("composites[") else ""
    assert done.stderr.splitlines() == [HEADER, f"{source}{place}"]
