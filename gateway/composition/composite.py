"""Composite tools: the configured composites as a ``ToolSource``.

Each is listed under its own name (the same in both name styles) with its input and output schemas. A call is
checked against the input schema (``InvalidArguments``), its steps run (``gateway.composition.steps``), and the
result assembled from them: their values in the shape of the config's ``result``, as ``structuredContent`` and as
its JSON in a text block. When a step fails the result is an ``isError`` one whose structured content names the
failed step and its error and says what each other step returned, or that it was cancelled or skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from mcp import types

from gateway.catalogue.naming import Style
from gateway.composition.sources import Reach
from gateway.composition.steps import Run, Unresolved
from gateway.config.composites import CompositeConfig
from gateway.errors import UnknownTarget
from gateway.security.validation import ISOLATED, ArgumentValidator


class Composites:
    """The composite tools of one endpoint."""

    def __init__(self, composites: Sequence[CompositeConfig]) -> None:
        self._composites = {composite.name: composite for composite in composites}
        self._tools = [listed(composite) for composite in composites]
        self._arguments = ArgumentValidator()
        self._outputs = {
            composite.name: _validator(composite.output_schema)
            for composite in composites
            if composite.output_schema is not None
        }

    def tools(self, style: Style) -> Sequence[types.Tool]:
        """The composites, whatever the style: their names are valid in both."""
        return self._tools

    def owns(self, name: str) -> bool:
        return name in self._composites

    async def call(self, reach: Reach, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        """Run the composite ``name`` for the caller behind ``reach``."""
        composite = self._composites.get(name)
        if composite is None:
            raise UnknownTarget("tool", name)
        self._arguments.check(name, composite.input_schema, arguments)
        run = Run(composite, with_defaults(composite.input_schema, arguments or {}))
        await run.execute(reach)
        if run.failed is not None:
            step = run.failed
            failed = {"at": f"steps.{step}", "step": step, "tool": composite.steps[step].tool}
            return _failure(run, {**failed, "error": run.states[step].error})
        try:
            structured = run.render(composite.result)
        except Unresolved as exc:
            return _failure(run, {"at": "result", "error": {"message": str(exc)}})
        problem = self._output_problem(name, structured)
        if problem is not None:
            return _failure(run, {"at": "result", "error": {"message": problem}})
        return types.CallToolResult(content=[_text(structured)], structured_content=structured)

    def _output_problem(self, name: str, structured: dict[str, Any]) -> str | None:
        validator = self._outputs.get(name)
        error = best_match(validator.iter_errors(structured)) if validator is not None else None
        if error is None:
            return None
        return f"the assembled result does not match output_schema at {error.json_path}: {error.message}"


def listed(composite: CompositeConfig) -> types.Tool:
    """A composite as ``tools/list`` shows it."""
    return types.Tool(
        name=composite.name,
        title=composite.title,
        description=composite.description,
        input_schema=composite.input_schema,
        output_schema=composite.output_schema,
        annotations=types.ToolAnnotations(read_only_hint=True) if composite.read_only else None,
    )


def with_defaults(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments, with the ``default`` of each top-level property the caller left out."""
    properties = schema.get("properties") or {}
    given = {key: spec["default"] for key, spec in properties.items() if isinstance(spec, dict) and "default" in spec}
    return {**given, **arguments}


def _failure(run: Run, failed: dict[str, Any]) -> types.CallToolResult:
    report = {"failed": failed, "steps": {step: state.report() for step, state in run.states.items()}}
    return types.CallToolResult(content=[_text(report)], structured_content=report, is_error=True)


def _text(value: Any) -> types.TextContent:
    return types.TextContent(type="text", text=json.dumps(value, ensure_ascii=False))


def _validator(schema: dict[str, Any]) -> Validator:
    """A compiled validator of an output schema (checked when the config was loaded); references stay inside it."""
    return validator_for(schema, default=Draft202012Validator)(schema, registry=ISOLATED)
