"""Backend connections: every page listed, one long-lived session, reconnecting when a backend appears late."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest
from mcp import Client, types
from mcp.server import Server

from gateway.catalogue.catalog import Catalog, Snapshot
from gateway.catalogue.naming import Style
from gateway.config import BackendConfig, GatewayConfig
from gateway.core import Gateway
from gateway.front.server import build_server
from gateway.upstream import backend as supervision
from tests.support.inproc import READER_INFO, Unreachable, config_for, running_gateway
from tests.support.procs import free_port
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
PAGE = 2


def paginated_server(count: int) -> Server[Any]:
    """A backend that hands out its tools, prompts, resources and templates ``PAGE`` at a time."""

    def page(items: list[Any], params: types.PaginatedRequestParams | None) -> tuple[list[Any], str | None]:
        start = int(params.cursor) if params and params.cursor else 0
        end = start + PAGE
        return items[start:end], (str(end) if end < len(items) else None)

    tools = [types.Tool(name=f"t{i}", input_schema={"type": "object"}) for i in range(count)]
    prompts = [types.Prompt(name=f"p{i}") for i in range(count)]
    resources = [types.Resource(uri=f"mem://r{i}", name=f"r{i}") for i in range(count)]
    templates = [types.ResourceTemplate(uri_template=f"mem://t{i}/{{x}}", name=f"t{i}") for i in range(count)]

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        items, cursor = page(tools, params)
        return types.ListToolsResult(tools=items, next_cursor=cursor)

    async def list_prompts(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        items, cursor = page(prompts, params)
        return types.ListPromptsResult(prompts=items, next_cursor=cursor)

    async def list_resources(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        items, cursor = page(resources, params)
        return types.ListResourcesResult(resources=items, next_cursor=cursor)

    async def list_templates(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        items, cursor = page(templates, params)
        return types.ListResourceTemplatesResult(resource_templates=items, next_cursor=cursor)

    return Server(
        "paged",
        on_list_tools=list_tools,
        on_list_prompts=list_prompts,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
    )


class CountingConnector:
    """Connects to in-process servers, failing the first ``failures`` attempts per backend."""

    def __init__(self, servers: dict[str, Any], failures: int = 0) -> None:
        self.servers = servers
        self.failures = failures
        self.attempts: dict[str, int] = dict.fromkeys(servers, 0)

    async def __call__(self, config: BackendConfig, stack: AsyncExitStack, hooks: Any) -> Any:
        self.attempts[config.name] += 1
        if self.attempts[config.name] <= self.failures:
            raise Unreachable(f"{config.name} is not up yet")
        return self.servers[config.name]


@pytest.mark.parametrize("mode", ["auto", "2026-07-28"])
async def test_every_page_of_every_list_is_walked(mode: str) -> None:
    config = config_for({"paged": "pg"})
    config = config.model_copy(update={"backends": (config.backends[0].model_copy(update={"protocol": mode}),)})
    async with Gateway(config, CountingConnector({"paged": paginated_server(5)})) as gw:
        counts = gw.catalog.counts("paged")
    assert counts == {"tools": 5, "prompts": 5, "resources": 5, "templates": 5}


async def test_many_calls_share_one_backend_session() -> None:
    connector = CountingConnector({"ops": build("ops")})
    async with Gateway(config_for({"ops": "ops"}), connector) as gw, Client(build_server(gw)) as c:
        for i in range(20):
            await c.call_tool("ops/echo", {"text": str(i)})
    assert connector.attempts == {"ops": 1}


async def test_a_backend_that_appears_late_joins_and_clients_hear_of_it() -> None:
    connector = CountingConnector({"ops": build("ops"), "hr": build("hr")}, failures=2)
    config = config_for({"ops": "ops", "hr": "hr"}, reconnect_min=0.05, reconnect_max=0.2, start_timeout=5)
    send, receive = anyio.create_memory_object_stream[None](10)

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            send.send_nowait(None)

    gateway = Gateway(config, connector)
    async with (
        gateway as gw,
        Client(build_server(gw), mode="legacy", message_handler=on_message, client_info=READER_INFO) as c,
    ):
        names = {t.name for t in (await c.list_tools()).tools}
        with anyio.fail_after(5):
            while not {"ops/echo", "hr/echo"} <= names:
                await receive.receive()
                names = {t.name for t in (await c.list_tools()).tools}
    send.close()
    receive.close()
    assert gw.ready
    assert connector.attempts == {"ops": 3, "hr": 3}


async def test_a_backend_whose_tool_list_is_not_valid_mcp_is_isolated_and_reported() -> None:
    async def bad_tools(ctx: Any, params: Any) -> dict[str, Any]:
        return {"tools": [{"name": "broken", "inputSchema": "not a schema"}]}

    broken = Server("broken")
    broken.add_request_handler("tools/list", types.PaginatedRequestParams, bad_tools)
    connector = CountingConnector({"ops": build("ops"), "bad": broken})
    async with (
        Gateway(config_for({"ops": "ops", "bad": "bad"}), connector) as gw,
        Client(build_server(gw), client_info=READER_INFO) as c,
    ):
        names = {t.name for t in (await c.list_tools()).tools}
        result = await c.call_tool("ops/echo", {"text": "fine"})
        status = {b["name"]: b for b in gw.status()["backends"]}
    assert "ops/echo" in names and not any(n.startswith("bad/") for n in names)
    assert status["bad"]["state"] == "down" and status["bad"]["error"]
    assert result.content[0].text == "fine"  # type: ignore[union-attr]


async def test_listings_that_arrive_together_are_merged_into_the_catalogue_once() -> None:
    gateway = Gateway(config_for({"a": "a", "b": "b", "c": "c"}))
    tool = types.Tool(name="t", input_schema={"type": "object"})
    snapshot = Snapshot(tools=(tool,))
    merged: list[int] = []

    async def arrive(name: str) -> None:
        await gateway._on_change(gateway.upstreams[name], snapshot)
        merged.append(gateway.catalog.generation)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for name in ("a", "b", "c"):
                tg.start_soon(arrive, name)

    assert merged == [1, 1, 1]
    assert [t.name for t in gateway.catalog.tools(Style.CANONICAL)] == ["a/t", "b/t", "c/t"]


async def test_the_listings_that_arrive_during_the_start_are_merged_once_when_every_backend_has_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    merges: list[set[str]] = []
    apply = Catalog.apply

    def counted(catalog: Catalog, changes: Any) -> Any:
        merges.append(set(changes))
        return apply(catalog, changes)

    monkeypatch.setattr(Catalog, "apply", counted)
    servers = {"ops": build("ops"), "hr": build("hr"), "gone": None}
    async with running_gateway(servers) as gw:
        names = {t.name for t in gw.catalog.tools(Style.CANONICAL)}
        merged_at_start = list(merges)
    assert merged_at_start == [{"ops", "hr", "gone"}]
    assert "ops/echo" in names and "hr/echo" in names


async def test_a_backend_that_refused_connections_is_only_checked_until_it_listens_then_reconnected_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    checks = 0
    check = supervision.reachable

    async def counted(config: BackendConfig) -> bool | None:
        nonlocal checks
        checks += 1
        return await check(config)

    async def accept_and_close(stream: anyio.abc.SocketStream) -> None:
        await stream.aclose()

    monkeypatch.setattr(supervision, "reachable", counted)
    connector = CountingConnector({"toy": build("toy")}, failures=1)
    backend = BackendConfig(name="toy", url=f"http://127.0.0.1:{port}/mcp")
    # A backoff far longer than the test: only the check can bring the backend back in time.
    config = GatewayConfig(backends=(backend,), reconnect_min=60, reconnect_max=60)
    async with Gateway(config, connector) as gw:
        await anyio.sleep(1.0)  # an observation window, not a wait for anything
        while_down = checks, connector.attempts["toy"]
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, accept_and_close)
            with anyio.fail_after(2):
                await gw.upstreams["toy"].ready.wait()
            tg.cancel_scope.cancel()
    assert while_down[0] <= 6  # one check every 0.25 s, and one as the pause begins
    assert while_down[1] == 1  # the failed attempt at the start, and no other until the backend listens
    assert connector.attempts["toy"] == 2
