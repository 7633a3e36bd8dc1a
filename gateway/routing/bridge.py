"""A backend that asks mid-call, bridged to a 2026 client, which takes no requests mid-call but answers rounds.

On a 2025 link a backend asks the client things (sampling, elicitation, roots) on the call's own stream and waits.
A 2026-07-28 client cannot be asked mid-call; it answers ``input_required`` results and retries. So for a 2026
client that declared the capability, the gateway runs the call on in a task of its own and answers the client's
request with ``input_required``: the backend's questions, and a request state naming the parked call (sealed to
the caller and the request, see ``gateway.routing.resume``). The retry's answers go to the backend, which goes on with
the call; the retry gets the result, or the next questions.

Every wait is bounded: a question the client does not answer within the backend's ``call_timeout`` gets an error,
and the call's own deadline ends it. A client that goes away while a round is waiting cancels the call at the
backend.

A parked call cannot move: it is a request in flight on this process's link to the backend. With a shared store,
its retry can land anywhere: the request state names the replica that parked it (sealed, so it cannot be
redirected), and a replica that gets a retry for another's call relays the round to it over the store (publish to
the owner's channel, answer on a channel of the retry's own) and answers with what comes back; the round's
progress and log messages are not relayed. A replica that is gone loses its parked calls: a retry for one is
refused (``-32602``) at once, as nobody listens on its channel, and the client starts the call again.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

import anyio
from anyio.abc import TaskGroup, TaskStatus
from mcp import MCPError, types
from mcp.types import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, REQUEST_TIMEOUT
from pydantic import BaseModel, TypeAdapter, ValidationError

from gateway.cluster.store import Store
from gateway.errors import BackendUnavailable, GatewayError, InvalidRequestState, StoreUnavailable
from gateway.routing.resume import StateSeal
from gateway.rpc_errors import to_mcp_error
from gateway.upstream.caller import Caller

logger = logging.getLogger(__name__)
ResultT = TypeVar("ResultT", bound=BaseModel)
Send = Callable[[Caller], Awaitable[ResultT | types.InputRequiredResult]]
MAX_PARKED = 1024
_CAPABILITY = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}
_QUESTION: TypeAdapter[types.InputRequest] = TypeAdapter(types.InputRequest)
CHANNEL = "mcp-gateway:bridge:"
RELAY_MARGIN = 5.0
RESUBSCRIBE_DELAY = 1.0
_RESULTS: dict[str, type[BaseModel]] = {
    "tools/call": types.CallToolResult,
    "prompts/get": types.GetPromptResult,
    "resources/read": types.ReadResourceResult,
}


def can_answer(caller: Caller) -> bool:
    """Whether a 2026 caller declared any capability a backend's mid-call request needs."""
    declared = caller.capabilities
    return declared is not None and any(getattr(declared, name) is not None for name in _CAPABILITY.values())


@dataclass(eq=False)
class _Question:
    request: types.InputRequest
    answered: anyio.Event = field(default_factory=anyio.Event)
    reply: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class _Done:
    result: Any = None
    error: Exception | None = None


class _Parked:
    """One bridged call: the ``Sink`` its backend talks to, and the events its rounds wait for."""

    def __init__(self, caller: Caller, patience: float) -> None:
        self.caller = caller
        self.patience = patience
        self.scope = anyio.CancelScope()
        self.asked: dict[str, _Question] = {}
        self.expires = 0.0
        self._events: deque[_Question | _Done] = deque()
        self._arrived = anyio.Event()
        self._count = 0

    def _put(self, event: _Question | _Done) -> None:
        self._events.append(event)
        self._arrived.set()

    async def next(self) -> list[_Question] | _Done:
        """The call's result, or the questions the backend has asked (all those asked at once)."""
        while not self._events:
            self._arrived = anyio.Event()
            await self._arrived.wait()
        first = self._events.popleft()
        if isinstance(first, _Done):
            return first
        questions = [first]
        while self._events and isinstance(self._events[0], _Question):
            questions.append(self._events.popleft())  # type: ignore[arg-type]
        return questions

    def key(self) -> str:
        self._count += 1
        return f"q{self._count}"

    async def run(self, send: Send[Any]) -> None:
        with self.scope:
            try:
                done = _Done(result=await send(replace(self.caller, sink=self)))
            except Exception as exc:
                done = _Done(error=exc)
            self._put(done)

    async def notify(self, message: dict[str, Any]) -> None:
        """Progress and log messages go to the round in progress, if its client still listens."""
        if self.caller.sink is not None:
            try:
                await self.caller.sink.notify(message)
            except Exception as exc:
                logger.debug("a parked call's %s found no listener: %s", message.get("method"), exc)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        method = str(message.get("method"))
        needs = _CAPABILITY.get(method)
        if needs is None:
            return _error(METHOD_NOT_FOUND, f"the gateway does not relay {method!r} requests")
        if getattr(self.caller.capabilities, needs, None) is None:
            return _error(INVALID_REQUEST, f"the client did not declare the capability {method!r} needs")
        try:
            question = _Question(_QUESTION.validate_python(message, by_name=False))
        except ValidationError as exc:
            return _error(INVALID_PARAMS, f"invalid {method} request: {exc.error_count()} errors")
        self._put(question)
        with anyio.move_on_after(self.patience):
            await question.answered.wait()
            return question.reply
        return _error(REQUEST_TIMEOUT, f"the client did not answer {method!r} within {self.patience:g} s")


class Bridge:
    """Parked calls by the token their request state carries; ``run`` hosts the calls' tasks (and, with a shared
    ``store``, answers rounds relayed by other replicas)."""

    def __init__(self, seal: StateSeal, store: Store | None = None) -> None:
        self._seal = seal
        self._store = store
        self._replica = secrets.token_hex(8)
        self._parked: dict[str, _Parked] = {}
        self._tg: TaskGroup | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as self._tg:
            if self._store is not None:
                await self._tg.start(self._serve_relays, self._store)
            task_status.started()
            await anyio.sleep_forever()

    async def call(
        self,
        target: str,
        caller: Caller,
        send: Send[ResultT],
        patience: float,
        input_responses: dict[str, Any] | None,
        request_state: str | None,
    ) -> ResultT | types.InputRequiredResult:
        """The first round (no ``request_state``) starts the call; a retry answers the questions it was asked."""
        if request_state is None:
            parked = self._start(caller, send, patience)
        else:
            token = self._seal.open(request_state, target, caller.identity)
            owner = token.partition(".")[0]
            if token not in self._parked and owner != self._replica and self._store is not None:
                relayed = await self._relay(self._store, owner, token, target, input_responses or {}, patience)
                return cast("ResultT | types.InputRequiredResult", relayed)
            parked = self._resume(token, caller, input_responses or {})
        return cast("ResultT | types.InputRequiredResult", await self._round(parked, target))

    def _start(self, caller: Caller, send: Send[Any], patience: float) -> _Parked:
        self._sweep()
        if self._tg is None or len(self._parked) >= MAX_PARKED:
            raise BackendUnavailable("gateway", "too many calls are waiting for their clients' answers")
        parked = _Parked(caller, patience)
        self._tg.start_soon(parked.run, send)
        return parked

    def _resume(self, token: str, caller: Caller, responses: dict[str, Any]) -> _Parked:
        parked = self._parked.pop(token, None)
        if parked is None:
            raise InvalidRequestState()
        parked.caller = replace(parked.caller, sink=caller.sink)
        for key, question in parked.asked.items():
            answer = responses.get(key)
            question.reply = {"result": answer} if answer is not None else _error(INVALID_PARAMS, "no answer given")
            question.answered.set()
        parked.asked = {}
        return parked

    async def _round(self, parked: _Parked, target: str) -> Any:
        """Wait for the call's result or the backend's next questions."""
        try:
            event = await parked.next()
        except anyio.get_cancelled_exc_class():
            parked.scope.cancel()
            raise
        if isinstance(event, _Done):
            if event.error is not None:
                raise event.error
            return event.result
        questions = event
        parked.asked = {parked.key(): question for question in questions}
        token = f"{self._replica}.{secrets.token_urlsafe(18)}"
        parked.expires = anyio.current_time() + parked.patience
        self._parked[token] = parked
        requests = {key: question.request for key, question in parked.asked.items()}
        state = self._seal.seal(token, target, parked.caller.identity)
        return types.InputRequiredResult(input_requests=requests, request_state=state)

    async def _relay(
        self, store: Store, owner: str, token: str, target: str, responses: dict[str, Any], patience: float
    ) -> Any:
        """Have the replica that parked the call run this round; its answer, as if the round had run here."""
        reply = f"{CHANNEL}reply:{secrets.token_hex(12)}"
        asked = {"token": token, "target": target, "responses": responses, "reply": reply}
        try:
            async with store.subscribe(reply) as replies:
                if not await store.publish(CHANNEL + owner, json.dumps(asked).encode()):
                    raise InvalidRequestState()
                with anyio.move_on_after(patience + RELAY_MARGIN):
                    return _decoded(json.loads(await anext(replies)), target)
        except StoreUnavailable as exc:
            raise BackendUnavailable("gateway", "the replica holding this call cannot be reached") from exc
        raise BackendUnavailable("gateway", "the replica holding this call did not answer in time")

    async def _serve_relays(self, store: Store, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Answer rounds other replicas relay here, for as long as the gateway runs; a lost store is retried."""
        started = False
        while True:
            try:
                async with store.subscribe(CHANNEL + self._replica) as asked:
                    if not started:
                        started = True
                        task_status.started()
                    async for message in asked:
                        assert self._tg is not None
                        self._tg.start_soon(self._answer_relay, store, message)
            except StoreUnavailable as exc:
                logger.warning("bridged calls cannot be resumed from other replicas: %s", exc)
            if not started:
                started = True
                task_status.started()
            await anyio.sleep(RESUBSCRIBE_DELAY)

    async def _answer_relay(self, store: Store, message: bytes) -> None:
        """Run a relayed round (its client's sink is on the other replica, so this one has none)."""
        try:
            asked = json.loads(message)
            reply, token, target = str(asked["reply"]), str(asked["token"]), str(asked["target"])
            responses = dict(asked["responses"])
        except (ValueError, KeyError, TypeError):
            return
        try:
            answer = _encoded(await self._round(self._resume(token, Caller(), responses), target))
        except (GatewayError, MCPError) as exc:
            error = to_mcp_error(exc) if isinstance(exc, GatewayError) else exc
            answer = {"error": error.error.model_dump(mode="json", exclude_none=True)}
        try:
            await store.publish(reply, json.dumps(answer).encode())
        except StoreUnavailable as exc:
            logger.warning("a relayed round's answer was lost: %s", exc)

    def _sweep(self) -> None:
        """Forget parked calls whose client never came back (their questions have been answered with an error)."""
        now = anyio.current_time()
        for token in [t for t, parked in self._parked.items() if parked.expires < now]:
            del self._parked[token]


def _encoded(result: BaseModel) -> dict[str, Any]:
    kind = "inputRequired" if isinstance(result, types.InputRequiredResult) else "result"
    return {kind: result.model_dump(by_alias=True, mode="json", exclude_none=True)}


def _decoded(answer: dict[str, Any], target: str) -> BaseModel:
    """A relayed round's answer: the result the request's method has, the next questions, or the error raised."""
    if "error" in answer:
        error = types.ErrorData.model_validate(answer["error"])
        raise MCPError(error.code, error.message, error.data)
    if "inputRequired" in answer:
        return types.InputRequiredResult.model_validate(answer["inputRequired"], by_name=False)
    return _RESULTS[target.partition("\0")[0]].model_validate(answer["result"], by_name=False)


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
