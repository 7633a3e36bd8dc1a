"""Limits: token-bucket rate limits (in memory and shared through a real Redis), JSON depth, request body and
result sizes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from mcp import MCPError, types

from gateway.config import BackendConfig, LimitsConfig
from gateway.errors import RATE_LIMITED, RESULT_TOO_LARGE, RateLimited, ResultTooLarge
from gateway.principal import Principal
from gateway.security.limits import RateLimiter, bounded, result_size, too_deep
from tests.support.inproc import client, http, running_gateway, serving
from tests.support.procs import free_port
from tests.support.redis_server import redis_server
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ALICE = Principal("alice")
MCP = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
MODERN = {**MCP, "MCP-Protocol-Version": "2026-07-28"}
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, store: str = "memory", **limits: Any) -> RateLimiter:
    return RateLimiter(LimitsConfig.model_validate({"store": store, **limits}), clock)


async def test_the_burst_passes_the_next_call_waits_and_the_budget_refills() -> None:
    clock = Clock()
    limits = limiter(clock, per_principal={"rate": 2, "burst": 3})
    for _ in range(3):
        await limits.hit(ALICE)
    with pytest.raises(RateLimited) as caught:
        await limits.hit(ALICE)
    assert caught.value.retry_after == pytest.approx(0.5, abs=0.01)
    await limits.hit(Principal("bob"))  # a budget per principal
    clock.now += 0.5
    await limits.hit(ALICE)
    with pytest.raises(RateLimited):
        await limits.hit(ALICE)


async def test_a_jwt_subject_never_spends_the_budget_of_the_api_key_principal_of_its_name() -> None:
    limits = limiter(Clock(), per_principal={"rate": 1, "burst": 1}, per_tool={"ops/x": {"rate": 1, "burst": 1}})
    key = Principal("alice", method="api_key")
    await limits.hit(key, "ops/x")
    await limits.hit(Principal("alice", method="jwt", issuer="https://idp.example.test"), "ops/x")
    with pytest.raises(RateLimited):
        await limits.hit(key, "ops/x")


async def test_a_tool_limit_applies_on_top_of_the_principals_own() -> None:
    clock = Clock()
    limits = limiter(
        clock, per_principal={"rate": 100, "burst": 100}, per_tool={"ops/restart": {"rate": 1, "burst": 1}}
    )
    await limits.hit(ALICE, "ops/restart")
    with pytest.raises(RateLimited, match="ops/restart"):
        await limits.hit(ALICE, "ops/restart")
    await limits.hit(ALICE, "ops/search")


async def test_a_rate_limited_call_is_a_json_rpc_error_with_retry_after_in_process() -> None:
    limits = {"per_principal": {"rate": 1, "burst": 2}}
    async with running_gateway({"ops": build("ops")}, security={"limits": limits}) as gw:
        gw.guard.limiter = limiter(Clock(), **limits)
        async with client(gw) as local:
            await local.call_tool("ops/echo", {"text": "1"})
            await local.call_tool("ops/echo", {"text": "2"})
            with pytest.raises(MCPError) as caught:
                await local.call_tool("ops/echo", {"text": "3"})
    assert caught.value.code == RATE_LIMITED
    assert caught.value.data == {"retryAfter": pytest.approx(1.0, abs=0.01)}


async def test_a_rate_limited_call_names_the_tool_as_the_client_called_it() -> None:
    limits = {"per_tool": {"ops/echo": {"rate": 1, "burst": 1}}}
    async with running_gateway({"ops": build("ops")}, security={"limits": limits}) as gw:
        gw.guard.limiter = limiter(Clock(), **limits)
        async with client(gw) as local:
            await local.call_tool("ops__echo", {"text": "1"})
            with pytest.raises(MCPError) as caught:
                await local.call_tool("ops__echo", {"text": "2"})
    assert caught.value.code == RATE_LIMITED
    assert "on ops__echo" in caught.value.message and "ops/echo" not in caught.value.message


def call(name: str, arguments: dict[str, Any], request_id: int = 1) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments, "_meta": META}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def headers(name: str) -> dict[str, str]:
    return {**MODERN, "Mcp-Method": "tools/call", "Mcp-Name": name}


async def test_over_http_the_refused_call_is_429_with_retry_after_and_the_budget_refills() -> None:
    clock = Clock()
    limits = {"per_principal": {"rate": 0.5, "burst": 2}}
    async with running_gateway({"ops": build("ops")}, security={"limits": limits}) as gw, http(gw) as session:
        gw.guard.limiter = limiter(clock, **limits)
        answers = [
            await session.post("/mcp", headers=headers("ops/echo"), json=call("ops/echo", {"text": "x"}, i))
            for i in range(3)
        ]
        clock.now += 2
        refilled = await session.post("/mcp", headers=headers("ops/echo"), json=call("ops/echo", {"text": "y"}, 9))
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["Retry-After"] == "2"
    assert answers[2].json()["error"]["code"] == RATE_LIMITED
    assert answers[2].json()["id"] == 2
    assert refilled.status_code == 200 and refilled.json()["result"]["content"][0]["text"] == "y"


def request(method: str, params: dict[str, Any], request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


async def test_over_http_completions_and_subscriptions_over_budget_are_429_with_retry_after() -> None:
    clock = Clock()
    limits = {"per_principal": {"rate": 0.5, "burst": 1}}
    completion = {
        "ref": {"type": "ref/prompt", "name": "ops/greet"},
        "argument": {"name": "who", "value": "a"},
        "_meta": META,
    }
    legacy = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    async with (
        running_gateway({"ops": build("ops")}, security={"limits": limits}) as gw,
        serving(gw) as url,
        httpx2.AsyncClient(timeout=10) as session,
    ):
        gw.guard.limiter = limiter(clock, **limits)
        completing = {**MODERN, "Mcp-Method": "completion/complete"}
        completed = [
            await session.post(url, headers=completing, json=request("completion/complete", completion, i))
            for i in range(2)
        ]
        clock.now += 2
        opened = await session.post(url, headers=MCP, json=request("initialize", legacy))
        own = {**MCP, "Mcp-Session-Id": opened.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
        await session.post(url, headers=own, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        clock.now += 2  # opening the session spent the budget too
        subscribe = {"uri": "ops+toy://about"}
        subscribed = [
            await session.post(url, headers=own, json=request("resources/subscribe", subscribe, i)) for i in range(2)
        ]
    for first, refused in (completed, subscribed):
        assert first.status_code == 200
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"
        assert refused.json()["error"]["code"] == RATE_LIMITED
        assert refused.json()["error"]["data"] == {"retryAfter": pytest.approx(2.0, abs=0.01)}


async def test_a_hidden_tools_own_limit_does_not_tell_it_apart_from_an_unknown_name() -> None:
    security = {
        "limits": {
            "per_principal": {"rate": 100, "burst": 100},
            "per_tool": {"ops/record": {"rate": 0.01, "burst": 1}},
        },
        "policy": {"rules": [{"principals": ["*"], "deny": ["ops/record"]}], "default": "allow"},
    }
    arguments = {"tag": "x", "seconds": 0}
    async with (
        running_gateway({"ops": build("ops")}, security=security) as gw,
        serving(gw) as url,
        httpx2.AsyncClient(timeout=10) as session,
    ):
        answers = [
            await session.post(url, headers=headers(name), json=call(name, arguments, i))
            for i, name in enumerate(["ops/record", "ops/record", "ops/no_such", "ops/no_such"])
        ]
    assert {a.status_code for a in answers} == {400}
    assert {a.json()["error"]["code"] for a in answers} == {types.INVALID_PARAMS}


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.mark.processes
async def test_replicas_sharing_a_redis_store_share_one_budget(redis_url: str) -> None:
    clock = Clock(start=2_000_000_000.0)
    one = limiter(clock, store=redis_url, per_principal={"rate": 1, "burst": 3})
    two = limiter(clock, store=redis_url, per_principal={"rate": 1, "burst": 3})
    try:
        await one.hit(ALICE)
        await two.hit(ALICE)
        await one.hit(ALICE)
        with pytest.raises(RateLimited) as caught:
            await two.hit(ALICE)
        assert caught.value.retry_after == pytest.approx(1.0, abs=0.01)
        clock.now += 1
        await two.hit(ALICE)
        with pytest.raises(RateLimited):
            await one.hit(ALICE)
    finally:
        await one.aclose()
        await two.aclose()


async def test_an_unreachable_redis_lets_calls_through() -> None:
    limits = limiter(Clock(), store=f"redis://127.0.0.1:{free_port()}/0", per_principal={"rate": 1, "burst": 1})
    try:
        await limits.hit(ALICE)
        await limits.hit(ALICE)
    finally:
        await limits.aclose()


# -- sizes and depth ---------------------------------------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth - 1):
        value = {"k": value} if level % 2 else [value]
    return value if depth == 0 else {"top": value}


def test_depth_counts_objects_and_arrays() -> None:
    assert not too_deep(nested(10), 10)
    assert too_deep(nested(11), 10)
    assert not too_deep("scalar", 1)
    assert too_deep(nested(100_000), 64)


async def test_an_oversized_body_is_413_and_deep_json_is_refused_before_parsing_blows_up() -> None:
    security = {"limits": {"max_body_bytes": 4096, "max_json_depth": 16}}
    async with running_gateway({"ops": build("ops")}, security=security) as gw, http(gw) as session:
        big = await session.post("/mcp", headers=headers("ops/echo"), json=call("ops/echo", {"text": "x" * 5000}))
        deep = await session.post("/mcp", headers=headers("ops/echo"), json=call("ops/echo", {"text": nested(20)}))
        deeper = "[" * 100_000 + "]" * 100_000
        abyss = await session.post(
            "/mcp", headers={**MODERN, "Content-Type": "application/json"}, content=deeper[:4000]
        )
        fine = await session.post("/mcp", headers=headers("ops/echo"), json=call("ops/echo", {"text": "ok"}))
    assert big.status_code == 413 and big.json()["error"]["code"] == types.INVALID_REQUEST
    assert deep.status_code == 400 and "deeper than 16" in deep.json()["error"]["message"]
    assert abyss.status_code == 400
    assert fine.status_code == 200


def backend(**settings: Any) -> BackendConfig:
    return BackendConfig(name="ops", url="http://ops.invalid/mcp", **settings)


def test_a_result_within_the_limit_passes_untouched() -> None:
    result = types.CallToolResult(content=[types.TextContent(type="text", text="small")])
    assert bounded(result, backend()) is result


def test_an_oversized_result_is_refused_by_default() -> None:
    result = types.CallToolResult(content=[types.TextContent(type="text", text="x" * 5000)])
    with pytest.raises(ResultTooLarge):
        bounded(result, backend(max_result_bytes=2048))


def test_an_oversized_tool_result_can_be_truncated_to_fit() -> None:
    blocks = [types.TextContent(type="text", text=f"{i}" * 1500) for i in range(4)]
    result = types.CallToolResult(content=blocks, structured_content={"rows": ["y" * 4000]})
    cut = bounded(result, backend(max_result_bytes=4096, oversized_result="truncate"))
    assert result_size(cut) <= 4096
    texts = [b.text for b in cut.content if isinstance(b, types.TextContent)]
    assert texts[0] == "0" * 1500 and "truncated by the gateway" in texts[-1]
    assert cut.structured_content is None and cut.is_error


async def test_an_oversized_result_reaches_the_client_as_an_error_naming_the_backend() -> None:
    async with running_gateway({"ops": build("ops")}) as gw:
        gw.guard._backends["ops"] = gw.config.backends[0].model_copy(update={"max_result_bytes": 1024})
        async with client(gw) as local:
            with pytest.raises(MCPError) as caught:
                await local.call_tool("ops/echo", {"text": "x" * 2000})
    assert caught.value.code == RESULT_TOO_LARGE
    assert caught.value.data == {"backend": "ops"}
