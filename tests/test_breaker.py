"""The circuit breakers on their own (the link's, and one per tool), with a clock the test moves."""

from __future__ import annotations

import pytest

from gateway.upstream.breaker import Breakers, BreakerState, CircuitBreaker, CircuitOpen


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(threshold: int = 3, cooldown: float = 10.0) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker(threshold, cooldown, clock), clock


def test_it_stays_closed_below_the_threshold_and_a_success_resets_the_count() -> None:
    b, _ = breaker()
    b.failure()
    b.failure()
    b.success()
    b.failure()
    b.failure()
    b.admit()
    assert b.state is BreakerState.CLOSED


def test_it_opens_after_threshold_consecutive_failures_and_refuses_at_once() -> None:
    b, clock = breaker()
    for _ in range(3):
        b.failure()
    clock.now += 4
    with pytest.raises(CircuitOpen) as refused:
        b.admit()
    assert b.state is BreakerState.OPEN
    assert refused.value.retry_in == pytest.approx(6.0)


def test_after_the_cooldown_one_trial_passes_and_the_others_are_refused() -> None:
    b, clock = breaker()
    for _ in range(3):
        b.failure()
    clock.now += 10
    assert b.state is BreakerState.HALF_OPEN
    b.admit()
    with pytest.raises(CircuitOpen):
        b.admit()


def test_a_successful_trial_closes_it() -> None:
    b, clock = breaker()
    for _ in range(3):
        b.failure()
    clock.now += 10
    b.admit()
    b.success()
    assert b.state is BreakerState.CLOSED
    b.admit()


def test_a_failed_trial_opens_it_for_another_cooldown() -> None:
    b, clock = breaker()
    for _ in range(3):
        b.failure()
    clock.now += 10
    b.admit()
    b.failure()
    assert b.state is BreakerState.OPEN
    clock.now += 9.9
    with pytest.raises(CircuitOpen):
        b.admit()
    clock.now += 0.1
    b.admit()


def test_an_abandoned_trial_lets_the_next_call_try() -> None:
    b, clock = breaker(threshold=1)
    b.failure()
    clock.now += 10
    b.admit()
    b.abandon()
    b.admit()
    assert b.state is BreakerState.HALF_OPEN


def breakers(threshold: int = 2) -> tuple[Breakers, Clock]:
    clock = Clock()
    return Breakers(threshold, 10.0, clock), clock


def test_one_keys_failures_open_its_breaker_and_no_other() -> None:
    b, _ = breakers()
    b.failure("tools/call cut")
    b.failure("tools/call cut")
    with pytest.raises(CircuitOpen):
        b.admit("tools/call cut")
    b.admit("tools/call echo")
    assert b.states() == {"tools/call cut": BreakerState.OPEN}


def test_a_key_is_forgotten_once_it_succeeds_and_its_trial_passes_after_the_cooldown() -> None:
    b, clock = breakers(threshold=1)
    b.failure("k")
    clock.now += 10
    b.admit("k")
    with pytest.raises(CircuitOpen):
        b.admit("k")
    b.success("k")
    b.admit("k")
    assert b.states() == {}


def test_a_call_without_a_key_has_no_breaker() -> None:
    b, _ = breakers(threshold=1)
    for _ in range(3):
        b.failure(None)
    b.admit(None)
    assert b.states() == {}
