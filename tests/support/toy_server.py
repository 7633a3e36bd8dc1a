"""A small MCP server the tests control: it can add tools at run time, return rich content, and misbehave.

Run it as ``python -m tests.support.toy_server --port N`` (streamable HTTP), ``--transport sse`` or ``--stdio``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import anyio
import uvicorn
from mcp import MCPError, types
from mcp.server import MCPServer
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.shared.message import ServerMessageMetadata
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Named(BaseModel):
    name: str


def ask_name() -> Elicit[Named]:
    return Elicit("Your name?", Named)


def _asked(ctx: Context, answer: str) -> str | types.InputRequiredResult:
    """``answer`` filled with the name the client gave in an earlier round, or the question for it."""
    given = (ctx.input_responses or {}).get("name")
    if isinstance(given, types.ElicitResult) and given.content and ctx.request_state == "asked":
        return answer.format(given.content["name"])
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    question = types.ElicitRequest(params=types.ElicitRequestFormParams(message="Your name?", requested_schema=schema))
    return types.InputRequiredResult(input_requests={"name": question}, request_state="asked")


def _subscriptions(server: MCPServer) -> dict[str, set[Connection]]:
    """2025 ``resources/subscribe`` (``MCPServer`` serves only 2026 listen streams): subscribed connections by URI."""
    subscribed: dict[str, set[Connection]] = {}

    async def subscribe(ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams) -> types.EmptyResult:
        subscribed.setdefault(str(params.uri), set()).add(ctx.session._connection)
        return types.EmptyResult()

    async def unsubscribe(
        ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        subscribed.get(str(params.uri), set()).discard(ctx.session._connection)
        return types.EmptyResult()

    lowlevel = server._lowlevel_server
    lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)
    return subscribed


def build(name: str = "toy", journal: Path | None = None, listen: bool = True) -> MCPServer:
    """``journal``: a file each ``record`` call appends to before it sleeps, to count executions across restarts.
    ``listen=False``: no 2026 ``subscriptions/listen``, only 2025 ``resources/subscribe``, as a server written
    before 2026-07-28 subscribes."""
    server = MCPServer(name, instructions="Test backend.", subscriptions=None if listen else False)
    cancelled = [0]
    subscribed = _subscriptions(server)

    @server.tool(description="Echo the text back.", annotations=types.ToolAnnotations(read_only_hint=True))
    def echo(text: str = Field(description="What to echo")) -> str:
        return text

    @server.tool(name="search", description="Search the toy records.")
    def search(query: str) -> list[str]:
        return [f"{name}:{query}"]

    @server.tool(description="Return a link to a resource and an embedded resource.")
    def linked() -> list[types.ContentBlock]:
        return [
            types.ResourceLink(type="resource_link", uri="toy://notes/1", name="note 1"),
            types.EmbeddedResource(
                type="resource", resource=types.TextResourceContents(uri="toy://notes/2", text="two")
            ),
        ]

    @server.tool(description="Fail with a JSON-RPC error carrying data.")
    def fail() -> str:
        raise MCPError(-32099, "toy failure", {"why": "asked to"})

    @server.tool(description="Sleep for the given seconds, then answer.")
    async def slow(seconds: float) -> str:
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            cancelled[0] += 1
            raise
        return "done"

    @server.tool(
        description="How many slow calls were cancelled.", annotations=types.ToolAnnotations(read_only_hint=True)
    )
    def cancellations() -> int:
        return cancelled[0]

    @server.tool(description="Read slowly (safe to repeat).", annotations=types.ToolAnnotations(read_only_hint=True))
    async def slow_read(seconds: float) -> str:
        if journal is not None:
            with journal.open("a") as handle:
                handle.write("read\n")
        await anyio.sleep(seconds)
        return "read done"

    @server.tool(description="Append a tag to the journal, then sleep (not safe to repeat).")
    async def record(tag: str, seconds: float) -> str:
        assert journal is not None
        with journal.open("a") as handle:
            handle.write(tag + "\n")
        await anyio.sleep(seconds)
        return "recorded"

    @server.tool(description="Answer; over streamable HTTP the answer's connection is cut halfway (see ``cutting``).")
    def cut() -> str:
        return "cut " * 100

    @server.tool(description="Exit the process at once.")
    def crash() -> str:
        os._exit(1)

    @server.tool(description="Register a new tool and tell clients the list changed.")
    async def add_tool(tool_name: str, ctx: Context) -> str:
        def added() -> str:
            return f"I am {tool_name}"

        server.add_tool(added, name=tool_name, description=f"Added at run time: {tool_name}")
        await ctx.notify_tools_changed()
        await ctx.request_context.session.send_tool_list_changed()
        return "added"

    memory: dict[str, str] = {}

    def session_of(ctx: Context) -> str:
        """A stdio process is one session; over HTTP, the client's Mcp-Session-Id (absent for 2026 clients)."""
        return (ctx.headers or {}).get("mcp-session-id", "process")

    @server.tool(description="Remember a value for this session (a stateful tool).")
    def remember(value: str, ctx: Context) -> str:
        memory[session_of(ctx)] = value
        return "remembered"

    @server.tool(description="The value this session remembered, and this process's id.")
    def recall(ctx: Context) -> str:
        return f"{memory.get(session_of(ctx), '')}@{os.getpid()}"

    @server.tool(description="Report progress in steps, logging at debug and warning along the way.")
    async def steps(count: int, ctx: Context) -> str:
        for step in range(1, count + 1):
            await ctx.report_progress(step, count, f"step {step}")
        await ctx.log("debug", "a detail")
        await ctx.log("warning", {"steps": count})
        return f"{count} steps"

    @server.tool(description="Ask the client's model (sampling) and return its answer.")
    async def ask_model(prompt: str, ctx: Context) -> str:
        message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))
        session = ctx.request_context.session
        answer = await session.create_message([message], max_tokens=10, related_request_id=ctx.request_id)
        return f"{answer.model}: {answer.content.text if isinstance(answer.content, types.TextContent) else ''}"

    @server.tool(description="Ask the client's model, but give up (and tell the client) after the given seconds.")
    async def ask_model_briefly(seconds: float, ctx: Context) -> str:
        message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text="quick?"))
        request = types.CreateMessageRequest(params=types.CreateMessageRequestParams(messages=[message], max_tokens=5))
        related = ServerMessageMetadata(related_request_id=ctx.request_id)
        try:
            await ctx.request_context.session.send_request(
                request, types.CreateMessageResult, request_read_timeout_seconds=seconds, metadata=related
            )
        except MCPError as exc:
            return f"gave up: {exc.code}"
        return "answered"

    @server.tool(description="Ask the user (elicitation) for a name.")
    async def ask_user(question: str, ctx: Context) -> str:
        answer = await ctx.elicit(question, Named)
        return f"{answer.action}: {answer.data.name if answer.action == 'accept' else ''}"

    @server.tool(description="Greet a user whose name is asked of the client (multi-round on 2026 links).")
    def greet_user(who: Annotated[Named, Resolve(ask_name)]) -> str:
        return f"hello {who.name}"

    @server.tool(description="The Authorization header this request came with, if any.")
    def whoami(ctx: Context) -> str:
        return (ctx.headers or {}).get("authorization", "")

    @server.tool(description="The client's roots.")
    async def roots(ctx: Context) -> list[str]:
        session = ctx.request_context.session
        found = await session.send_request(
            types.ListRootsRequest(),
            types.ListRootsResult,
            metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
        )
        return [str(root.uri) for root in found.roots]

    @server.prompt(description="Greet someone whose name is asked of the client (multi-round, 2026 links).")
    def greet_asked(ctx: Context) -> str | types.InputRequiredResult:
        return _asked(ctx, "Hello {}")

    @server.resource("toy://asked/{topic}", description="A note whose reader's name is asked (multi-round).")
    def asked(topic: str, ctx: Context) -> str | types.InputRequiredResult:
        return _asked(ctx, topic + " for {}")

    @server.tool(description="Say that a resource changed, to whoever subscribed to it (either era).")
    async def touch(uri: str, ctx: Context) -> str:
        await ctx.notify_resource_updated(uri)
        for connection in list(subscribed.get(uri, ())):
            await connection.send_resource_updated(uri)
        return uri

    @server.tool(description="How many 2025 sessions are subscribed to a resource.")
    def subscribers(uri: str) -> int:
        return len(subscribed.get(uri, ()))

    @server.resource("toy://notes/{note_id}", description="A note by id.")
    def note(note_id: str) -> str:
        return f"note {note_id}"

    @server.resource("toy://about", description="About this server.")
    def about() -> str:
        return f"{name} server"

    @server.prompt(description="Greet someone.")
    def greet(who: str) -> str:
        return f"Hello {who}"

    @server.completion()
    async def complete(ref: Any, argument: types.CompletionArgument, context: Any) -> types.Completion:
        target = ref.name if isinstance(ref, types.PromptReference) else ref.uri
        return types.Completion(values=[f"{target}:{argument.name}={argument.value}"])

    return server


def modern_only(app: ASGIApp) -> ASGIApp:
    """The app, except that it refuses the 2025 ``initialize`` handshake as a server of 2026-07-28 alone does."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await app(scope, receive, send)
        first = await receive()
        message = json.loads(first.get("body") or b"null") if not first.get("more_body") else None
        if not (isinstance(message, dict) and message.get("method") == "initialize"):
            replayed = iter([first])
            return await app(scope, lambda: _next_or(replayed, receive), send)
        data = {"supported": ["2026-07-28"], "requested": message["params"]["protocolVersion"]}
        error = {"code": -32022, "message": "Unsupported protocol version", "data": data}
        body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "error": error}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return wrapped


async def _next_or(queued: Iterator[Message], receive: Receive) -> Message:
    return next(queued, None) or await receive()


class Cut(Exception):
    """Raised by ``cutting`` so the HTTP server drops a connection whose response has begun."""


def cutting(app: ASGIApp) -> ASGIApp:
    """The app, except that the response to a ``cut`` tool call stops halfway through its first body part and its
    connection is dropped, as a backend that fails mid-answer does."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await app(scope, receive, send)
        messages = [await receive()]
        while messages[-1].get("more_body"):
            messages.append(await receive())
        body = b"".join(m.get("body", b"") for m in messages)
        queued = iter(messages)

        async def replay() -> Message:
            return next(queued, None) or await receive()

        if b'"name":"cut"' not in body.replace(b" ", b""):
            return await app(scope, replay, send)

        cut = False

        async def half(message: Message) -> None:
            nonlocal cut
            if cut:
                raise Cut
            if message["type"] == "http.response.body" and message.get("body"):
                cut = True
                await send({**message, "body": message["body"][: len(message["body"]) // 2], "more_body": True})
                raise Cut
            await send(message)

        await app(scope, replay, half)

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="toy")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--transport", choices=["streamable-http", "sse", "stdio"], default="streamable-http")
    parser.add_argument("--stdio", action="store_const", const="stdio", dest="transport")
    parser.add_argument("--journal", type=Path)
    parser.add_argument("--json-response", action="store_true", help="plain JSON answers instead of SSE streams")
    parser.add_argument("--no-listen", action="store_true", help="2025 resources/subscribe only, no listen streams")
    parser.add_argument("--modern-only", action="store_true", help="refuse the 2025 handshake (streamable HTTP)")
    parser.add_argument("--echo-env", metavar="NAME", help="print NAME=value of this variable to stderr at start")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.echo_env:
        print(f"{args.echo_env}={os.environ.get(args.echo_env)}", file=sys.stderr, flush=True)
    server = build(args.name, args.journal, listen=not args.no_listen)
    if args.transport == "stdio":
        server.run("stdio")
    elif args.transport == "sse":
        server.run(args.transport, host="127.0.0.1", port=args.port)
    else:
        app = cutting(server.streamable_http_app(json_response=args.json_response, host="127.0.0.1"))
        if args.modern_only:
            app = modern_only(app)
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="critical")


if __name__ == "__main__":
    main()
