"""One run of a composite tool: its steps as a graph, each started as soon as the steps it refers to have returned.

Steps that wait on nothing start together; each is one ``Reach.call_tool``, so it passes the caller's policy, rate
limits and audit. The first step to fail (a raised error, or an ``isError`` result) ends the run: the steps still
calling are cancelled, those still waiting never start. Cancelling the run cancels the steps calling.

A step's value, for references and the report, is its ``structuredContent``; without one, the text of its content
parsed as JSON, else that text itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from mcp import MCPError, types

from gateway.composition.sources import Reach
from gateway.config.composites import CompositeConfig, Reference, parse_reference, reference_in
from gateway.errors import GatewayError
from gateway.rpc_errors import to_mcp_error

Status = Literal["waiting", "calling", "ok", "failed", "cancelled"]
# A reference to an input field the caller left out: the key is left out too (``None`` inside a list).
ABSENT: Any = object()


class Unresolved(Exception):
    """A reference names something the value it points into does not have."""


@dataclass
class StepState:
    """Where one step is, and what it returned or why it failed."""

    status: Status = "waiting"
    value: Any = None
    error: dict[str, Any] | None = None

    def report(self) -> dict[str, Any]:
        """This step as the failure report shows it (a step that never started is ``skipped``)."""
        if self.status == "ok":
            return {"status": "ok", "result": self.value}
        if self.status == "failed":
            return {"status": "failed", "error": self.error}
        return {"status": "skipped" if self.status == "waiting" else "cancelled"}


class Run:
    """The steps of one call of a composite, and the values its templates refer to."""

    def __init__(self, composite: CompositeConfig, given: Mapping[str, Any]) -> None:
        self.composite = composite
        self.given = given
        self.states = {step: StepState() for step in composite.steps}
        self.failed: str | None = None
        self._needs = composite.dependencies()
        self._done = {step: anyio.Event() for step in composite.steps}

    async def execute(self, reach: Reach) -> None:
        """Run every step; returns when all have returned or the first has failed and the rest are stopped."""
        async with anyio.create_task_group() as group:
            for step in self.composite.steps:
                group.start_soon(self._step, reach, step, group.cancel_scope)

    def render(self, template: Any) -> Any:
        """``template`` with each reference replaced by its value; ``Unresolved`` when one has none."""
        text = reference_in(template)
        if text is not None:
            return self.resolve(parse_reference(text))
        if isinstance(template, Mapping):
            rendered = {key: self.render(value) for key, value in template.items()}
            return {key: value for key, value in rendered.items() if value is not ABSENT}
        if isinstance(template, list):
            return [None if (value := self.render(item)) is ABSENT else value for item in template]
        return template

    def resolve(self, ref: Reference) -> Any:
        """The value ``ref`` points to (``ABSENT`` for an input field the caller did not give)."""
        value: Any = self.given if ref.step is None else self.states[ref.step].value
        for depth, key in enumerate(ref.path):
            if isinstance(value, Mapping) and key in value:
                value = value[key]
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            elif ref.step is None and depth == 0:
                return ABSENT
            else:
                source = "the input" if ref.step is None else f"what step {ref.step!r} returned"
                raise Unresolved(f"reference {ref.text!r}: {key!r} is not in {source}")
        return value

    async def _step(self, reach: Reach, step: str, stop: anyio.CancelScope) -> None:
        for needed in sorted(self._needs[step]):
            await self._done[needed].wait()
        state = self.states[step]
        state.status = "calling"
        try:
            error = await self._call(reach, step)
        except anyio.get_cancelled_exc_class():
            state.status = "cancelled"
            raise
        if error is None:
            self._done[step].set()
            return
        state.status, state.error = "failed", error
        if self.failed is None:
            self.failed = step
            stop.cancel()

    async def _call(self, reach: Reach, step: str) -> dict[str, Any] | None:
        """Call the step's tool and keep its value; or its error, as the failure report shows it."""
        config = self.composite.steps[step]
        try:
            result = await reach.call_tool(config.tool, self.render(config.arguments))
        except Unresolved as exc:
            return {"message": str(exc)}
        except GatewayError as exc:
            return error_of(to_mcp_error(exc))
        except MCPError as exc:
            return error_of(exc)
        if result.is_error:
            return {"message": text_of(result), "isError": True}
        self.states[step].status, self.states[step].value = "ok", value_of(result)
        return None


def error_of(exc: MCPError) -> dict[str, Any]:
    """A JSON-RPC error as the failure report shows it."""
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.data is not None:
        error["data"] = exc.data
    return error


def text_of(result: types.CallToolResult) -> str:
    """The text of a result's text blocks, one after the other."""
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


def value_of(result: types.CallToolResult) -> Any:
    """What references to a step see: structured content, else its text as JSON, else the text itself."""
    if result.structured_content is not None:
        return result.structured_content
    text = text_of(result)
    try:
        return json.loads(text)
    except ValueError:
        return text
