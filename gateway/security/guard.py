"""The guard: every per-call decision, for an explicit principal, in one place below the MCP front.

A call goes: resolve the name to its backend and canonical name -> check the principal's rules (a denial is
answered as the name being unknown, before any budget is spent, so a caller cannot tell what its lists hide) ->
spend rate-limit budget (unless the transport already did, to answer HTTP 429 itself) -> refuse a withheld
(changed, pinned) tool -> validate tool arguments against the tool's ``inputSchema`` (where the operator turned
validation on) -> forward through the ``Router`` with the caller's token at hand -> bound the result's size -> write
one audit line, whatever happened. Lists go through ``listing``, which shows a principal only what it may use.
The ``Caller`` (its principal, session and sink; see ``gateway.upstream.caller``) is passed through to the router.
Anything that serves MCP (the SDK handlers in ``gateway.front.server``, the stdio front, a direct HTTP path) calls
these methods and nothing below them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from mcp import MCPError, types

from gateway.catalogue.catalog import Catalog, Route
from gateway.catalogue.naming import Style, canonical_name
from gateway.config import BackendConfig, GatewayConfig, SecurityConfig
from gateway.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    Forbidden,
    GatewayError,
    InvalidArguments,
    OutcomeUnknown,
    RateLimited,
    ResultTooLarge,
    ToolWithheld,
    UnknownTarget,
)
from gateway.principal import Principal
from gateway.routing.router import Router
from gateway.routing.subscriptions import Subscriptions
from gateway.rpc_errors import to_mcp_error
from gateway.security.audit import AuditLog, Entry
from gateway.security.auth import Authenticator, local_principal
from gateway.security.limits import RateLimiter, bounded
from gateway.security.pinning import Pins
from gateway.security.policy import Policy, resource_name
from gateway.security.validation import ArgumentValidator
from gateway.telemetry import access_log, metrics
from gateway.upstream.caller import Caller
from gateway.upstream.transports import caller_token

ResultT = TypeVar("ResultT", bound=types.Result)
RequestId = str | int | None
# JSON-RPC methods that spend rate-limit budget (so an HTTP front answers 429 for each), and their audit kind.
CALLS = {
    "tools/call": "tool",
    "prompts/get": "prompt",
    "resources/read": "resource",
    "completion/complete": "completion",
    "resources/subscribe": "subscription",
}
METHODS = {kind: method for method, kind in CALLS.items()}
# The backend of the gateway's own tools in audit lines, metrics and access lines; no backend's name can be it.
OWN = "(gateway)"
_OUTCOMES: dict[type[Exception], str] = {
    Forbidden: "denied",  # before UnknownTarget, its base: to the caller a denial looks unknown, not here
    ToolWithheld: "withheld",
    InvalidArguments: "invalid_arguments",
    RateLimited: "rate_limited",
    UnknownTarget: "unknown",
    BackendUnavailable: "unavailable",
    BackendTimeout: "timeout",
    OutcomeUnknown: "outcome_unknown",
    ResultTooLarge: "too_large",
    MCPError: "backend_error",
}


@dataclass(frozen=True)
class Target:
    """What a call names, resolved: its kind, canonical name and owning backend."""

    kind: str
    name: str
    backend: str


class Guard:
    """Authorization, validation, rate limits, result bounds, pinning and audit for every call."""

    def __init__(
        self,
        config: GatewayConfig,
        catalog: Catalog,
        router: Router,
        subscriptions: Subscriptions,
        clock: Callable[[], float] | None = None,
    ) -> None:
        security = config.security
        self.authenticator = Authenticator(security.auth)
        self.local = local_principal(security.auth.local)
        self.policy = Policy(security.policy, auth_enabled=security.auth.enabled)
        self.limiter = RateLimiter(security.limits, clock)
        self.audit = AuditLog(security.audit)
        self.pins = Pins(security.pinning.file)
        self._validator = ArgumentValidator()
        self._security = security
        self._catalog = catalog
        self._router = router
        self._subscriptions = subscriptions
        self.set_backends(config.backends)

    def set_backends(self, backends: Sequence[BackendConfig]) -> None:
        """The backends whose calls this guard sees (their prefixes, result bounds and validation)."""
        self._validated = {b.name for b in backends if _validates(b.validate_arguments, self._security)}
        self._backends = {b.name: b for b in backends}

    # -- lists -----------------------------------------------------------------------------------------------

    def listing(self, principal: Principal, kind: str, style: Style = Style.CANONICAL) -> list[Any]:
        """``tools``, ``prompts``, ``resources`` or ``templates``, as far as ``principal`` may use them."""
        items = self._items(kind, style)
        if self.policy.allows_everything and not self.pins.enabled:
            return items
        self.pins.refresh()
        allowed = self.policy.matcher(principal)
        shown = []
        for item in items:
            name = self.item_name(kind, item)
            if allowed(name) and not (kind == "tools" and self.pins.withheld(name)):
                shown.append(item)
        return shown

    def _items(self, kind: str, style: Style) -> list[Any]:
        if kind == "tools":
            return self._catalog.tools(style)
        if kind == "prompts":
            return self._catalog.prompts(style)
        return self._catalog.resources() if kind == "resources" else self._catalog.templates()

    def item_name(self, kind: str, item: Any) -> str:
        """The name rules match for a listed item: canonical for tools and prompts, ``prefix/uri`` for resources."""
        if kind == "tools":
            return self._canonical(self._catalog.resolve_tool(item.name))
        if kind == "prompts":
            return self._canonical(self._catalog.resolve_prompt(item.name))
        return resource_name(str(item.uri) if kind == "resources" else item.uri_template)

    # -- calls -----------------------------------------------------------------------------------------------

    async def admit(self, principal: Principal, method: str, params: Any, request_id: RequestId = None) -> bool:
        """Spend rate-limit budget early, so an HTTP front can answer 429; True when a budget was charged."""
        kind = CALLS.get(method)
        if kind is None or not self.limiter.active:
            return False
        name = _named(method, params)
        tool = self.tool_name(name) if kind == "tool" and name is not None else None
        if tool is not None and not self.policy.allows(principal, tool):
            tool = None  # a tool's own budget would tell a caller who may not see it that it exists
        try:
            await self.limiter.hit(principal, tool, shown=name)
        except RateLimited as exc:
            shown = tool or (name if isinstance(name, str) else method)
            self.audit.record(Entry(principal.key, kind, shown, None, "rate_limited", 0.0, request_id))
            self._told(method, principal.key, shown, tool, "rate_limited", to_mcp_error(exc).code)
            raise
        return True

    async def admit_session(self, principal: Principal) -> None:
        """Spend a call's worth of the principal's budget on opening a session: one holds memory until it ends."""
        if self.limiter.active:
            await self.limiter.hit(principal)

    async def call_tool(
        self,
        caller: Caller,
        name: str,
        arguments: dict[str, Any] | None,
        meta: Mapping[str, Any] | None = None,
        *,
        request_id: RequestId = None,
        admitted: bool = False,
        input_responses: dict[str, Any] | None = None,
        request_state: str | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        def unchanged_and_valid(target: Target) -> None:
            self.pins.refresh()
            if self.pins.withheld(target.name):
                raise ToolWithheld(name)
            if target.backend in self._validated:
                self._validator.check(target.name, self._catalog.input_schema(name), arguments, shown=name)

        call = _Call(caller, self._principal(caller), "tool", name, arguments, request_id, admitted)
        forward = partial(self._router.call_tool, name, arguments, meta, caller, input_responses, request_state)
        return await self._run(call, partial(self._router.route_tool, name), forward, unchanged_and_valid)

    async def get_prompt(
        self,
        caller: Caller,
        name: str,
        arguments: dict[str, str] | None,
        *,
        request_id: RequestId = None,
        admitted: bool = False,
        input_responses: dict[str, Any] | None = None,
        request_state: str | None = None,
    ) -> types.GetPromptResult | types.InputRequiredResult:
        call = _Call(caller, self._principal(caller), "prompt", name, arguments, request_id, admitted)
        forward = partial(self._router.get_prompt, name, arguments, caller, input_responses, request_state)
        return await self._run(call, partial(self._router.route_prompt, name), forward)

    async def read_resource(
        self,
        caller: Caller,
        uri: str,
        *,
        request_id: RequestId = None,
        admitted: bool = False,
        input_responses: dict[str, Any] | None = None,
        request_state: str | None = None,
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        call = _Call(caller, self._principal(caller), "resource", uri, {"uri": uri}, request_id, admitted)
        forward = partial(self._router.read_resource, uri, caller, input_responses, request_state)
        return await self._run(call, partial(self._catalog.resolve_uri, uri), forward)

    async def complete(
        self,
        caller: Caller,
        params: types.CompleteRequestParams,
        *,
        request_id: RequestId = None,
        admitted: bool = False,
    ) -> types.CompleteResult:
        """Completions reveal argument values, so they need the right to use the prompt or resource they name."""
        principal = self._principal(caller)
        ref = params.ref
        arguments = params.argument.model_dump()
        if isinstance(ref, types.PromptReference):
            call = _Call(caller, principal, "prompt", ref.name, arguments, request_id, admitted, "completion")
            resolve = partial(self._router.route_prompt, ref.name)
        else:
            call = _Call(caller, principal, "resource", ref.uri, arguments, request_id, admitted, "completion")
            resolve = partial(self._catalog.resolve_uri, ref.uri)
        return await self._run(call, resolve, partial(self._router.complete, params, caller))

    async def subscribe(
        self, caller: Caller, uri: str, subscriber: object, *, request_id: RequestId = None, admitted: bool = False
    ) -> types.EmptyResult:
        """Hearing that a resource changed needs the right to read it (``subscriber``: see ``Subscriptions.add``)."""
        call = _Call(
            caller, self._principal(caller), "resource", uri, {"uri": uri}, request_id, admitted, "subscription"
        )
        forward = partial(self._subscriptions.add, subscriber, uri)
        return await self._run(call, partial(self._catalog.resolve_uri, uri), forward)

    async def unsubscribe(self, uri: str, subscriber: object) -> types.EmptyResult:
        return await self._subscriptions.discard(subscriber, [uri])

    async def call_own(
        self,
        caller: Caller,
        name: str,
        arguments: dict[str, Any] | None,
        run: Callable[[], Awaitable[types.CallToolResult]],
        *,
        request_id: RequestId = None,
        admitted: bool = False,
    ) -> types.CallToolResult:
        """A call to one of the gateway's own tools (``gateway.composition``): the principal's rules, budget, audit
        and metrics as for any tool, then ``run``; its backend is ``OWN``, its result unbounded (what it returns
        came from calls bounded each on its own)."""
        call = _Call(caller, self._principal(caller), "tool", name, arguments, request_id, admitted)
        return await self._run(call, lambda: Route(OWN, name), run)

    def may_call_tool(self, principal: Principal, name: str) -> bool:
        """Whether ``principal`` may see and call the catalogue's tool ``name`` (either rendering)."""
        canonical = self.tool_name(name)
        if canonical is None or not self.policy.allows(principal, canonical):
            return False
        self.pins.refresh()
        return not self.pins.withheld(canonical)

    def _principal(self, caller: Caller) -> Principal:
        return caller.principal or self.local

    @property
    def filters(self) -> bool:
        """Whether some principal may see less than the whole catalogue (rules, or tools withheld by pins)."""
        return not self.policy.allows_everything or self.pins.enabled

    # -- the one path --------------------------------------------------------------------------------------

    async def _run(
        self,
        call: _Call,
        resolve: Callable[[], Route],
        forward: Callable[[], Awaitable[ResultT]],
        check: Callable[[Target], None] | None = None,
    ) -> ResultT:
        started = time.perf_counter()
        target: Target | None = None
        outcome, code, owner = "cancelled", 0, None
        metrics.started()
        try:
            target = Target(call.kind, self._canonical(route := resolve()), route.backend)
            if not self.policy.allows(call.principal, target.name):
                raise Forbidden(call.kind, call.name)  # as the caller named it, before any budget: as if unknown
            if not call.admitted:
                tool = target.name if target.kind == "tool" else None
                await self.limiter.hit(call.principal, tool, shown=call.name)
            if check is not None:
                check(target)
            with caller_token(call.principal.token):
                result = await forward()
                if target.backend != OWN:
                    result = bounded(result, self._backends[target.backend])
            outcome = "tool_error" if isinstance(result, types.CallToolResult) and result.is_error else "ok"
            return result
        except (GatewayError, MCPError) as exc:
            outcome = next((label for cls, label in _OUTCOMES.items() if isinstance(exc, cls)), "error")
            code = exc.code if isinstance(exc, MCPError) else to_mcp_error(exc).code
            owner = exc.backend if isinstance(exc, BackendError) else None
            raise
        finally:
            seconds = time.perf_counter() - started
            metrics.finished()
            name, backend = (target.name, target.backend) if target else (call.name, None)
            kind = call.audit_kind or call.kind
            entry = Entry(
                call.principal.key, kind, name, backend, outcome, seconds * 1000, call.request_id, call.arguments
            )
            self.audit.record(entry)
            self._observed(call, target, outcome, code, seconds, owner)

    def _observed(
        self, call: _Call, target: Target | None, outcome: str, code: int, seconds: float, owner: str | None
    ) -> None:
        """A call's metrics and access line: named as the catalogue names it, or ``(unknown)`` in the metrics;
        ``owner``: the backend a failure named, when the name did not resolve (its backend is down)."""
        method = METHODS[call.audit_kind or call.kind]
        era = "2026" if call.caller.modern else "2025"
        backend = target.backend if target else owner
        named = target.name if target and target.kind != "resource" else metrics.NONE
        label = named if target else metrics.UNKNOWN
        code_label = metrics.error_code(code) if code else metrics.NONE
        metrics.call(method, backend or metrics.NONE, label, era, outcome, code_label, seconds)
        if self.audit.enabled:
            metrics.audit_line()
        shown = target.name if target else call.name
        access_log.write(method, shown, call.principal.key, backend, era, seconds, outcome, call.caller.session)

    def _told(self, method: str, principal: str, shown: str, tool: str | None, outcome: str, code: int) -> None:
        """A call refused before the guard took it (the HTTP front's rate-limit admission)."""
        backend = self._catalog.resolve_tool(tool).backend if tool is not None else None
        label = tool or (metrics.UNKNOWN if method == "tools/call" else metrics.NONE)
        metrics.call(method, backend or metrics.NONE, label, metrics.NONE, outcome, metrics.error_code(code), 0.0)
        if self.audit.enabled:
            metrics.audit_line()
        access_log.write(method, shown, principal, backend, None, 0.0, outcome, None)

    def _canonical(self, route: Route) -> str:
        if route.backend == OWN:
            return route.original
        return canonical_name(self._backends[route.backend].exposed_prefix, route.original)

    def prompt_name(self, name: str) -> str | None:
        """The canonical name of the catalogue's prompt ``name`` (either rendering), or ``None`` if it has none."""
        try:
            return self._canonical(self._catalog.resolve_prompt(name))
        except UnknownTarget:
            return None

    def tool_name(self, name: str) -> str | None:
        """The canonical name of the catalogue's tool ``name`` (either rendering), or ``None`` if it has none."""
        try:
            return self._canonical(self._catalog.resolve_tool(name))
        except UnknownTarget:
            return None


@dataclass(frozen=True)
class _Call:
    caller: Caller
    principal: Principal
    kind: str
    name: str
    arguments: Any
    request_id: RequestId
    admitted: bool = False
    audit_kind: str | None = None


def _validates(backend: bool | None, security: SecurityConfig) -> bool:
    """A backend's own ``validate_arguments`` wins over the global one."""
    return security.validate_arguments if backend is None else backend


def _named(method: str, params: Any) -> str | None:
    """The name or URI a rated request names (a completion: its reference's)."""
    named = params.get("ref") if method == "completion/complete" and isinstance(params, Mapping) else params
    if not isinstance(named, Mapping):
        return None
    value = named.get("uri" if "uri" in named else "name")
    return value if isinstance(value, str) else None
