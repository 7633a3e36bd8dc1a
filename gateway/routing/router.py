"""Routing: an exposed name or URI in, the owning backend's answer out.

Names resolve through the catalogue's lookup table. Results come back as the backend sent them, with two
changes: resource URIs inside them get the backend's prefix (so a client can read what a tool or prompt points
at through the gateway), and the backend's own ``serverInfo`` stamp is removed (the gateway stamps its own).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from mcp import types
from mcp.types import LOG_LEVEL_META_KEY
from pydantic import BaseModel

from gateway.catalogue.catalog import Catalog, Route
from gateway.catalogue.naming import expose_uri
from gateway.cluster.store import Store
from gateway.config import NamingConfig
from gateway.errors import BackendMisbehaved, BackendUnavailable, UnknownTarget
from gateway.routing.bridge import Bridge, can_answer
from gateway.routing.resume import MAX_ROUNDS, StateSeal, answers
from gateway.upstream import calls
from gateway.upstream.backend import State, Upstream
from gateway.upstream.caller import ANONYMOUS, Caller

ModelT = TypeVar("ModelT", bound=BaseModel)
_RESERVED_META = "io.modelcontextprotocol/"
_WIRE = {"progress_token": "progressToken"}  # the SDK's parsed ``_meta`` uses the field name


class Router:
    """Forwards requests to the backend that owns them."""

    def __init__(
        self,
        catalog: Catalog,
        upstreams: Mapping[str, Upstream],
        naming: NamingConfig,
        seal: StateSeal | None = None,
        store: Store | None = None,
    ) -> None:
        """``seal`` and ``store``: shared by the replicas, so each resumes what another started."""
        self._catalog = catalog
        self._upstreams = upstreams
        self._naming = naming
        self._seal = seal or StateSeal()
        self.bridge = Bridge(self._seal, store)

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        meta: Mapping[str, Any] | None = None,
        caller: Caller = ANONYMOUS,
        input_responses: dict[str, Any] | None = None,
        request_state: str | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """``caller``, here and below: who the request is for (its session, where in-call messages go).

        ``input_responses`` and ``request_state``, here and below, make a multi-round retry (see ``_rounds``).
        """
        route = self._resolve(name, self._catalog.resolve_tool)
        upstream = self._upstreams[route.backend]
        meta = _forwardable(meta, caller)

        def send(resume: dict[str, Any], who: Caller) -> Awaitable[types.CallToolResult | types.InputRequiredResult]:
            return calls.call_tool(upstream, route.original, arguments, meta, who, resume, shown=name)

        rounds = _Rounds(f"tools/call\0{route.backend}\0{route.original}", caller, input_responses, request_state)
        return await self._rounds(upstream, rounds, send)

    async def get_prompt(
        self,
        name: str,
        arguments: dict[str, str] | None,
        caller: Caller = ANONYMOUS,
        input_responses: dict[str, Any] | None = None,
        request_state: str | None = None,
    ) -> types.GetPromptResult | types.InputRequiredResult:
        route = self._resolve(name, self._catalog.resolve_prompt)
        upstream = self._upstreams[route.backend]

        def send(
            resume: dict[str, Any], caller: Caller
        ) -> Awaitable[types.GetPromptResult | types.InputRequiredResult]:
            return calls.get_prompt(upstream, route.original, arguments, caller, resume, shown=name)

        rounds = _Rounds(f"prompts/get\0{route.backend}\0{route.original}", caller, input_responses, request_state)
        return await self._rounds(upstream, rounds, send)

    async def read_resource(
        self,
        uri: str,
        caller: Caller = ANONYMOUS,
        input_responses: dict[str, Any] | None = None,
        request_state: str | None = None,
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        route = self._catalog.resolve_uri(uri)
        upstream = self._upstreams[route.backend]

        def send(
            resume: dict[str, Any], caller: Caller
        ) -> Awaitable[types.ReadResourceResult | types.InputRequiredResult]:
            return calls.read_resource(upstream, route.original, caller, resume)

        target = f"resources/read\0{route.backend}\0{route.original}"
        return await self._rounds(upstream, _Rounds(target, caller, input_responses, request_state), send)

    async def _rounds(
        self,
        upstream: Upstream,
        rounds: _Rounds,
        send: Callable[[dict[str, Any], Caller], Awaitable[ModelT | types.InputRequiredResult]],
    ) -> ModelT | types.InputRequiredResult:
        """A request that may take several rounds (see ``gateway.routing.resume``): a 2026 client gets
        ``input_required`` with the state sealed to it; for a 2025 client the gateway asks the questions and retries
        itself. A 2025 link's backend asks mid-call instead, which a 2026 client answers in rounds (see
        ``gateway.routing.bridge``)."""
        caller = rounds.caller
        if caller.modern and not upstream.modern and can_answer(caller):
            result = await self.bridge.call(
                rounds.target,
                caller,
                partial(send, {}),
                upstream.config.call_timeout,
                rounds.input_responses,
                rounds.request_state,
            )
            return result if isinstance(result, types.InputRequiredResult) else self._rewrite(upstream, result)
        resume: dict[str, Any] = {}
        if rounds.request_state is not None:
            resume["requestState"] = self._seal.open(rounds.request_state, rounds.target, caller.identity)
        if rounds.input_responses:
            resume["inputResponses"] = rounds.input_responses
        for _ in range(MAX_ROUNDS):
            result = await send(resume, caller)
            if not isinstance(result, types.InputRequiredResult):
                return self._rewrite(upstream, result)
            if caller.modern or caller.sink is None:
                if result.request_state is not None:
                    sealed = self._seal.seal(result.request_state, rounds.target, caller.identity)
                    result = result.model_copy(update={"request_state": sealed})
                return result
            resume = {"inputResponses": await answers(caller.sink, result)}
            if result.request_state is not None:
                resume["requestState"] = result.request_state
        raise BackendMisbehaved(upstream.name, f"still asking for input after {MAX_ROUNDS} rounds")

    async def complete(self, params: types.CompleteRequestParams, caller: Caller = ANONYMOUS) -> types.CompleteResult:
        ref = params.ref
        if isinstance(ref, types.PromptReference):
            route = self._resolve(ref.name, self._catalog.resolve_prompt)
            forwarded: types.PromptReference | types.ResourceTemplateReference = ref.model_copy(
                update={"name": route.original}
            )
        else:
            route = self._catalog.resolve_uri(ref.uri)
            forwarded = ref.model_copy(update={"uri": route.original})
        upstream = self._upstreams[route.backend]
        return await calls.complete(upstream, params.model_copy(update={"ref": forwarded, "meta": None}), caller)

    def end_session(self, session: str) -> None:
        """A downstream session ended: close the backend sessions it had."""
        for upstream in self._upstreams.values():
            if upstream.sessions is not None:
                upstream.sessions.end(session)

    def route_tool(self, name: str) -> Route:
        return self._resolve(name, self._catalog.resolve_tool)

    def route_prompt(self, name: str) -> Route:
        return self._resolve(name, self._catalog.resolve_prompt)

    def _resolve(self, name: str, lookup: Callable[[str], Route]) -> Route:
        """Look a name up; a name under the prefix of a backend that is down names that backend instead."""
        try:
            return lookup(name)
        except UnknownTarget:
            for upstream in self._upstreams.values():
                prefix = upstream.config.exposed_prefix
                down = upstream.state is not State.READY
                if down and prefix and name.startswith((f"{prefix}/", f"{prefix}{self._naming.separator}")):
                    raise BackendUnavailable(upstream.name, upstream.error or upstream.state.value) from None
            raise

    def _rewrite(self, upstream: Upstream, result: ModelT) -> ModelT:
        prefix = upstream.config.exposed_prefix
        meta = result.meta if isinstance(result, types.Result) else None
        if meta and types.SERVER_INFO_META_KEY in meta:
            meta = {k: v for k, v in meta.items() if k != types.SERVER_INFO_META_KEY}
            result = result.model_copy(update={"meta": meta or None})
        if not prefix:
            return result
        if isinstance(result, types.CallToolResult):
            return result.model_copy(update={"content": [_content(prefix, c) for c in result.content]})
        if isinstance(result, types.ReadResourceResult):
            contents = [c.model_copy(update={"uri": expose_uri(prefix, str(c.uri))}) for c in result.contents]
            return result.model_copy(update={"contents": contents})
        if isinstance(result, types.GetPromptResult):
            messages = [m.model_copy(update={"content": _content(prefix, m.content)}) for m in result.messages]
            return result.model_copy(update={"messages": messages})
        return result


@dataclass(frozen=True)
class _Rounds:
    """One multi-round request: what its request state is sealed to, and the client's answers so far."""

    target: str
    caller: Caller
    input_responses: dict[str, Any] | None
    request_state: str | None


def _content(prefix: str, block: Any) -> Any:
    """Prefix the URI of a resource link or an embedded resource; other content passes untouched."""
    if isinstance(block, types.ResourceLink):
        return block.model_copy(update={"uri": expose_uri(prefix, str(block.uri))})
    if isinstance(block, types.EmbeddedResource):
        inner = block.resource.model_copy(update={"uri": expose_uri(prefix, str(block.resource.uri))})
        return block.model_copy(update={"resource": inner})
    return block


def _forwardable(meta: Mapping[str, Any] | None, caller: Caller) -> dict[str, Any] | None:
    """The caller's own ``_meta`` entries and its progress token; protocol keys belong to its connection, not ours,
    except the log level it wants, which the backend is asked for."""
    kept = {_WIRE.get(k, k): v for k, v in (meta or {}).items() if not k.startswith(_RESERVED_META)}
    if caller.log_level is not None:
        kept[LOG_LEVEL_META_KEY] = caller.log_level
    return kept or None
