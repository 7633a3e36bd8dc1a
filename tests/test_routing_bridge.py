"""``gateway.routing.bridge``: a backend's mid-call requests turned into ``input_required`` rounds of a 2026 client,
its retries' answers carried back, and every wait bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import pytest
from mcp import MCPError, types
from mcp.types import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, REQUEST_TIMEOUT

from gateway.cluster.store import MemoryStore, Store
from gateway.errors import BackendTimeout, BackendUnavailable, InvalidRequestState
from gateway.routing.bridge import Bridge, can_answer
from gateway.routing.resume import StateSeal
from gateway.upstream.caller import Caller
from tests.support.sinks import RecordingSink

pytestmark = pytest.mark.anyio
T = TypeVar("T")
TARGET = "tools/call\0legacy\0greet"
ELICIT = {
    "method": "elicitation/create",
    "params": {"message": "Your name?", "requestedSchema": {"type": "object", "properties": {}}},
}
CAN_ELICIT = types.ClientCapabilities(elicitation=types.ElicitationCapability())


def caller(identity: str = "alice", capabilities: types.ClientCapabilities | None = CAN_ELICIT) -> Caller:
    return Caller(identity=identity, capabilities=capabilities, sink=RecordingSink())


@pytest.fixture
async def bridge() -> AsyncIterator[Bridge]:
    bridge = Bridge(StateSeal())
    async with anyio.create_task_group() as tg:
        await tg.start(bridge.run)
        yield bridge
        tg.cancel_scope.cancel()


class Backend:
    """A call on a 2025 link that asks the client ``questions`` mid-call, then answers with what it was told."""

    def __init__(self, *questions: dict[str, Any]) -> None:
        self.questions = questions or (ELICIT,)
        self.replies: list[dict[str, Any]] = []
        self.done = anyio.Event()

    async def __call__(self, who: Caller) -> types.CallToolResult:
        assert who.sink is not None
        try:
            async with anyio.create_task_group() as tg:  # asked at once, as a backend may
                for question in self.questions:
                    tg.start_soon(self._ask, who, question)
        finally:
            self.done.set()
        return types.CallToolResult(content=[types.TextContent(type="text", text=repr(self.replies))])

    async def _ask(self, who: Caller, question: dict[str, Any]) -> None:
        assert who.sink is not None
        self.replies.append(await who.sink.request(question))


async def bounded(call: Awaitable[T]) -> T:
    """A round, which must end well within the test's time."""
    with anyio.fail_after(5):
        return await call


def test_only_a_caller_that_declared_sampling_elicitation_or_roots_can_answer() -> None:
    assert not can_answer(Caller())
    assert not can_answer(Caller(capabilities=types.ClientCapabilities()))
    assert not can_answer(Caller(capabilities=types.ClientCapabilities(experimental={"x": {}})))
    for declared in ("sampling", "elicitation", "roots"):
        capabilities = types.ClientCapabilities.model_validate({declared: {}})
        assert can_answer(Caller(capabilities=capabilities)), declared


async def test_a_question_becomes_a_round_and_the_retrys_answer_reaches_the_backend(bridge: Bridge) -> None:
    backend, alice = Backend(), caller()
    first = await bounded(bridge.call(TARGET, alice, backend, 5.0, None, None))
    assert isinstance(first, types.InputRequiredResult) and first.request_state is not None
    assert list(first.input_requests or {}) == ["q1"]
    assert isinstance((first.input_requests or {})["q1"], types.ElicitRequest)
    answer = {"action": "accept", "content": {"name": "Ann"}}
    result = await bounded(bridge.call(TARGET, alice, backend, 5.0, {"q1": answer}, first.request_state))
    assert isinstance(result, types.CallToolResult)
    assert backend.replies == [{"result": answer}]


async def test_questions_asked_at_once_come_in_one_round(bridge: Bridge) -> None:
    roots = {"method": "roots/list"}
    backend = Backend(ELICIT, roots)
    both = types.ClientCapabilities(elicitation=types.ElicitationCapability(), roots=types.RootsCapability())
    alice = caller(capabilities=both)
    first = await bounded(bridge.call(TARGET, alice, backend, 5.0, None, None))
    assert isinstance(first, types.InputRequiredResult)
    assert sorted(first.input_requests or {}) == ["q1", "q2"]
    answers = {"q1": {"action": "decline"}, "q2": {"roots": []}}
    result = await bounded(bridge.call(TARGET, alice, backend, 5.0, answers, first.request_state))
    assert isinstance(result, types.CallToolResult)
    assert sorted(map(str, backend.replies)) == sorted(map(str, [{"result": a} for a in answers.values()]))


async def test_a_retry_by_another_caller_or_for_another_request_is_refused_and_the_call_still_waits(
    bridge: Bridge,
) -> None:
    backend, alice = Backend(), caller()
    first = await bounded(bridge.call(TARGET, alice, backend, 5.0, None, None))
    assert isinstance(first, types.InputRequiredResult)
    answer = {"q1": {"action": "accept", "content": {}}}
    with pytest.raises(InvalidRequestState):
        await bounded(bridge.call(TARGET, caller("mallory"), backend, 5.0, answer, first.request_state))
    with pytest.raises(InvalidRequestState):
        await bounded(bridge.call("tools/call\0legacy\0other", alice, backend, 5.0, answer, first.request_state))
    result = await bounded(bridge.call(TARGET, alice, backend, 5.0, answer, first.request_state))
    assert isinstance(result, types.CallToolResult)


async def test_a_request_state_serves_once(bridge: Bridge) -> None:
    backend, alice = Backend(), caller()
    first = await bounded(bridge.call(TARGET, alice, backend, 5.0, None, None))
    assert isinstance(first, types.InputRequiredResult)
    answer = {"q1": {"action": "decline"}}
    await bounded(bridge.call(TARGET, alice, backend, 5.0, answer, first.request_state))
    with pytest.raises(InvalidRequestState):
        await bounded(bridge.call(TARGET, alice, backend, 5.0, answer, first.request_state))


async def test_a_question_the_retry_leaves_unanswered_gets_an_error_at_the_backend(bridge: Bridge) -> None:
    backend, alice = Backend(), caller()
    first = await bounded(bridge.call(TARGET, alice, backend, 5.0, None, None))
    assert isinstance(first, types.InputRequiredResult)
    await bounded(bridge.call(TARGET, alice, backend, 5.0, {"q9": {}}, first.request_state))
    assert [r["error"]["code"] for r in backend.replies] == [INVALID_PARAMS]


@pytest.mark.parametrize(
    ("question", "capabilities", "code"),
    [
        ({"method": "sampling/createMessage", "params": {}}, CAN_ELICIT, INVALID_REQUEST),
        ({"method": "tools/list"}, CAN_ELICIT, METHOD_NOT_FOUND),
        ({"method": "elicitation/create", "params": {"message": 5}}, CAN_ELICIT, INVALID_PARAMS),
    ],
    ids=["capability-not-declared", "not-relayed", "invalid"],
)
async def test_a_question_the_client_cannot_be_asked_is_answered_at_once_with_an_error(
    bridge: Bridge, question: dict[str, Any], capabilities: types.ClientCapabilities, code: int
) -> None:
    backend = Backend(question)
    result = await bounded(bridge.call(TARGET, caller(capabilities=capabilities), backend, 5.0, None, None))
    assert isinstance(result, types.CallToolResult)
    assert [r["error"]["code"] for r in backend.replies] == [code]


async def test_a_question_nobody_answers_in_time_gets_a_timeout_at_the_backend(bridge: Bridge) -> None:
    backend = Backend()
    first = await bounded(bridge.call(TARGET, caller(), backend, 0.05, None, None))
    assert isinstance(first, types.InputRequiredResult)
    with anyio.fail_after(5):
        await backend.done.wait()
    assert [r["error"]["code"] for r in backend.replies] == [REQUEST_TIMEOUT]


async def test_the_calls_own_failure_reaches_the_round_waiting_for_it(bridge: Bridge) -> None:
    async def times_out(who: Caller) -> types.CallToolResult:
        raise BackendTimeout("legacy", 1.0)

    with pytest.raises(BackendTimeout):
        await bounded(bridge.call(TARGET, caller(), times_out, 5.0, None, None))


async def test_a_client_that_leaves_while_its_round_waits_cancels_the_call(bridge: Bridge) -> None:
    cancelled = anyio.Event()

    async def never_done(who: Caller) -> types.CallToolResult:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()
        raise AssertionError

    with anyio.move_on_after(0.05):  # the client goes away before the call ends
        await bounded(bridge.call(TARGET, caller(), never_done, 5.0, None, None))
    with anyio.fail_after(5):
        await cancelled.wait()


async def test_without_its_task_group_the_bridge_takes_no_call() -> None:
    with pytest.raises(BackendUnavailable):
        await Bridge(StateSeal()).call(TARGET, caller(), Backend(), 5.0, None, None)


# -- replicas sharing a store ------------------------------------------------------------------------------------


@asynccontextmanager
async def replicas(count: int, store: Store) -> AsyncIterator[list[Bridge]]:
    """Bridges of ``count`` replicas: one seal key and one store between them."""
    bridges = [Bridge(StateSeal([b"k" * 32]), store) for _ in range(count)]
    async with anyio.create_task_group() as tg:
        for bridge in bridges:
            await tg.start(bridge.run)
        yield bridges
        tg.cancel_scope.cancel()


async def test_a_retry_that_lands_on_another_replica_is_answered_by_the_parked_call() -> None:
    async with replicas(2, MemoryStore()) as (a, b):
        backend, alice = Backend(ELICIT, {"method": "roots/list"}), caller()
        first = await bounded(a.call(TARGET, alice, backend, 5.0, None, None))
        assert isinstance(first, types.InputRequiredResult)
        answer = {"q1": {"action": "accept", "content": {"name": "Ada"}}}
        with pytest.raises(InvalidRequestState):
            await bounded(b.call(TARGET, caller("mallory"), backend, 5.0, answer, first.request_state))
        result = await bounded(b.call(TARGET, alice, backend, 5.0, answer, first.request_state))
    assert isinstance(result, types.CallToolResult)
    assert {"result": answer["q1"]} in backend.replies
    refused = [reply["error"]["code"] for reply in backend.replies if "error" in reply]
    assert refused == [INVALID_REQUEST]  # roots were not declared: refused on A, never asked


async def test_a_relayed_round_brings_back_the_next_questions_and_the_calls_own_error() -> None:
    class Twice(Backend):
        async def __call__(self, who: Caller) -> types.CallToolResult:
            assert who.sink is not None
            self.replies.append(await who.sink.request(ELICIT))
            self.replies.append(await who.sink.request(ELICIT))
            raise BackendTimeout("legacy", 5.0)

    async with replicas(2, MemoryStore()) as (a, b):
        backend, alice = Twice(), caller()
        first = await bounded(a.call(TARGET, alice, backend, 5.0, None, None))
        assert isinstance(first, types.InputRequiredResult)
        accept = {"q1": {"action": "decline"}}
        second = await bounded(b.call(TARGET, alice, backend, 5.0, accept, first.request_state))
        assert isinstance(second, types.InputRequiredResult) and list(second.input_requests or {}) == ["q2"]
        with pytest.raises(MCPError) as failed:
            await bounded(b.call(TARGET, alice, backend, 5.0, {"q2": {"action": "decline"}}, second.request_state))
    assert failed.value.code == REQUEST_TIMEOUT


async def test_a_retry_for_a_call_parked_on_a_replica_that_is_gone_is_refused_at_once() -> None:
    store = MemoryStore()
    async with replicas(1, store) as (a,):
        first = await bounded(a.call(TARGET, caller(), Backend(), 5.0, None, None))
    assert isinstance(first, types.InputRequiredResult)
    async with replicas(1, store) as (b,):
        with pytest.raises(InvalidRequestState):
            await bounded(b.call(TARGET, caller(), Backend(), 5.0, {"q1": {}}, first.request_state))
