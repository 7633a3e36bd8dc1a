"""The garbage collector runs less while a gateway starts, and as before once it serves."""

from __future__ import annotations

import gc
from contextlib import AsyncExitStack, ExitStack
from typing import Any

import pytest

from gateway import heap
from gateway.config import BackendConfig
from gateway.core import Gateway
from tests.support.inproc import config_for
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio


async def test_a_gateway_starts_with_fewer_collections_and_serves_with_the_thresholds_it_found() -> None:
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []

    async def connect(config: BackendConfig, stack: AsyncExitStack, hooks: Any) -> Any:
        seen.append(gc.get_threshold())
        return build(config.name)

    async with Gateway(config_for({"ops": "ops", "hr": "hr"}), connect):
        serving = gc.get_threshold()
    assert seen == [heap.STARTING, heap.STARTING]
    assert serving == before != heap.STARTING


def test_overlapping_starts_restore_the_thresholds_when_the_last_one_ends() -> None:
    before = gc.get_threshold()
    first, second = ExitStack(), ExitStack()
    first.enter_context(heap.starting())
    second.enter_context(heap.starting())
    first.close()
    assert gc.get_threshold() == heap.STARTING
    second.close()
    assert gc.get_threshold() == before
