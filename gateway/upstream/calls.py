"""Requests to one backend: deadlines, the circuit breakers, and what happens when a connection drops mid-call.

A request is never retried blindly. When the connection turns out to be gone before the backend saw the request
(a session the backend no longer knows, a stream already closed), it is sent again once over the new
connection. When the connection drops while the request is in flight, only requests that are safe to repeat go
again: reads, prompts, completions, and tools that declare ``readOnlyHint`` or ``idempotentHint`` or are listed in
the backend's ``idempotent_tools``. Any other tool call ends with ``OutcomeUnknown``.

Failures are judged by what failed. The link (an HTTP backend refusing connections or forgetting our session, a
stdio process that exited, the one stream of an SSE backend) takes the backend down and counts against its breaker.
What fails inside one call's exchange (its own HTTP connection closed while the request was written or its response
cut short, an invalid or oversized answer, its deadline) fails that call only, counts against the breaker of that
tool or prompt (``Breakers``), and has the link probed in case it is more than that.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar

import anyio
from mcp import Client, types
from pydantic import BaseModel

from gateway.config import Transport
from gateway.errors import BackendMisbehaved, BackendTimeout, BackendUnavailable, OutcomeUnknown, ResultTooLarge
from gateway.telemetry import metrics
from gateway.telemetry.tracing import answered
from gateway.upstream.backend import State, Upstream
from gateway.upstream.breaker import CircuitOpen
from gateway.upstream.caller import ANONYMOUS, Caller
from gateway.upstream.exchange import SdkLink, exchange
from gateway.upstream.link import (
    AnswerTooLarge,
    BackendRejected,
    ConnectionLost,
    InvalidAnswer,
    LinkClosed,
    NotDelivered,
    SessionGone,
    TimedOut,
    UpstreamLink,
)

ResultT = TypeVar("ResultT", bound=BaseModel)
# The longest a request waits for its backend's connection to come back before it is sent again: a caller learns
# at once, or nearly, that a backend is gone, and a backend that merely restarted still serves it.
REPLAY_WAIT = 1.0


class _NotDelivered(Exception):
    """The backend never saw the request: sending it again is safe."""


class _Lost(Exception):
    """The connection dropped while the request was in flight."""


async def call_tool(
    upstream: Upstream,
    name: str,
    arguments: dict[str, Any] | None,
    meta: dict[str, Any] | None = None,
    caller: Caller = ANONYMOUS,
    resume: dict[str, Any] | None = None,
    *,
    shown: str | None = None,
) -> types.CallToolResult | types.InputRequiredResult:
    """``resume``: a multi-round retry's ``inputResponses`` and ``requestState``, as the backend expects them;
    ``shown``: the name as the client wrote it, for the errors it gets (``name`` is the backend's own)."""
    params = _params(name=name, arguments=arguments, _meta=meta, **(resume or {}))
    timeout = upstream.config.tool_timeouts.get(name, upstream.config.call_timeout)
    replayable = _replayable(upstream, name)
    started, failed = upstream.stats.clock(), True
    try:
        result = await _send(
            upstream,
            "tools/call",
            params,
            types.CallToolResult,
            caller,
            timeout,
            replayable=replayable,
            what=name,
            shown=shown,
        )
        failed = isinstance(result, types.CallToolResult) and result.is_error
        return result
    finally:
        upstream.stats.record(started, failed)


async def read_resource(
    upstream: Upstream, uri: str, caller: Caller = ANONYMOUS, resume: dict[str, Any] | None = None
) -> types.ReadResourceResult | types.InputRequiredResult:
    params = {"uri": uri, **(resume or {})}
    return await _send(upstream, "resources/read", params, types.ReadResourceResult, caller)


async def get_prompt(
    upstream: Upstream,
    name: str,
    arguments: dict[str, str] | None,
    caller: Caller = ANONYMOUS,
    resume: dict[str, Any] | None = None,
    *,
    shown: str | None = None,
) -> types.GetPromptResult | types.InputRequiredResult:
    params = _params(name=name, arguments=arguments, **(resume or {}))
    return await _send(upstream, "prompts/get", params, types.GetPromptResult, caller, what=name, shown=shown)


async def complete(
    upstream: Upstream, params: types.CompleteRequestParams, caller: Caller = ANONYMOUS
) -> types.CompleteResult:
    wire = params.model_dump(by_alias=True, mode="json", exclude_none=True)
    result = await _send(upstream, "completion/complete", wire, types.CompleteResult, caller)
    if isinstance(result, types.InputRequiredResult):
        raise BackendMisbehaved(upstream.name, "input_required is no answer to completion/complete")
    return result


def _params(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _replayable(upstream: Upstream, name: str) -> bool:
    if name in upstream.config.idempotent_tools:
        return True
    annotations = tool.annotations if (tool := upstream.tools.get(name)) else None
    return bool(annotations and (annotations.read_only_hint or annotations.idempotent_hint))


async def _send(
    upstream: Upstream,
    method: str,
    params: dict[str, Any],
    result_type: type[ResultT],
    caller: Caller,
    deadline: float | None = None,
    *,
    replayable: bool = True,
    what: str = "",
    shown: str | None = None,
) -> ResultT | types.InputRequiredResult:
    """Send; after a dropped connection, once more if that is safe, and after a connection the backend never got
    the request on, once more over the next connection: three sends at most. ``what`` keys the call's breaker;
    errors name ``shown``, what the client called, when given. A backend being retired ends it (``Pending``)."""
    deadline = deadline or upstream.config.call_timeout
    key = f"{method} {what}" if what else None
    label = f"{method} {shown or what}"
    lost = undelivered = False
    with upstream.pending.track():
        while True:
            try:
                return await _once(upstream, method, params, result_type, deadline, caller, key, label)
            except _Lost:
                if not replayable:
                    raise OutcomeUnknown(upstream.name, shown or what) from None
                if lost:
                    raise BackendUnavailable(upstream.name, "the connection dropped again") from None
                lost = True
                await _reconnected(upstream, checked=True)
            except _NotDelivered as exc:
                if undelivered:
                    raise BackendUnavailable(upstream.name, str(exc)) from None
                undelivered = True
                await _reconnected(upstream)


async def _reconnected(upstream: Upstream, *, checked: bool = False) -> None:
    """Wait at most ``REPLAY_WAIT`` for a connection to send the request again on: the link the probe ``checked``
    passed, or the one the supervisor brings back. A backend that is back within it serves the request; one that is
    down fails it with the reason."""
    with anyio.move_on_after(REPLAY_WAIT):
        if checked:
            await upstream.checked()
        await upstream.ready.wait()
        return
    raise BackendUnavailable(upstream.name, upstream.error or f"no working connection within {REPLAY_WAIT:g} s")


async def _once(
    upstream: Upstream,
    method: str,
    params: dict[str, Any],
    result_type: type[ResultT],
    deadline: float,
    caller: Caller,
    key: str | None,
    label: str,
) -> ResultT | types.InputRequiredResult:
    client, link = upstream.client, upstream.link
    if client is None or link is None or upstream.state is not State.READY:
        raise BackendUnavailable(upstream.name, upstream.error or upstream.state.value)
    _admit(upstream, key, label)
    if upstream.sessions is None:
        return await _sent(upstream, client, link, method, params, result_type, deadline, caller, key)
    try:
        async with upstream.sessions.lease(caller.session_key, caller.sink) as lease:
            own = SdkLink(lease.client)
            try:
                return await _sent(upstream, lease.client, own, method, params, result_type, deadline, caller, key)
            except (_NotDelivered, _Lost):
                lease.discard()
                raise
    except BackendUnavailable:
        upstream.breaker.abandon()
        upstream.call_breakers.abandon(key)
        raise


def _admit(upstream: Upstream, key: str | None, label: str) -> None:
    """Both breakers must let the call through; a trial one of them granted is handed back if the other refuses."""
    try:
        upstream.breaker.admit()
    except CircuitOpen as exc:
        raise BackendUnavailable(upstream.name, str(exc)) from None
    try:
        upstream.call_breakers.admit(key)
    except CircuitOpen as exc:
        upstream.breaker.abandon()
        raise BackendUnavailable(upstream.name, f"{label}: {exc}") from None


async def _sent(
    upstream: Upstream,
    client: Client,
    link: UpstreamLink,
    method: str,
    params: dict[str, Any],
    result_type: type[ResultT],
    deadline: float,
    caller: Caller,
    key: str | None,
) -> ResultT | types.InputRequiredResult:
    """``_request``; while tracing is on, in a CLIENT span whose trace context the request carries to the backend."""
    tracing = upstream.tracing
    if tracing is None:
        return await _request(upstream, client, link, method, params, result_type, deadline, caller, key)
    transport, version = upstream.config.transport.value, upstream.protocol_version
    with tracing.calling(upstream.name, method, params, transport=transport, version=version) as call:
        try:
            result = await _request(upstream, client, link, method, call.params, result_type, deadline, caller, key)
        except _Lost:
            call.lost("connection_lost")
            raise
        except _NotDelivered:
            call.lost("not_delivered")
            raise
        answered(call.span, result)
        return result


async def _request(
    upstream: Upstream,
    client: Client,
    link: UpstreamLink,
    method: str,
    params: dict[str, Any],
    result_type: type[ResultT],
    deadline: float,
    caller: Caller,
    key: str | None,
) -> ResultT | types.InputRequiredResult:
    """One request over one link (``client``'s), its outcome fed to the breakers and its time to the metrics."""
    started = time.perf_counter()
    try:
        result = await exchange(link, method, params, result_type, deadline, caller)
    except BackendRejected as exc:
        _answered(upstream, key)
        raise exc.error from None
    except TimedOut:
        _exchange_failed(upstream, key, answered=False)
        raise BackendTimeout(upstream.name, deadline) from None
    except SessionGone as exc:
        _link_failed(upstream, client, key, "the backend no longer knows our session (it restarted)")
        raise _NotDelivered(str(exc)) from None
    except ConnectionLost as exc:
        if _exchange_only(upstream, client):
            _exchange_failed(upstream, key, answered=False)
        else:
            _link_failed(upstream, client, key, f"connection lost ({exc})")
        raise _Lost(str(exc)) from None
    except LinkClosed:
        _link_failed(upstream, client, key, "the connection is closed")
        raise _NotDelivered("the connection is closed") from None
    except NotDelivered as exc:
        _exchange_failed(upstream, key, answered=False)
        raise _NotDelivered(str(exc)) from None
    except AnswerTooLarge as exc:
        _exchange_failed(upstream, key)
        raise ResultTooLarge(upstream.name, exc.limit + 1, exc.limit) from None
    except InvalidAnswer as exc:
        _exchange_failed(upstream, key)
        raise BackendMisbehaved(upstream.name, str(exc)) from None
    except BaseException:
        upstream.breaker.abandon()
        upstream.call_breakers.abandon(key)
        raise
    finally:
        metrics.backend_call(upstream.name, method, time.perf_counter() - started)
    _answered(upstream, key)
    return result


def _exchange_only(upstream: Upstream, client: Client) -> bool:
    """Whether a dropped connection was the call's own: each streamable-HTTP request has its own response (and
    the link's end is seen by the transport), and a per-client connection is one caller's."""
    return client is not upstream.client or upstream.config.transport is Transport.STREAMABLE_HTTP


def _answered(upstream: Upstream, key: str | None) -> None:
    """The backend answered (its own error included): the link and the tool both work."""
    upstream.breaker.success()
    upstream.call_breakers.success(key)


def _exchange_failed(upstream: Upstream, key: str | None, *, answered: bool = True) -> None:
    """One call's exchange failed: the tool's breaker counts it; unless the backend answered at all, which proves
    the link, the link is probed."""
    upstream.call_breakers.failure(key)
    if answered:
        upstream.breaker.success()
    else:
        upstream.breaker.abandon()
        upstream.suspect()


def _link_failed(upstream: Upstream, client: Client, key: str | None, reason: str) -> None:
    """The connection itself is gone: the backend's breaker counts it and the supervisor reconnects."""
    upstream.call_breakers.abandon(key)
    if client is upstream.client:
        upstream.breaker.failure()
        upstream.lose(reason, client)
    else:
        upstream.breaker.abandon()
