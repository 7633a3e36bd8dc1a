"""``BackChannel``: a backend's requests and log messages reach the one call in flight on its connection, and with
none or several in flight, nobody: requests are refused saying why, log messages dropped."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import types

from gateway.upstream.backchannel import OVERLAPPING, SHARED, BackChannel
from tests.support.sinks import RecordingSink

pytestmark = pytest.mark.anyio
ROOTS = {"result": {"roots": [{"uri": "file:///home/ann/notes", "name": "notes"}]}}
LOG = types.LoggingMessageNotificationParams(level="warning", logger="db", data={"slow": True})
CONTEXT: Any = None  # the SDK's request context names only the backend's request id; nothing reads it


async def roots(channel: BackChannel) -> types.ListRootsResult | types.ErrorData:
    listed = channel.callbacks()["list_roots_callback"]
    result: types.ListRootsResult | types.ErrorData = await listed(CONTEXT)
    return result


async def log(channel: BackChannel) -> None:
    await channel.callbacks()["logging_callback"](LOG)


async def test_with_one_call_in_flight_its_client_answers_and_hears_the_logs() -> None:
    channel, sink = BackChannel(), RecordingSink(lambda request: ROOTS)
    with channel.attached(sink):
        assert await roots(channel) == types.ListRootsResult.model_validate(ROOTS["result"])
        await log(channel)
    assert sink.requests == [{"method": "roots/list", "params": None}]
    assert sink.notes == [{"method": "notifications/message", "params": LOG.model_dump(mode="json", exclude_none=True)}]


async def test_sampling_and_elicitation_go_to_the_client_on_the_wire_as_it_knows_them() -> None:
    answer = {"role": "assistant", "content": {"type": "text", "text": "hi"}, "model": "m"}
    channel, sink = BackChannel(), RecordingSink(lambda request: {"result": answer})
    params = types.CreateMessageRequestParams(messages=[], max_tokens=10)
    with channel.attached(sink):
        result = await channel.callbacks()["sampling_callback"](CONTEXT, params)
    assert result == types.CreateMessageResult.model_validate(answer)
    assert sink.requests == [{"method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 10}}]


async def test_with_no_call_in_flight_requests_are_refused_with_the_configured_reason_and_logs_dropped() -> None:
    assert await roots(BackChannel()) == types.ErrorData(code=types.INVALID_REQUEST, message=SHARED)
    assert await roots(BackChannel("a reason of this link")) == types.ErrorData(
        code=types.INVALID_REQUEST, message="a reason of this link"
    )
    await log(BackChannel())  # nowhere to go, and no failure


async def test_with_several_calls_in_flight_nobody_is_asked_and_nobody_hears_the_logs() -> None:
    channel, first, second = BackChannel(), RecordingSink(lambda r: ROOTS), RecordingSink(lambda r: ROOTS)
    with channel.attached(first), channel.attached(second):
        assert await roots(channel) == types.ErrorData(code=types.INVALID_REQUEST, message=OVERLAPPING)
        await log(channel)
    assert first.requests == first.notes == second.requests == second.notes == []


async def test_a_call_without_a_sink_takes_nothing_but_still_makes_another_ambiguous() -> None:
    channel, sink = BackChannel(), RecordingSink(lambda r: ROOTS)
    with channel.attached(None):
        assert await roots(channel) == types.ErrorData(code=types.INVALID_REQUEST, message=SHARED)
        with channel.attached(sink):
            assert await roots(channel) == types.ErrorData(code=types.INVALID_REQUEST, message=OVERLAPPING)
    with channel.attached(sink):  # once the other call has ended, this one is alone
        assert isinstance(await roots(channel), types.ListRootsResult)
    assert len(sink.requests) == 1


async def test_the_clients_error_is_passed_on_and_an_invalid_answer_is_an_internal_error() -> None:
    refusing = RecordingSink(lambda r: {"error": {"code": -1, "message": "user declined"}})
    channel = BackChannel()
    with channel.attached(refusing):
        assert await roots(channel) == types.ErrorData(code=-1, message="user declined")
    garbled = RecordingSink(lambda r: {"result": {"roots": "not a list"}})
    with channel.attached(garbled):
        error = await roots(channel)
    assert isinstance(error, types.ErrorData) and error.code == types.INTERNAL_ERROR
