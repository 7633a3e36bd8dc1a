"""Composite tools as configured: a small graph of tool calls behind one tool of the gateway's own.

A value in a step's ``arguments`` or in ``result`` is a template: any JSON value, in which a mapping with the one
key ``$ref`` is replaced by what it refers to, type and all (a number stays a number, an object an object):

- ``{"$ref": "input"}``, ``{"$ref": "input.<field>[.<key>...]"}``: the composite's arguments, or one of them;
- ``{"$ref": "steps.<step>[.<key>...]"}``: what the step returned, or a field of it.

A key made of digits indexes a list. There is no interpolation inside strings: a reference is a whole value. A
step runs once every step it refers to has returned; steps that refer to no other step start at once, together.

What the file alone shows is checked when it is loaded (pydantic errors naming the place); what needs the
backends' listings (a step's tool, its argument names, the fields of its result) by ``check_composites``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from mcp import types

# The names of the gateway's own tools read the same in both name styles (``gateway.catalogue.naming``).
COMPOSITE_NAME = r"^[a-zA-Z0-9_-]{1,64}$"
REF = "$ref"
_STEP_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Reference:
    """Where a reference points: a step (``None`` for the composite's input) and the keys below it."""

    text: str
    step: str | None
    path: tuple[str, ...]


def parse_reference(text: object) -> Reference:
    """A reference's text as a ``Reference``; ``ValueError`` says what is wrong with it."""
    if not isinstance(text, str):
        raise ValueError(f"a reference is a string such as 'input.x' or 'steps.a.x', got {text!r}")
    parts = text.split(".")
    if any(not part for part in parts):
        raise ValueError(f"reference {text!r} has an empty name in it")
    if parts[0] == "input":
        return Reference(text, None, tuple(parts[1:]))
    if parts[0] == "steps" and len(parts) > 1:
        return Reference(text, parts[1], tuple(parts[2:]))
    raise ValueError(f"reference {text!r} starts with neither 'input' nor 'steps.<step>'")


def reference_in(value: object) -> object | None:
    """The text of the reference ``value`` is (a mapping whose keys include ``$ref``), else ``None``."""
    if isinstance(value, Mapping) and REF in value:
        if len(value) != 1:
            raise ValueError(f"a reference has the one key '{REF}', not also {sorted(k for k in value if k != REF)}")
        text: object = value[REF]
        return text
    return None


def references(template: object, where: str) -> Iterator[tuple[str, Reference]]:
    """Every reference in ``template`` with its place (``where`` and the keys down to it)."""
    text = reference_in(template)
    if text is not None:
        try:
            yield where, parse_reference(text)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    elif isinstance(template, Mapping):
        for key, value in template.items():
            yield from references(value, f"{where}.{key}")
    elif isinstance(template, list):
        for index, value in enumerate(template):
            yield from references(value, f"{where}[{index}]")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepConfig(_Model):
    """One tool call of a composite: the tool's exposed name (either style) and its arguments, as templates."""

    tool: str = Field(min_length=1, max_length=512)
    arguments: dict[str, Any] = Field(default_factory=dict)


class CompositeConfig(_Model):
    """A tool of the gateway's own that calls other tools, as a graph of steps, and assembles their results."""

    name: str = Field(pattern=COMPOSITE_NAME)
    title: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    output_schema: dict[str, Any] | None = None
    # Listed with readOnlyHint; ``check_composites`` holds it to every step's tool being read-only itself.
    read_only: bool = False
    steps: dict[str, StepConfig] = Field(min_length=1)
    result: dict[str, Any] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> CompositeConfig:
        try:
            _check_schema("input_schema", self.input_schema)
            if self.output_schema is not None:
                _check_schema("output_schema", self.output_schema)
                _check_result_fields(self.output_schema, self.result)
            for ref_where, ref in self.all_references():
                self._check_reference(ref_where, ref)
            cycle = find_cycle(self.dependencies())
            if cycle:
                raise ValueError(f"steps: the steps {' -> '.join(cycle)} form a cycle")
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc}") from None
        return self

    def dependencies(self) -> dict[str, set[str]]:
        """Each step's id to the ids of the steps its arguments refer to."""
        return {
            step: {ref.step for _, ref in references(config.arguments, "") if ref.step is not None}
            for step, config in self.steps.items()
        }

    def all_references(self) -> Iterator[tuple[str, Reference]]:
        """Every reference of the steps' arguments and of the result, with its place."""
        for step in self.steps:
            if not _STEP_ID.match(step):
                raise ValueError(f"steps.{step}: a step id has 1 to 64 letters, digits, '_' or '-'")
        for step, config in self.steps.items():
            yield from references(config.arguments, f"steps.{step}.arguments")
        found = list(references(self.result, "result"))
        if not found:
            raise ValueError("result: refers to no input and no step; a composite's result is built from them")
        yield from found

    def _check_reference(self, where: str, ref: Reference) -> None:
        if ref.step is not None:
            if ref.step not in self.steps:
                raise ValueError(f"{where}: unknown step {ref.step!r}")
            return
        fields = self.input_schema.get("properties") or {}
        if ref.path and ref.path[0] not in fields:
            raise ValueError(f"{where}: input field {ref.path[0]!r} is not in input_schema.properties")


def _check_schema(where: str, schema: dict[str, Any]) -> None:
    """A tool's input and output schemas are JSON Schemas of objects (MCP says so)."""
    if schema.get("type") != "object":
        raise ValueError(f'{where}: a tool\'s schema must say "type": "object"')
    # Here, not at the top: the configuration is read by commands that never check a schema (status, audit).
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        place = "".join(f".{part}" for part in exc.path)
        raise ValueError(f"{where}{place}: not a valid JSON Schema: {exc.message}") from None


def _check_result_fields(output_schema: dict[str, Any], result: dict[str, Any]) -> None:
    missing = [field for field in output_schema.get("required") or () if field not in result]
    if missing:
        raise ValueError(f"result: output_schema requires {missing[0]!r}, which the result does not set")
    if output_schema.get("additionalProperties") is False:
        extra = [field for field in result if field not in (output_schema.get("properties") or {})]
        if extra:
            raise ValueError(f"result.{extra[0]}: not in output_schema.properties, which allows no others")


def find_cycle(graph: Mapping[str, set[str]]) -> list[str]:
    """A cycle of ``graph`` (node to the nodes it needs) as a path that ends where it starts, or ``[]``."""
    done: set[str] = set()
    for start in sorted(graph):
        trail: list[str] = []
        if cycle := _walk(graph, start, trail, done):
            return cycle
    return []


def _walk(graph: Mapping[str, set[str]], node: str, trail: list[str], done: set[str]) -> list[str]:
    if node in trail:
        return [*trail[trail.index(node) :], node]
    if node in done or node not in graph:
        return []
    trail.append(node)
    for needed in sorted(graph[node]):
        if cycle := _walk(graph, needed, trail, done):
            return cycle
    trail.pop()
    done.add(node)
    return []


def _unique(composites: tuple[CompositeConfig, ...]) -> tuple[CompositeConfig, ...]:
    names = [composite.name for composite in composites]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"composite names must be unique; repeated: {', '.join(repeated)}")
    return composites


Composites = Annotated[tuple[CompositeConfig, ...], AfterValidator(_unique)]


def check_composites(composites: tuple[CompositeConfig, ...], tools: Mapping[str, types.Tool]) -> list[str]:
    """What the backends' listings show wrong with ``composites``, one string per problem naming its place.

    ``tools`` holds every tool of the endpoint under each name a step may use for it (canonical and strict).
    """
    problems: list[str] = []
    for composite in composites:
        where = f"composites.{composite.name}"
        if composite.name in tools:
            problems.append(f"{where}: the name is also a backend's tool")
        for step, config in composite.steps.items():
            tool = tools.get(config.tool)
            if tool is None:
                problems.append(f"{where}.steps.{step}: unknown tool {config.tool!r}")
                continue
            problems += [f"{where}.steps.{step}{problem}" for problem in _argument_problems(tool, config.arguments)]
            if composite.read_only and not (tool.annotations and tool.annotations.read_only_hint):
                problems.append(f"{where}.steps.{step}: read_only, but {config.tool!r} is not read-only")
        for ref_where, ref in composite.all_references():
            step_config = composite.steps.get(ref.step) if ref.step is not None else None
            tool = tools.get(step_config.tool) if step_config is not None else None
            if tool is not None and tool.output_schema is not None:
                problem = _missing_field(tool.output_schema, ref.path)
                if problem:
                    problems.append(f"{where}.{ref_where}: {ref.text!r}: {problem}")
    return problems


def _argument_problems(tool: types.Tool, arguments: Mapping[str, Any]) -> list[str]:
    schema = tool.input_schema
    properties = schema.get("properties")
    problems = []
    if isinstance(properties, dict) and schema.get("additionalProperties") in (None, False):
        unknown = [name for name in arguments if name not in properties]
        problems += [f".arguments.{name}: not an argument of {tool.name!r}" for name in unknown]
    problems += [
        f".arguments: {tool.name!r} requires {name!r}" for name in schema.get("required") or () if name not in arguments
    ]
    return problems


def _missing_field(schema: dict[str, Any], path: tuple[str, ...]) -> str | None:
    """Why ``path`` cannot be in a value ``schema`` describes, as far as the schema says (``$defs`` followed)."""
    node = schema
    for key in path:
        node = _resolved(schema, node)
        properties = node.get("properties")
        if isinstance(properties, dict):
            if key not in properties:
                if node.get("additionalProperties") not in (None, False):
                    return None
                return f"the tool's outputSchema has no field {key!r}"
            node = properties[key]
        elif key.isdigit() and isinstance(node.get("items"), dict):
            node = node["items"]
        else:
            return None
    return None


def _resolved(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node``, or what its local ``$ref`` (``#/$defs/...``) names."""
    target = node.get(REF)
    if not isinstance(target, str) or not target.startswith("#/"):
        return node
    found: Any = root
    for part in target[2:].split("/"):
        found = found.get(part) if isinstance(found, dict) else None
    return found if isinstance(found, dict) else {}
