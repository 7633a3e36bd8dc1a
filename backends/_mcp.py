"""Shared MCPServer construction: tool annotation presets, domain errors and strict argument checking.

MCPServer 2.3.0 reports arguments that fail a tool's input schema as an `isError` result (with pydantic's text,
input values included) and an unknown tool the same way, and a prompt missing a required argument as an internal
error. Callers of these backends, the gateway first, need a malformed call (JSON-RPC -32602) told apart from a call
the domain refused (`isError`), so a middleware validates tool and prompt arguments before the SDK's handlers run.
"""

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.prompts import Prompt
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, ToolAnnotations
from pydantic import Field, ValidationError

ToolKind = Literal["read", "create", "update"]

SearchQuery = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"\S", description="Words to look for; best matches first")
]
SearchLimit = Annotated[int, Field(ge=1, le=50, description="Maximum number of hits")]

_ANNOTATIONS: dict[ToolKind, ToolAnnotations] = {
    "read": ToolAnnotations(read_only_hint=True, open_world_hint=False),
    "create": ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
    ),
    "update": ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    ),
}


class DomainError(ToolError):
    """A lookup or business rule refused the call; the SDK returns a ToolError as an `isError` result."""


def invalid_params(message: str) -> MCPError:
    """A JSON-RPC -32602 error, for arguments a prompt or resource cannot accept."""
    return MCPError(code=INVALID_PARAMS, message=message)


def tool(fn: Callable[..., Any], title: str, kind: ToolKind) -> Tool:
    """`fn` as a tool with the annotations of its kind; its docstring is the description the model reads."""
    return Tool.from_function(fn, title=title, description=inspect.getdoc(fn), annotations=_ANNOTATIONS[kind])


def prompt(fn: Callable[..., Any], title: str) -> Prompt:
    """`fn` as a prompt; its docstring is the description."""
    return Prompt.from_function(fn, title=title, description=inspect.getdoc(fn))


def make_server(name: str, instructions: str, tools: Sequence[Tool], prompts: Sequence[Prompt]) -> MCPServer:
    """An MCPServer whose tool and prompt arguments are checked up front (see the module docstring)."""
    check = _ArgumentCheck({t.name: t for t in tools}, {p.name: p for p in prompts})
    server: MCPServer = MCPServer(name, instructions=instructions, tools=list(tools), middleware=[check])
    for item in prompts:
        server.add_prompt(item)
    return server


class _ArgumentCheck:
    """Server middleware raising -32602 for unknown tools and for tool or prompt arguments that do not validate."""

    def __init__(self, tools: Mapping[str, Tool], prompts: Mapping[str, Prompt]) -> None:
        self._tools = tools
        self._prompts = prompts

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params or {}
        arguments = params.get("arguments")
        name = params.get("name")
        # Malformed envelopes are left to the SDK, which rejects them with -32602 itself.
        if isinstance(name, str) and isinstance(arguments, Mapping | None):
            if ctx.method == "tools/call":
                self._check_tool(name, dict(arguments or {}))
            elif ctx.method == "prompts/get":
                self._check_prompt(name, arguments or {})
        return await call_next(ctx)

    def _check_tool(self, name: str, arguments: dict[str, Any]) -> None:
        found = self._tools.get(name)
        if found is None:
            raise invalid_params(f"Unknown tool: {name}")
        try:
            found.fn_metadata.validate_arguments(arguments)
        except ValidationError as exc:
            raise _invalid_arguments(f"tool {name!r}", exc) from None

    def _check_prompt(self, name: str, arguments: Mapping[str, Any]) -> None:
        found = self._prompts.get(name)
        if found is None:
            raise invalid_params(f"Unknown prompt: {name}")
        missing = sorted(arg.name for arg in found.arguments or () if arg.required and arg.name not in arguments)
        if missing:
            raise invalid_params(f"Invalid arguments for prompt {name!r}: missing {', '.join(missing)}")


def _invalid_arguments(target: str, exc: ValidationError) -> MCPError:
    """-32602 naming each offending field; pydantic's messages leave out the rejected values."""
    errors = [
        {"field": ".".join(str(part) for part in err["loc"]), "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return MCPError(code=INVALID_PARAMS, message=f"Invalid arguments for {target}: {summary}", data={"errors": errors})
