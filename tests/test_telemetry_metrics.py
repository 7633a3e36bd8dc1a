"""The Prometheus metrics, in process: each call outcome counted under bounded labels, backend call times, states
read when scraped, and who may scrape ``/metrics``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import MCPError

from gateway.catalogue.catalog import Kind
from gateway.config import BackendConfig, GatewayConfig
from gateway.core import Gateway
from gateway.errors import BackendTimeout, BackendUnavailable, RateLimited, UnknownTarget
from gateway.front.app import build_app
from gateway.principal import Principal
from gateway.telemetry import metrics
from gateway.upstream.caller import Caller
from tests.support.inproc import LOCAL, lifespan
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ALICE = Caller(principal=Principal("alice", method="api_key"), modern=False)
SECURITY = {
    "policy": {"default": "deny", "rules": [{"principals": ["alice"], "allow": ["ops/*"], "deny": ["ops/whoami"]}]},
    "limits": {"per_principal": {"rate": 0.001, "burst": 8}},
}


@asynccontextmanager
async def gateway_with(*, down: bool = False, **settings: Any) -> AsyncIterator[Gateway]:
    """``ops`` (a toy server whose ``slow`` tool times out after 0.2 s) and ``hr``, unreachable when ``down``."""
    servers = {"ops": build("ops"), "hr": None if down else build("hr")}

    async def connect(config: BackendConfig, stack: AsyncExitStack, hooks: Any) -> Any:
        if servers[config.name] is None:
            raise OSError(f"cannot reach {config.name}")
        return servers[config.name]

    backends = (
        BackendConfig(name="ops", url="http://ops.invalid/mcp", tool_timeouts={"slow": 0.2}),
        BackendConfig(name="hr", url="http://hr.invalid/mcp"),
    )
    async with Gateway(GatewayConfig(backends=backends, **settings), connect) as gateway:
        yield gateway


def requests(**labels: str) -> float:
    full = {"method": "tools/call", "backend": "ops", "era": "2025", "code": "", **labels}
    return metrics.REGISTRY.get_sample_value("mcp_gateway_requests_total", full) or 0.0


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_each_outcome_is_counted_under_the_catalogues_name_and_its_error_code() -> None:
    before = {
        "ok": requests(name="ops/echo", outcome="ok"),
        "tool_error": requests(name="ops/slow", outcome="tool_error"),
        "backend_error": requests(name="ops/fail", outcome="backend_error", code="-32099"),
        "timeout": requests(name="ops/slow", outcome="timeout", code="-32001"),
        "denied": requests(name="ops/whoami", outcome="denied", code="-32602"),
        "unknown": requests(name="(unknown)", backend="", outcome="unknown", code="-32602"),
        "unavailable": requests(name="(unknown)", backend="hr", outcome="unavailable", code="-32050"),
        "policy": sample("mcp_gateway_rejections_total", control="policy"),
        "backend_calls": sample("mcp_gateway_backend_call_duration_seconds_count", backend="ops", method="tools/call"),
    }
    async with gateway_with(down=True, security=SECURITY) as gateway:
        guard = gateway.guard
        await guard.call_tool(ALICE, "ops/echo", {"text": "x"})
        assert (await guard.call_tool(ALICE, "ops/slow", {"seconds": "not a number"})).is_error
        with pytest.raises(MCPError):
            await guard.call_tool(ALICE, "ops/fail", {})
        with pytest.raises(BackendTimeout):
            await guard.call_tool(ALICE, "ops/slow", {"seconds": 5})
        for name in ("ops/whoami", "ops/no-such-tool-7f3a"):
            with pytest.raises(UnknownTarget):
                await guard.call_tool(ALICE, name, {})
        with pytest.raises(BackendUnavailable):
            await guard.call_tool(Caller(modern=False), "hr/echo", {"text": "x"})
    assert requests(name="ops/echo", outcome="ok") == before["ok"] + 1
    assert requests(name="ops/slow", outcome="tool_error") == before["tool_error"] + 1
    assert requests(name="ops/fail", outcome="backend_error", code="-32099") == before["backend_error"] + 1
    assert requests(name="ops/slow", outcome="timeout", code="-32001") == before["timeout"] + 1
    assert requests(name="ops/whoami", outcome="denied", code="-32602") == before["denied"] + 1
    assert requests(name="(unknown)", backend="", outcome="unknown", code="-32602") == before["unknown"] + 1
    # A down backend's names are not in the catalogue: counted under the backend the error names.
    assert requests(name="(unknown)", backend="hr", outcome="unavailable", code="-32050") == before["unavailable"] + 1
    assert sample("mcp_gateway_rejections_total", control="policy") == before["policy"] + 1
    calls = sample("mcp_gateway_backend_call_duration_seconds_count", backend="ops", method="tools/call")
    assert calls == before["backend_calls"] + 4  # echo, slow twice, fail: the refused ones never reached it
    assert metrics.REGISTRY.get_sample_value("mcp_gateway_requests_in_flight") == 0
    names = {s.labels.get("name") for m in metrics.REGISTRY.collect() for s in m.samples}
    assert "ops/no-such-tool-7f3a" not in names


async def test_a_call_over_its_budget_counts_as_rate_limited_and_as_a_rejection() -> None:
    security = {"limits": {"per_principal": {"rate": 0.001, "burst": 1}}}
    before = requests(name="ops/echo", outcome="rate_limited", code="-32032", era="2026")
    rejections = sample("mcp_gateway_rejections_total", control="rate_limit")
    async with gateway_with(security=security) as gateway:
        await gateway.guard.call_tool(Caller(), "ops/echo", {"text": "x"})
        with pytest.raises(RateLimited):
            await gateway.guard.call_tool(Caller(), "ops/echo", {"text": "x"})
    assert requests(name="ops/echo", outcome="rate_limited", code="-32032", era="2026") == before + 1
    assert sample("mcp_gateway_rejections_total", control="rate_limit") == rejections + 1


async def test_nothing_is_recorded_with_metrics_off() -> None:
    before = requests(name="ops/echo", outcome="ok", era="2026")
    async with gateway_with(telemetry={"metrics": {"enabled": False}}) as gateway:
        await gateway.guard.call_tool(Caller(), "ops/echo", {"text": "x"})
        async with scraper(gateway) as scrape:
            assert (await scrape.get("/metrics")).status_code == 404
    assert requests(name="ops/echo", outcome="ok", era="2026") == before
    async with gateway_with() as gateway:  # back on for the tests after this one
        pass


@asynccontextmanager
async def scraper(gateway: Gateway, client: tuple[str, int] = ("127.0.0.1", 40000)) -> AsyncIterator[Any]:
    app = build_app(gateway)
    transport = httpx2.ASGITransport(app=app, client=client)
    async with lifespan(app), httpx2.AsyncClient(transport=transport, base_url=LOCAL) as session:
        yield session


async def test_the_scrape_shows_backend_states_breakers_and_catalogue_sizes() -> None:
    async with gateway_with(down=True) as gateway, scraper(gateway) as scrape:
        answer = await scrape.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    lines = set(answer.text.splitlines())
    assert 'mcp_gateway_backend_state{backend="ops",state="ready"} 1.0' in lines
    assert 'mcp_gateway_backend_state{backend="hr",state="down"} 1.0' in lines
    assert 'mcp_gateway_backend_breaker_state{backend="ops",state="closed"} 1.0' in lines
    tools = len(await build("ops").list_tools())
    assert f'mcp_gateway_catalogue_items{{backend="ops",kind="tools"}} {float(tools)}' in lines
    assert 'mcp_gateway_catalogue_items{backend="hr",kind="tools"} 0.0' in lines
    assert "mcp_gateway_client_sessions 0.0" in lines
    assert any(line.startswith("mcp_gateway_requests_total") or "# TYPE mcp_gateway_requests" in line for line in lines)


async def test_metrics_are_served_to_loopback_alone_without_a_token() -> None:
    async with gateway_with() as gateway, scraper(gateway, ("192.0.2.7", 40000)) as scrape:
        assert (await scrape.get("/metrics")).status_code == 403


async def test_with_a_token_metrics_need_it_from_anywhere() -> None:
    settings = {"telemetry": {"metrics": {"token": "scrape-secret-123"}}}
    async with gateway_with(**settings) as gateway, scraper(gateway, ("192.0.2.7", 40000)) as scrape:
        assert (await scrape.get("/metrics")).status_code == 401
        wrong = await scrape.get("/metrics", headers={"Authorization": "Bearer scrape-secret-124"})
        assert wrong.status_code == 401
        right = await scrape.get("/metrics", headers={"Authorization": "Bearer scrape-secret-123"})
        assert right.status_code == 200
    assert "scrape-secret-123" in gateway.config.secret_values()


async def test_metrics_follow_the_host_allow_list_of_mcp() -> None:
    async with gateway_with() as gateway, scraper(gateway) as scrape:
        assert (await scrape.get("/metrics", headers={"Host": "evil.example"})).status_code == 421


async def test_reconnect_attempts_are_counted_per_backend() -> None:
    before = sample("mcp_gateway_backend_reconnects_total", backend="hr")
    ops_before = sample("mcp_gateway_backend_reconnects_total", backend="ops")
    async with gateway_with(down=True, reconnect_min=0.01, reconnect_max=0.02):
        with anyio.fail_after(10):
            while sample("mcp_gateway_backend_reconnects_total", backend="hr") < before + 2:
                await anyio.sleep(0.01)
    assert sample("mcp_gateway_backend_reconnects_total", backend="ops") == ops_before


async def test_list_changed_sent_is_counted_per_list() -> None:
    async with gateway_with() as gateway:
        before = sample("mcp_gateway_list_changed_total", kind="tools")
        await gateway.notifier.changed({Kind.TOOLS})
    assert sample("mcp_gateway_list_changed_total", kind="tools") == before + 1
