"""Circuit breakers: stop waiting on what keeps failing, and try it again later.

Closed: calls pass; consecutive failures are counted. After ``threshold`` of them it opens: calls fail at once
instead of waiting out their timeouts. After ``cooldown`` seconds it is half-open: one trial call passes (others
still fail at once); its success closes the breaker, its failure opens it for another cool-down.

A backend has one ``CircuitBreaker`` for its link and ``Breakers``, one per tool and prompt, for what fails inside
a single call's exchange, so a tool that keeps failing is cut off without taking its backend's other tools along.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import anyio


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(Exception):
    """The breaker refused the call; ``retry_in`` seconds until a trial call is allowed."""

    def __init__(self, retry_in: float) -> None:
        self.retry_in = retry_in
        super().__init__(f"circuit open after repeated failures; next trial in {retry_in:.1f} s")


class CircuitBreaker:
    def __init__(self, threshold: int, cooldown: float, clock: Callable[[], float] = anyio.current_time) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def admit(self) -> None:
        """Let a call through, or raise ``CircuitOpen``."""
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return
        assert self._opened_at is not None
        raise CircuitOpen(max(0.0, self._opened_at + self.cooldown - self._clock()))

    def success(self) -> None:
        self.reset()

    def failure(self) -> None:
        self._trial_running = False
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.threshold:
            self._opened_at = self._clock()

    def abandon(self) -> None:
        """A call ended without a verdict (the caller cancelled it): let the next one be the trial."""
        self._trial_running = False

    def reset(self) -> None:
        """Close: a success, or a fresh connection that listed the backend."""
        self._failures = 0
        self._opened_at = None
        self._trial_running = False


class Breakers:
    """One breaker per key (a tool or a prompt), made at its first failure and forgotten when it closes again: only
    keys that failed take memory, and keys name what the backend listed. The key ``None`` has no breaker (a
    resource read or a completion, whose only bounded key would be shared by every resource of the backend)."""

    def __init__(self, threshold: int, cooldown: float, clock: Callable[[], float] = anyio.current_time) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failing: dict[str, CircuitBreaker] = {}

    def admit(self, key: str | None) -> None:
        if key is not None and (breaker := self._failing.get(key)) is not None:
            breaker.admit()

    def success(self, key: str | None) -> None:
        if key is not None:
            self._failing.pop(key, None)

    def failure(self, key: str | None) -> None:
        if key is None:
            return
        breaker = self._failing.get(key)
        if breaker is None:
            breaker = self._failing[key] = CircuitBreaker(self.threshold, self.cooldown, self._clock)
        breaker.failure()

    def abandon(self, key: str | None) -> None:
        if key is not None and (breaker := self._failing.get(key)) is not None:
            breaker.abandon()

    def reset(self) -> None:
        self._failing.clear()

    def states(self) -> dict[str, BreakerState]:
        """The keys whose breaker is not closed."""
        states = {key: breaker.state for key, breaker in self._failing.items()}
        return {key: state for key, state in sorted(states.items()) if state is not BreakerState.CLOSED}
