"""Replicas sharing one real Redis: what happens on one reaches the clients of the other, once, and a Redis outage
degrades to a single replica's behaviour and heals by itself.

Each test runs two gateways in this process (``A`` and ``B``), each with its own link to the same in-process
backend, as two replicas reach one backend; only the bus joins them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.server import MCPServer
from mcp.server.connection import Connection

from gateway.config import BackendConfig, GatewayConfig
from gateway.core import Gateway
from gateway.operations.app import build_operated_app
from gateway.operations.runtime import operated
from tests.support.inproc import client, http, http_client, serving, serving_app
from tests.support.redis_server import RedisServer, redis_server
from tests.support.toy_server import build

pytestmark = [pytest.mark.anyio, pytest.mark.processes]
WAIT = 10.0
URI = "toy+toy://about"
OTHER = "toy+toy://notes/1"
KEY = "k" * 32


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


class Heard:
    """What one client heard: resource updates in order, and tool list changes counted."""

    def __init__(self) -> None:
        self.updates: list[str] = []
        self.tool_lists = 0
        self._arrived = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.updates.append(str(message.params.uri))
        elif isinstance(message, types.ToolListChangedNotification):
            self.tool_lists += 1
        self._arrived.set()

    async def until(self, done: Callable[[], bool]) -> None:
        with anyio.fail_after(WAIT):
            while not done():
                self._arrived = anyio.Event()
                await self._arrived.wait()


class Servers:
    """The in-process backends both replicas reach, by name."""

    def __init__(self, servers: Mapping[str, MCPServer]) -> None:
        self.servers = dict(servers)

    async def connect(self, config: BackendConfig, stack: AsyncExitStack, hooks: Any) -> Any:
        return self.servers[config.name]


def config(redis: RedisServer, *names: str, **settings: Any) -> GatewayConfig:
    backends = [{"name": n, "url": f"http://{n}.invalid/mcp"} for n in names]
    cluster = {"store": redis.url, "session_keys": [KEY]}
    return GatewayConfig.model_validate({"backends": backends, "cluster": cluster, **settings})


@asynccontextmanager
async def replicas(cfg: GatewayConfig, servers: Servers) -> AsyncIterator[tuple[Gateway, Gateway]]:
    async with Gateway(cfg, servers.connect) as a, Gateway(cfg, servers.connect) as b:
        await until_store(a, "ok")
        await until_store(b, "ok")
        yield a, b


async def until_store(gateway: Gateway, state: str) -> dict[str, Any]:
    """``/readyz``'s ``store`` entry once it says ``state`` (polled, with a deadline)."""
    with anyio.fail_after(WAIT):
        while (store := gateway.status()["store"])["state"] != state:
            await anyio.sleep(0.02)
    return dict(store)


class NoStream:
    """The outbound of a 2025 connection whose notification stream is open on another replica: it hears nothing
    (the SDK drops what it would send), and counts what it was given."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: Any = None) -> None:
        self.sent.append(method)

    async def send_raw_request(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("nothing asks a client here")


async def test_an_update_for_a_session_subscribed_through_a_reaches_its_stream_on_b_once(redis: RedisServer) -> None:
    servers = Servers({"toy": build("toy")})
    heard = Heard()
    async with (
        replicas(config(redis, "toy"), servers) as (a, b),
        serving(b) as url,
        Client(url, mode="legacy", message_handler=heard) as on_b,
    ):
        await on_b.list_tools()  # the session's connection on B is known by its id, its GET stream open there
        session = next(c.session_id for c in b.notifier._connections if c.session_id)
        outbound = NoStream()
        on_a = Connection(outbound, protocol_version="2025-11-25", session_id=session)  # type: ignore[arg-type]
        await a.subscriptions.add(on_a, URI)
        await a.subscriptions.add(on_a, OTHER)
        await on_b.subscribe_resource(URI)  # B holds this one itself too: it must not be told twice

        async with client(a) as operator:
            await operator.call_tool("toy/touch", {"uri": "toy://about"})
            await operator.call_tool("toy/touch", {"uri": "toy://notes/1"})
        await heard.until(lambda: OTHER in heard.updates)
    # OTHER went A -> bus -> B after the bus message for URI, so that one was handled (and skipped) before it.
    assert heard.updates == [URI, OTHER]
    assert outbound.sent == ["notifications/resources/updated"] * 2


async def test_a_backend_added_on_a_is_served_by_b_and_b_clients_hear_the_list_changed(
    redis: RedisServer, tmp_path: Path
) -> None:
    servers = Servers({"ops": build("ops"), "hr": build("hr")})
    heard = Heard()
    cfg = config(redis, "ops")
    async with (
        operated(cfg, tmp_path / "a", servers.connect) as on_a,
        operated(cfg, tmp_path / "b", servers.connect) as on_b,
        client(on_b.gateway, mode="legacy", message_handler=heard) as of_b,
    ):
        await until_store(on_b.gateway, "ok")
        await on_a.add({"name": "hr", "url": "http://hr.invalid/mcp"})
        await heard.until(lambda: heard.tool_lists > 0)
        result = await of_b.call_tool("hr/echo", {"text": "hi"})
        assert on_b.describe("hr")["source"] == "runtime"
        await on_a.set_enabled("hr", False)
        await heard.until(lambda: heard.tool_lists > 1)
        listed = {t.name for t in (await of_b.list_tools()).tools}
    assert result.content[0].text == "hi"  # type: ignore[union-attr]
    assert "hr/echo" not in listed and "ops/echo" in listed


async def test_a_virtual_server_added_on_a_is_served_by_b(redis: RedisServer, tmp_path: Path) -> None:
    servers = Servers({"ops": build("ops")})
    heard = Heard()
    cfg = config(redis, "ops")
    async with (
        operated(cfg, tmp_path / "a", servers.connect) as on_a,
        operated(cfg, tmp_path / "b", servers.connect) as on_b,
        serving_app(build_operated_app(on_b.gateway, runtime=on_b), cfg) as port,
        listening(f"http://127.0.0.1:{port}/mcp", heard) as of_b,
    ):
        await until_store(on_b.gateway, "ok")
        await of_b.list_tools()
        await on_a.endpoints.put("servers", "team", {"tools": ["ops/echo"]})
        await heard.until(lambda: heard.tool_lists > 0)
        async with http_client(f"http://127.0.0.1:{port}/servers/team/mcp") as team:
            listed = {t.name for t in (await team.list_tools()).tools}
        source = on_b.endpoints.server("team")["source"]
    assert listed == {"ops/echo"} and source == "runtime"


@asynccontextmanager
async def listening(url: str, heard: Heard) -> AsyncIterator[Client]:
    """A 2025 client over streamable HTTP that tells ``heard`` what it hears."""
    async with httpx2.AsyncClient() as session:
        transport = streamable_http_client(url, http_client=session)
        async with Client(transport, mode="legacy", message_handler=heard) as connected:  # type: ignore[arg-type]
            yield connected


async def test_a_replica_started_later_takes_the_changes_made_before(redis: RedisServer, tmp_path: Path) -> None:
    servers = Servers({"ops": build("ops"), "hr": build("hr")})
    cfg = config(redis, "ops")
    async with operated(cfg, tmp_path / "a", servers.connect) as on_a:
        await until_store(on_a.gateway, "ok")
        await on_a.add({"name": "hr", "url": "http://hr.invalid/mcp"})
        async with operated(cfg, tmp_path / "b", servers.connect) as on_b:
            assert "hr" in {b.name for b in on_b.gateway.config.backends}
            assert on_b.describe("hr")["state"] == "ready"


async def test_an_approval_on_a_lets_b_serve_the_withheld_tool(redis: RedisServer, tmp_path: Path) -> None:
    servers = Servers({"toy": build("toy")})
    for replica in ("a", "b", "c"):  # each pinned an older definition of toy/echo: it is withheld on each
        pins = {"tools": {"toy/echo": {"fingerprint": "0" * 64, "definition": {"name": "echo"}}}}
        (tmp_path / f"{replica}.json").write_text(json.dumps(pins))
    a_cfg = config(redis, "toy", security={"pinning": {"file": str(tmp_path / "a.json")}})
    b_cfg = config(redis, "toy", security={"pinning": {"file": str(tmp_path / "b.json")}})
    heard = Heard()
    async with (
        Gateway(a_cfg, servers.connect) as a,
        Gateway(b_cfg, servers.connect) as b,
        client(b, mode="legacy", message_handler=heard) as of_b,
    ):
        await until_store(a, "ok")
        await until_store(b, "ok")
        assert "toy/echo" not in {t.name for t in (await of_b.list_tools()).tools}
        assert await a.approve_tools(["toy/echo"]) == ["toy/echo"]
        await heard.until(lambda: heard.tool_lists > 0)
        listed = {t.name for t in (await of_b.list_tools()).tools}
        c_cfg = config(redis, "toy", security={"pinning": {"file": str(tmp_path / "c.json")}})
        async with Gateway(c_cfg, servers.connect) as c, client(c) as of_c:  # started after the approval
            listed_later = {t.name for t in (await of_c.list_tools()).tools}
    assert "toy/echo" in listed and "toy/echo" in listed_later
    assert json.loads((tmp_path / "b.json").read_text())["tools"]["toy/echo"]["fingerprint"] != "0" * 64


async def test_redis_killed_is_reported_calls_go_on_and_it_heals_when_redis_is_back(redis: RedisServer) -> None:
    servers = Servers({"toy": build("toy")})
    # One URL for everything: the rate-limit store's is the bus's too.
    limits = {"store": redis.url, "per_principal": {"rate": 100, "burst": 100}}
    cfg = GatewayConfig.model_validate(
        {"backends": [{"name": "toy", "url": "http://toy.invalid/mcp"}], "security": {"limits": limits}}
    )
    heard = Heard()
    async with (
        Gateway(cfg, servers.connect) as gateway,
        http(gateway) as web,
        client(gateway, mode="legacy", message_handler=heard) as local,
    ):
        assert (await until_store(gateway, "ok")) == {"state": "ok"}
        redis.kill()
        store = await until_store(gateway, "unreachable")
        assert store["error"]
        ready = await web.get("/readyz")
        assert ready.status_code == 200 and ready.json()["store"]["state"] == "unreachable"
        result = await local.call_tool("toy/echo", {"text": "still served"})
        assert result.content[0].text == "still served"  # type: ignore[union-attr]
        redis.start()
        await until_store(gateway, "ok")
        await heard.until(lambda: heard.tool_lists > 0)  # lists resynchronised after the outage
        assert (await web.get("/readyz")).json()["store"] == {"state": "ok"}


async def test_a_single_process_has_no_store_entry() -> None:
    servers = Servers({"toy": build("toy")})
    async with Gateway(GatewayConfig.model_validate({"backends": []}), servers.connect) as gateway:
        assert "store" not in gateway.status()


def test_the_cluster_store_must_be_memory_or_a_redis_url() -> None:
    with pytest.raises(ValueError, match="redis://"):
        GatewayConfig.model_validate({"cluster": {"store": "http://127.0.0.1:6379", "session_keys": ["k" * 32]}})
