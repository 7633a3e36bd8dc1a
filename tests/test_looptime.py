"""Deadlines in time the event loop was free: a stall of the loop does not use them up; silence still does."""

from __future__ import annotations

import asyncio
import time

import anyio
import pytest

from gateway.upstream import looptime

pytestmark = pytest.mark.anyio
DEADLINE = 0.2


async def test_a_stall_longer_than_the_deadline_does_not_use_it_up() -> None:
    async def answer_after_a_stall() -> str:
        asyncio.get_running_loop().call_soon(time.sleep, 2 * DEADLINE)
        await anyio.sleep(DEADLINE / 2)
        return "answered"

    assert await looptime.within(DEADLINE, answer_after_a_stall) == "answered"


async def test_a_wait_that_gets_its_time_and_no_answer_times_out() -> None:
    with anyio.fail_after(10), pytest.raises(TimeoutError):
        await looptime.within(DEADLINE, anyio.sleep_forever)


async def test_a_wait_the_loop_never_gives_its_time_ends_without_a_verdict() -> None:
    async def stall_past_the_cap() -> None:
        asyncio.get_running_loop().call_soon(time.sleep, (looptime.CAP + 1) * DEADLINE)
        await anyio.sleep_forever()

    with anyio.fail_after(10), pytest.raises(looptime.Starved):
        await looptime.within(DEADLINE, stall_past_the_cap)


async def test_the_work_s_own_error_comes_through_as_it_was_raised() -> None:
    async def fail() -> None:
        raise LookupError("the work's own")

    with pytest.raises(LookupError):
        await looptime.within(DEADLINE, fail)
