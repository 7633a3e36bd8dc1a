"""One call's failure is that call's: a tool whose answer is cut leaves its backend ready for everyone else.

A real toy backend over streamable HTTP whose ``cut`` tool has its response connection dropped halfway through
the body, on a 2025 link and a 2026 link, with the gateway's raw call path in between.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError

from gateway.config import BackendConfig
from gateway.errors import BACKEND_UNAVAILABLE, OUTCOME_UNKNOWN
from gateway.upstream.backend import State
from gateway.upstream.breaker import BreakerState
from tests.support.procs import Processes
from tests.test_lifecycle import Toy, gateway_for, until

pytestmark = pytest.mark.anyio
PROTOCOLS = ["legacy", "2026-07-28"]
CUTS = 20
ECHOES = 40


def text(result: Any) -> str:
    return str(result.content[0].text)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_tool_whose_answer_is_cut_fails_alone_and_the_backend_stays_ready(
    processes: Processes, tmp_path: Path, protocol: str
) -> None:
    toy = Toy(processes, tmp_path / "journal").start()
    backend = BackendConfig(name="toy", url=toy.url, protocol=protocol, breaker_threshold=CUTS + 1)
    async with gateway_for(backend, health_interval=60) as (gw, c):
        upstream = gw.upstreams["toy"]
        cut_codes: list[int] = []
        echoes: list[str] = []
        states: set[State] = set()

        async def cut() -> None:
            for _ in range(CUTS):
                with pytest.raises(MCPError) as failed:
                    await c.call_tool("toy/cut", {})
                cut_codes.append(failed.value.code)
                states.add(upstream.state)

        async def echo() -> None:
            for i in range(ECHOES):
                echoes.append(text(await c.call_tool("toy/echo", {"text": str(i)})))
                states.add(upstream.state)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(cut)
                tg.start_soon(echo)
        assert echoes == [str(i) for i in range(ECHOES)]
        assert cut_codes == [OUTCOME_UNKNOWN] * CUTS
        assert states == {State.READY}
        assert upstream.breaker.state is BreakerState.CLOSED
        assert gw.status()["backends"][0]["state"] == "ready"


async def test_errors_name_the_tool_as_the_client_called_it(processes: Processes, tmp_path: Path) -> None:
    toy = Toy(processes, tmp_path / "journal").start()
    backend = BackendConfig(name="toy", url=toy.url, breaker_threshold=1, breaker_cooldown=60)
    async with gateway_for(backend, health_interval=60) as (_, c):
        failures = []
        for _ in range(2):
            with pytest.raises(MCPError) as failed:
                await c.call_tool("toy__cut", {})
            failures.append(failed.value)
    assert [e.code for e in failures] == [OUTCOME_UNKNOWN, BACKEND_UNAVAILABLE]
    assert "while 'toy__cut' was running" in failures[0].message
    assert "tools/call toy__cut: circuit open" in failures[1].message


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_call_in_flight_is_not_failed_by_another_calls_cut_answer(
    processes: Processes, tmp_path: Path, protocol: str
) -> None:
    toy = Toy(processes, tmp_path / "journal").start()
    async with gateway_for(BackendConfig(name="toy", url=toy.url, protocol=protocol), health_interval=60) as (gw, c):
        outcome: dict[str, Any] = {}

        async def record() -> None:
            outcome["record"] = await c.call_tool("toy/record", {"tag": "inflight", "seconds": 1})

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(record)
                await until(lambda: toy.journal.exists() and "inflight" in toy.journal.read_text())
                with pytest.raises(MCPError) as cut:
                    await c.call_tool("toy/cut", {})
        assert cut.value.code == OUTCOME_UNKNOWN
        assert text(outcome["record"]) == "recorded"
        assert toy.journal.read_text().splitlines() == ["inflight"]
        assert gw.upstreams["toy"].state is State.READY


async def test_a_tool_that_keeps_failing_opens_its_own_breaker_and_no_other(
    processes: Processes, tmp_path: Path
) -> None:
    toy = Toy(processes, tmp_path / "journal").start()
    backend = BackendConfig(name="toy", url=toy.url, breaker_threshold=2, breaker_cooldown=60)
    async with gateway_for(backend, health_interval=60) as (gw, c):
        codes = []
        for _ in range(3):
            with pytest.raises(MCPError) as failed:
                await c.call_tool("toy/cut", {})
            codes.append(failed.value.code)
        echoed = await c.call_tool("toy/echo", {"text": "still here"})
        status = gw.status()["backends"][0]
    assert codes == [OUTCOME_UNKNOWN, OUTCOME_UNKNOWN, BACKEND_UNAVAILABLE]
    assert text(echoed) == "still here"
    assert status["state"] == "ready" and status["breaker"] == "closed"
    assert status["call_breakers"] == {"tools/call cut": "open"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_killed_backend_still_goes_down_and_its_calls_fail_at_once(
    processes: Processes, tmp_path: Path, protocol: str
) -> None:
    toy = Toy(processes, tmp_path / "journal").start()
    backend = BackendConfig(name="toy", url=toy.url, protocol=protocol, connect_timeout=2)
    async with gateway_for(backend, health_interval=60) as (gw, c):
        assert text(await c.call_tool("toy/echo", {"text": "before"})) == "before"
        toy.kill()
        with anyio.fail_after(10), pytest.raises(MCPError) as first:
            await c.call_tool("toy/echo", {"text": "after"})
        state = gw.upstreams["toy"].state
        with anyio.fail_after(1), pytest.raises(MCPError) as then:
            await c.call_tool("toy/echo", {"text": "again"})
    assert first.value.code == BACKEND_UNAVAILABLE and then.value.code == BACKEND_UNAVAILABLE
    assert state is State.DOWN
