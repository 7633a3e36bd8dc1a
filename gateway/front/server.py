"""The MCP server clients talk to: the SDK's lowlevel ``Server`` with handlers that read the catalogue and route.

One ``Server`` serves both protocol eras (2025-11-25 handshake and 2026-07-28 stateless), over streamable HTTP and
stdio. Names are rendered per client: ``clientInfo`` decides between canonical and strict names. Every list and call
goes through the endpoint's ``Surface`` (``gateway.composition``) and the ``Guard`` with the caller's principal: over
HTTP the one the security layer left in the request's ASGI scope (``ctx.request`` is the Starlette request of the POST
carrying the message, in both eras), elsewhere (stdio, in-process) the server's own principal. Gateway errors become
JSON-RPC errors at this edge, in ``edge``, through ``rpc_errors.to_mcp_error``, with configured secrets redacted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from mcp import MCPError, types
from mcp.server import NotificationOptions, Server
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.models import InitializationOptions
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel
from starlette.requests import Request

from gateway import __version__
from gateway.catalogue.naming import Style, style_for_client
from gateway.catalogue.pages import ListCache, list_key
from gateway.cluster.sessions import SharedSessions
from gateway.composition.offered import main_surface
from gateway.composition.surface import Surface
from gateway.core import Gateway
from gateway.errors import GatewayError, StoreUnavailable
from gateway.front.relay import LogLevels, NoBackChannel, Relay
from gateway.front.session_table import SessionTable
from gateway.principal import Principal
from gateway.routing.subscriptions import Listener
from gateway.rpc_errors import to_mcp_error
from gateway.sdk import connection_of, replace_middleware
from gateway.security.auth import SCOPE_ADMITTED, principal_of
from gateway.security.guard import CALLS
from gateway.security.redaction import Redactor
from gateway.telemetry import access_log
from gateway.telemetry.access_log import keep_traceparent
from gateway.telemetry.tracing import answered
from gateway.upstream.backend import State
from gateway.upstream.caller import Caller

logger = logging.getLogger(__name__)
Ctx = ServerRequestContext[Any, Any]
SESSION_HEADER = "mcp-session-id"
STDIO_SESSION = "stdio"
_OPTIONAL = ("prompts", "resources", "completions", "logging")
SUBSCRIBE = "resources.subscribe"
LISTS = frozenset({"tools/list", "prompts/list", "resources/list", "resources/templates/list"})
INSTRUCTIONS = (
    "A gateway in front of several MCP servers. Every tool, prompt and resource carries the prefix of the "
    "server that owns it (for example ops/, hr/, fin/, or ops__ where '/' is not allowed)."
)


class GatewayServer(Server[Any]):
    """Advertises ``listChanged`` to 2025 clients (backends come, go and change their lists at run time), and
    prompts, resources (and their subscriptions), completions and logging only while a connected backend serves
    them."""

    served: Callable[[], set[str]] = staticmethod(lambda: set(_OPTIONAL))

    def get_capabilities(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
        *,
        protocol_version: str | None = None,
    ) -> types.ServerCapabilities:
        capabilities = super().get_capabilities(
            notification_options, experimental_capabilities, extensions, protocol_version=protocol_version
        )
        served = self.served()
        update: dict[str, Any] = {kind: None for kind in _OPTIONAL if kind not in served}
        if capabilities.resources is not None and "resources" in served:
            subscribe = SUBSCRIBE in served
            update["resources"] = capabilities.resources.model_copy(update={"subscribe": subscribe})
        return capabilities.model_copy(update=update)

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        options = notification_options or NotificationOptions(
            tools_changed=True, prompts_changed=True, resources_changed=True
        )
        return super().create_initialization_options(options, experimental_capabilities, extensions)


def build_server(
    gateway: Gateway,
    principal: Principal | None = None,
    lists: ListCache | None = None,
    sessions: SessionTable | None = None,
    shared: SharedSessions | None = None,
    surface: Surface | None = None,
    instructions: str | None = None,
) -> GatewayServer:
    """The MCP server for a running gateway (the caller owns the gateway's lifecycle).

    ``principal`` is who calls when there is no HTTP request (stdio, in-process); by default the configured
    local principal. ``lists`` keeps the list answers and ``sessions`` learns what they depend on for each 2025
    session; pass them to share them with the fast path. ``shared`` keeps each 2025 session's subscriptions where
    every replica finds them (``gateway.front.portable_sessions``). ``surface``: what the endpoint offers (by
    default what the configuration says ``/mcp`` offers); ``instructions``: what its clients are told
    instead of the gateway's own.
    """
    naming, redactor = gateway.config.naming, gateway.redactor
    offered = surface if surface is not None else main_surface(gateway)
    own = principal or gateway.guard.local
    levels = LogLevels()
    size = gateway.config.list_page_size
    answers = lists if lists is not None else ListCache()
    table = sessions if sessions is not None else SessionTable()

    def style(ctx: Ctx) -> Style:
        return style_for_client(_client_name(ctx), naming)

    def who(ctx: Ctx) -> Principal:
        return own if ctx.request is None else principal_of(ctx.request.scope)

    def caller(ctx: Ctx) -> Caller:
        """The client behind a request, as the layers below need it (see ``gateway.upstream.caller``)."""
        modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        principal, session = who(ctx), _session(ctx)
        keep_traceparent(ctx.request.headers.get("traceparent") if ctx.request is not None else None)
        if ctx.request_id is None:
            return Caller(session=session, principal=principal)
        relay = Relay(ctx.session, ctx.request_id, levels.allowed(ctx.session, ctx.meta))
        return Caller(
            session=session,
            sink=relay,
            log_level=relay.log_floor,
            capabilities=ctx.session.client_capabilities,
            identity=f"{principal.key}\0{session or ''}",
            modern=modern,
            principal=principal,
        )

    def listing(kind: str, ctx: Ctx, params: types.PaginatedRequestParams | None) -> tuple[list[Any], str | None]:
        """One page of a list; a principal whose rules hide some items gets what it may use in one page."""
        if offered.filters:
            return offered.listing(who(ctx), kind, style(ctx)), None
        return offered.page(kind, style(ctx), params.cursor if params else None, size)

    async def list_tools(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        tools, cursor = listing("tools", ctx, params)
        return types.ListToolsResult(tools=tools, next_cursor=cursor)

    def call(ctx: Ctx, params: types.InputResponseRequestParams | None = None) -> dict[str, Any]:
        """What the guard needs to know of a request besides its parameters (and a multi-round retry's)."""
        admitted = ctx.request is not None and ctx.request.scope.get(SCOPE_ADMITTED) is True
        known: dict[str, Any] = {"request_id": ctx.request_id, "admitted": admitted}
        if params is not None:
            responses = {key: _wire(value) for key, value in (params.input_responses or {}).items()}
            known.update(input_responses=responses or None, request_state=params.request_state)
        return known

    async def call_tool(
        ctx: Ctx, params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        return await offered.call_tool(
            caller(ctx), params.name, params.arguments, params.meta, style=style(ctx), **call(ctx, params)
        )

    async def list_prompts(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        prompts, cursor = listing("prompts", ctx, params)
        return types.ListPromptsResult(prompts=prompts, next_cursor=cursor)

    async def get_prompt(
        ctx: Ctx, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        return await offered.get_prompt(caller(ctx), params.name, params.arguments, **call(ctx, params))

    async def list_resources(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        resources, cursor = listing("resources", ctx, params)
        return types.ListResourcesResult(resources=resources, next_cursor=cursor)

    async def list_templates(
        ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        templates, cursor = listing("templates", ctx, params)
        return types.ListResourceTemplatesResult(resource_templates=templates, next_cursor=cursor)

    async def read_resource(
        ctx: Ctx, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        return await offered.read_resource(caller(ctx), str(params.uri), **call(ctx, params))

    async def subscribe(ctx: Ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
        result = await offered.subscribe(caller(ctx), str(params.uri), connection_of(ctx.session), **call(ctx))
        await remember(ctx, str(params.uri), True)
        return result

    async def unsubscribe(ctx: Ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        result = await offered.unsubscribe(str(params.uri), connection_of(ctx.session))
        await remember(ctx, str(params.uri), False)
        return result

    async def remember(ctx: Ctx, uri: str, on: bool) -> None:
        """Keep a 2025 session's subscription where another replica restoring the session finds it."""
        session = _session(ctx) if ctx.request is not None else None
        if shared is None or session is None:
            return
        try:
            await shared.subscribed(session, uri, on)
        except StoreUnavailable as exc:
            logger.warning("a subscription is not shared, so another replica would not restore it: %s", exc)

    async def listen(ctx: Ctx, params: types.SubscriptionsListenRequestParams) -> types.SubscriptionsListenResult:
        """A 2026 listen stream; the resources it names are subscribed to for as long as it is open, each as far as
        the caller may read it and its backend takes the subscription (the acknowledgement says which)."""
        wanted, listener = params.notifications.resource_subscriptions or [], Listener()
        honored = [uri for uri in dict.fromkeys(wanted) if await _subscribed(offered, caller(ctx), uri, listener)]
        notifications = params.notifications.model_copy(update={"resource_subscriptions": honored or None})
        try:
            return await gateway.notifier.listen(ctx, params.model_copy(update={"notifications": notifications}))
        finally:
            await gateway.subscriptions.discard(listener, honored)

    async def complete(ctx: Ctx, params: types.CompleteRequestParams) -> types.CompleteResult:
        return await offered.complete(caller(ctx), params, **call(ctx))

    async def cached_list(ctx: Ctx, call_next: CallNext) -> HandlerResult:
        """A list answer as the SDK last shaped it for this page, style and version, while the catalogue holds
        (only while every principal sees the whole catalogue). A 2025 session's style and version are learned
        here, for the fast path to find its pages."""
        cursor = (ctx.params or {}).get("cursor")
        if offered.filters or (cursor is not None and not isinstance(cursor, str)):
            return await call_next(ctx)
        client_style = style(ctx)
        key = list_key(ctx.method, client_style, ctx.protocol_version, cursor)
        session = _session(ctx) if ctx.request is not None else None
        if session is not None and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            table.learn(session, client_style, ctx.protocol_version)
        generation = offered.generation
        cached = answers.get(generation, key)
        if cached is not None:
            return cached.answer
        answer = await call_next(ctx)
        if isinstance(answer, dict):
            answers.put(generation, key, answer)
        return answer

    async def traced(ctx: Ctx, call_next: CallNext) -> HandlerResult:
        """``edge`` in the request's SERVER span (not a notification's, nor a listen stream's, open for hours)."""
        if tracing is None or ctx.request_id is None or ctx.method == "subscriptions/listen":
            return await edge(ctx, call_next)
        headers, session = (None, None) if ctx.request is None else (ctx.request.headers, _session(ctx))
        version = ctx.protocol_version
        with tracing.serving(
            ctx.method, ctx.params, ctx.request_id, headers=headers, session=session, version=version
        ) as span:
            result = await edge(ctx, call_next)
            answered(span, result)
            return result

    async def edge(ctx: Ctx, call_next: CallNext) -> HandlerResult:
        """``handled``, with an access line for a request the guard does not take (lists, ``initialize``, …)."""
        if ctx.request_id is None or ctx.method in CALLS or not access_log.enabled():
            return await handled(ctx, call_next)
        started, outcome = time.perf_counter(), "error"
        try:
            result = await handled(ctx, call_next)
            outcome = "ok"
            return result
        finally:
            era = "2026" if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS else "2025"
            seconds = time.perf_counter() - started
            access_log.write(ctx.method, "", who(ctx).key, None, era, seconds, outcome, _session(ctx))

    async def handled(ctx: Ctx, call_next: CallNext) -> HandlerResult:
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            gateway.notifier.track(ctx.session)
        if ctx.method == "initialize" and ctx.request is not None and (session := _session(ctx)) is not None:
            table.forget(session)  # a client may initialize its session again, under another name
        if shared is not None and (connection := connection_of(ctx.session)).session_id is not None:
            table.attach(connection.session_id, connection)  # from its initialize on, for subscriptions made elsewhere
        try:
            if ctx.request_id is None or ctx.method == "subscriptions/listen":
                return await call_next(ctx)
            with gateway.inflight.track():
                if ctx.method in LISTS:
                    return await cached_list(ctx, call_next)
                return await call_next(ctx)
        except GatewayError as exc:
            raise redacted(redactor, to_mcp_error(exc)) from None
        except MCPError as exc:
            raise redacted(redactor, exc) from None

    server = GatewayServer(
        "mcp-gateway",
        version=__version__,
        instructions=instructions or INSTRUCTIONS,
        get_tool_input_schema=offered.input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
        on_completion=complete,
        on_subscribe_resource=subscribe,
        on_unsubscribe_resource=unsubscribe,
        on_subscriptions_listen=listen,
    )

    async def set_level(ctx: Ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
        levels.set(ctx.session, params.level)
        return types.EmptyResult()

    # The 2025 logging capability; registered directly, as the constructor flags it deprecated for 2026 servers.
    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    server.served = lambda: _served(gateway)
    # Replaces the SDK's default OpenTelemetry middleware, a measurable share of every call with no tracer set.
    tracing = gateway.tracing
    replace_middleware(server, [edge if tracing is None else traced])
    return server


def _wire(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def _served(gateway: Gateway) -> set[str]:
    """The optional capabilities some connected backend has (``SUBSCRIBE``: resource subscriptions)."""
    served: set[str] = set()
    for upstream in gateway.upstreams.values():
        caps = upstream.capabilities
        if caps is not None and upstream.state is State.READY:
            served.update(kind for kind in _OPTIONAL if getattr(caps, kind) is not None)
            if caps.resources is not None and caps.resources.subscribe:
                served.add(SUBSCRIBE)
    return served


async def _subscribed(surface: Surface, caller: Caller, uri: str, listener: Listener) -> bool:
    try:
        await surface.subscribe(caller, uri, listener)
    except (GatewayError, MCPError) as exc:
        logger.info("listen stream: %s not subscribed: %s", uri, exc)
        return False
    return True


def redacted(redactor: Redactor, error: MCPError) -> MCPError:
    """An error as a client may see it: configured secrets cut from its message and data."""
    message, data = redactor.text(error.message), redactor.value(error.data)
    return error if (message, data) == (error.message, error.data) else MCPError(error.code, message, data)


def stateless_caller(request: Request, capabilities: Any) -> Caller:
    """The caller of a 2026 request served by the stateless fast path (``gateway.front.fastpath``), as ``caller`` in
    ``build_server`` builds it for the same request on the SDK path: its principal from the ASGI scope, no log
    messages and no progress asked for (the fast path leaves such requests to the SDK), and no back-channel. A
    2026 request has no downstream session, whatever ``Mcp-Session-Id`` it carries: the SDK checks no session
    for it, so the header is only a claim."""
    principal = principal_of(request.scope)
    declared = types.ClientCapabilities.model_validate(capabilities) if isinstance(capabilities, dict) else None
    return Caller(
        sink=NoBackChannel(declared),
        capabilities=declared,
        identity=f"{principal.key}\0",
        modern=True,
        principal=principal,
    )


def _session(ctx: Ctx) -> str | None:
    """The caller's downstream session: over HTTP a 2025 request's ``Mcp-Session-Id`` (the SDK's session manager
    served the request only because the session is live and was opened with this request's credential), none for
    a 2026 request (its header names nothing the SDK checked); the one stdio client is one session."""
    if ctx.request is None:
        return STDIO_SESSION
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return None
    session: str | None = ctx.request.headers.get(SESSION_HEADER)
    return session


def _client_name(ctx: Ctx) -> str | None:
    params = ctx.session.client_params
    if params is not None:
        return params.client_info.name
    info = (ctx.meta or {}).get(types.CLIENT_INFO_META_KEY)
    return info.get("name") if isinstance(info, dict) else None
