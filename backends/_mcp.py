"""Shared MCPServer construction: tool annotation presets, domain errors and strict argument checking.

MCPServer 2.3.0 reports arguments that fail a tool's input schema as an `isError` result (with pydantic's text,
input values included) and an unknown tool the same way, and a prompt missing a required argument as an internal
error. Callers of these backends, the gateway first, need a malformed call (JSON-RPC -32602) told apart from a call
the domain refused (`isError`), so `StrictServer` answers those with -32602 instead.
"""

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.prompts import Prompt
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult, GetPromptResult, Icon, InputRequiredResult, ToolAnnotations
from pydantic import Field, ValidationError

ToolKind = Literal["read", "create", "update"]

SearchQuery = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"\S", description="Words to look for; best matches first")
]
SearchLimit = Annotated[int, Field(ge=1, le=50, description="Maximum number of hits")]

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
CREATE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
UPDATE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
_ANNOTATIONS: dict[ToolKind, ToolAnnotations] = {"read": READ, "create": CREATE, "update": UPDATE}


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
    """A StrictServer with these tools and prompts."""
    server = StrictServer(name, instructions=instructions, tools=list(tools))
    for item in prompts:
        server.add_prompt(item)
    return server


class StrictServer(MCPServer[Any]):
    """An MCPServer answering -32602 for unknown tools and prompts and for arguments that do not validate.

    A tool registered with `@server.tool()` is described by its docstring without the indentation, whatever the
    Python version (3.13 strips it when compiling; 3.11 and 3.12 keep it in `__doc__`).
    """

    def add_tool(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        structured_output: bool | None = None,
    ) -> None:
        super().add_tool(
            fn,
            name=name,
            title=title,
            description=description or inspect.getdoc(fn),
            annotations=annotations,
            icons=icons,
            meta=meta,
            structured_output=structured_output,
        )

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            # The SDK's own sign of arguments that failed the input schema (it logs them as rejected).
            if isinstance(exc.__cause__, ValidationError):
                raise _invalid_arguments(f"tool {name!r}", exc.__cause__) from None
            if name not in {listed.name for listed in await self.list_tools()}:
                raise invalid_params(f"Unknown tool: {name}") from None
            raise

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        found = {listed.name: listed for listed in await self.list_prompts()}.get(name)
        if found is None:
            raise invalid_params(f"Unknown prompt: {name}")
        given: Mapping[str, Any] = arguments or {}
        missing = sorted(arg.name for arg in found.arguments or () if arg.required and arg.name not in given)
        if missing:
            raise invalid_params(f"Invalid arguments for prompt {name!r}: missing {', '.join(missing)}")
        return await super().get_prompt(name, arguments, context)


def _invalid_arguments(target: str, exc: ValidationError) -> MCPError:
    """-32602 naming each offending field; pydantic's messages leave out the rejected values."""
    errors = [
        {"field": ".".join(str(part) for part in err["loc"]), "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return MCPError(code=INVALID_PARAMS, message=f"Invalid arguments for {target}: {summary}", data={"errors": errors})
