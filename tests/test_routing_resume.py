"""``gateway.routing.resume``: a request state sealed to its caller and request, and a 2025 client asked each
question of an ``input_required`` answer in the gateway's stead."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import MCPError, types
from mcp.types import INVALID_PARAMS

from gateway.errors import InvalidRequestState
from gateway.routing.resume import StateSeal, answers
from gateway.rpc_errors import to_mcp_error
from tests.support.sinks import RecordingSink

pytestmark = pytest.mark.anyio
TARGET = "tools/call\0ops\0search"


def test_a_sealed_state_opens_to_the_backends_state_for_its_caller_and_request() -> None:
    seal = StateSeal()
    sealed = seal.seal("backend-state.with.dots", TARGET, "alice")
    assert "backend-state" not in sealed.partition(".")[0]
    assert seal.open(sealed, TARGET, "alice") == "backend-state.with.dots"


@pytest.mark.parametrize(
    ("target", "identity", "change"),
    [
        (TARGET, "mallory", None),
        ("tools/call\0ops\0delete", "alice", None),
        ("tools/call\0hr\0search", "alice", None),
        (TARGET, "alice", "state"),
        (TARGET, "alice", "mac"),
        (TARGET, "alice", "separator"),
    ],
    ids=["another-caller", "another-tool", "another-backend", "edited-state", "edited-mac", "no-separator"],
)
def test_a_state_opened_by_another_caller_or_request_or_edited_is_refused(
    target: str, identity: str, change: str | None
) -> None:
    seal = StateSeal()
    sealed = seal.seal("backend-state", TARGET, "alice")
    mac, _, state = sealed.partition(".")
    if change == "state":
        sealed = f"{mac}.backend-statf"
    elif change == "mac":
        sealed = f"{mac[:-1]}{'0' if mac[-1] != '0' else '1'}.{state}"
    elif change == "separator":
        sealed = mac + state
    with pytest.raises(InvalidRequestState) as refused:
        seal.open(sealed, target, identity)
    assert to_mcp_error(refused.value).code == INVALID_PARAMS


def test_a_state_sealed_by_another_gateway_process_is_refused() -> None:
    sealed = StateSeal().seal("backend-state", TARGET, "alice")
    with pytest.raises(InvalidRequestState):
        StateSeal().open(sealed, TARGET, "alice")
    assert StateSeal([b"k" * 32]).open(StateSeal([b"k" * 32]).seal("s", TARGET, "alice"), TARGET, "alice") == "s"


def test_a_state_sealed_with_a_previous_key_opens_until_that_key_is_removed() -> None:
    sealed = StateSeal([b"old" * 11]).seal("s", TARGET, "alice")
    assert StateSeal([b"new" * 11, b"old" * 11]).open(sealed, TARGET, "alice") == "s"
    with pytest.raises(InvalidRequestState):
        StateSeal([b"new" * 11]).open(sealed, TARGET, "alice")


def question(message: str) -> types.ElicitRequest:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    return types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=schema))


async def test_each_question_is_asked_of_the_client_and_its_answers_come_back_by_key() -> None:
    def reply(request: dict[str, Any]) -> dict[str, Any]:
        return {"result": {"action": "accept", "content": {"name": request["params"]["message"]}}}

    sink = RecordingSink(reply)
    asked = types.InputRequiredResult(input_requests={"first": question("Ann"), "second": question("Bob")})
    responses = await answers(sink, asked)
    assert responses == {
        "first": {"action": "accept", "content": {"name": "Ann"}},
        "second": {"action": "accept", "content": {"name": "Bob"}},
    }
    assert [r["method"] for r in sink.requests] == ["elicitation/create", "elicitation/create"]
    assert sink.requests[0]["params"]["requestedSchema"]["type"] == "object"  # on the wire, by alias


async def test_the_clients_error_to_a_question_ends_the_call_with_that_error() -> None:
    sink = RecordingSink(lambda request: {"error": {"code": -32001, "message": "declined", "data": {"why": "no"}}})
    asked = types.InputRequiredResult(input_requests={"first": question("Ann"), "second": question("Bob")})
    with pytest.raises(MCPError) as ended:
        await answers(sink, asked)
    assert (ended.value.code, ended.value.message, ended.value.error.data) == (-32001, "declined", {"why": "no"})
    assert len(sink.requests) == 1
