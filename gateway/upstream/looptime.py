"""Deadlines counted in time the event loop was free to run, for waits whose timeout passes a verdict on a backend.

A health probe that times out says the backend is gone, but a wall-clock deadline also passes while the gateway's
own loop is blocked (a long synchronous step, a flood of work), with the backend's answer waiting unread in a
socket. Here the deadline is ``STEPS`` sleeps of a fraction of it, one after the other: a stall, however long,
delays the sleep in progress and so costs the wait at most one step, and a busy loop stretches every step alike.
A wait the loop never gave its time within ``CAP`` times the deadline (wall clock) ends without a verdict.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")
STEPS = 20
CAP = 4.0


class Starved(Exception):
    """The event loop was too busy to give the wait its time: nothing is known about what it waited for."""


async def within(seconds: float, work: Callable[[], Awaitable[T]]) -> T:
    """``work()``'s result; ``TimeoutError`` once the loop gave it ``seconds`` without an answer, ``Starved``
    when ``CAP * seconds`` of wall-clock time passed first."""
    starved = False

    async def count_down(scope: anyio.CancelScope) -> None:
        nonlocal starved
        cap = anyio.current_time() + CAP * seconds
        for _ in range(STEPS):
            await anyio.sleep(seconds / STEPS)
            if anyio.current_time() >= cap:
                starved = True
                break
        scope.cancel()

    outcome: list[T | Exception] = []
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(count_down, scope)
            try:
                outcome.append(await work())
            except Exception as exc:  # raised below, outside the task group, as it was raised
                outcome.append(exc)
            tg.cancel_scope.cancel()
    if outcome:
        if isinstance(outcome[0], Exception):
            raise outcome[0]
        return outcome[0]
    if starved:
        raise Starved(f"the event loop gave the wait less than {seconds:g} s in {CAP * seconds:g} s")
    raise TimeoutError(f"no answer within {seconds:g} s")
