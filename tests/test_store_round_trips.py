"""The shared store stays off the hot path: a plain 2026 ``tools/call`` makes no Redis round trip unless a rate
limit asks for one, whatever store is configured."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from redis import client as sync_client
from redis.asyncio import client as async_client

from tests.support.inproc import http, running_gateway
from tests.support.procs import free_port
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
VERSION = "2026-07-28"


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every command any Redis client of this process sends (or tries to), by name."""
    sent: list[str] = []
    for cls in (async_client.Redis, async_client.Pipeline, sync_client.Redis, sync_client.Pipeline):
        for method in ("execute_command", "execute"):
            if method in vars(cls):
                monkeypatch.setattr(cls, method, _counting(getattr(cls, method), sent))
    yield sent


def _counting(original: Any, sent: list[str]) -> Any:
    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(args[0]) if args else "pipeline")
        return original(self, *args, **kwargs)

    return counted


def call_message() -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "probe", "version": "1"},
    }
    params = {"name": "toy/echo", "arguments": {"text": "hi"}, "_meta": meta}
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}


async def calls_counted(round_trips: list[str], **settings: Any) -> list[str]:
    """Redis commands sent while the gateway answers one plain 2026 tools/call (its start and stop not counted)."""
    message = call_message()
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    headers.update({"mcp-protocol-version": VERSION, "mcp-method": "tools/call", "mcp-name": "toy/echo"})
    async with running_gateway({"toy": build("toy")}, **settings) as gw, http(gw) as session:
        round_trips.clear()
        answer = await session.post("/mcp", content=json.dumps(message), headers=headers)
        during = list(round_trips)
    assert answer.status_code == 200 and answer.json()["result"]["content"][0]["text"] == "hi"
    return during


async def test_a_plain_2026_tool_call_makes_no_store_round_trip_without_a_rate_limit(round_trips: list[str]) -> None:
    store = f"redis://127.0.0.1:{free_port()}/0"
    assert (
        await calls_counted(
            round_trips, cluster={"store": store, "session_keys": ["k" * 32]}, security={"limits": {"store": store}}
        )
        == []
    )


async def test_a_rate_limit_on_a_redis_store_is_a_round_trip_per_call(round_trips: list[str]) -> None:
    store = f"redis://127.0.0.1:{free_port()}/0"
    limits = {"store": store, "per_principal": {"rate": 100, "burst": 100}}
    assert (
        await calls_counted(
            round_trips, cluster={"store": store, "session_keys": ["k" * 32]}, security={"limits": limits}
        )
        != []
    )
