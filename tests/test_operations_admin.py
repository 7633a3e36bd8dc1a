"""The admin API's read side: backends and their call statistics, reconnects, pinned-tool approvals, and the
OpenAPI document of every route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import MCPError, types
from mcp.server import MCPServer
from openapi_spec_validator import validate
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.config import BackendConfig
from gateway.core import Gateway
from gateway.operations.admin import admin_app, api_routes
from gateway.operations.app import build_operated_app
from tests.support.inproc import LOCAL, client, config_for, lifespan, running_gateway
from tests.support.toy_server import build
from tests.test_pinning import shifting_backend

pytestmark = pytest.mark.anyio
BACKEND_FIELDS = {
    "name", "prefix", "transport", "protocol", "state", "breaker", "tools", "prompts", "resources", "error",
    "enabled", "source", "stderr_tail", "calls",
}  # fmt: skip


@asynccontextmanager
async def admin(gateway: Gateway) -> AsyncIterator[httpx2.AsyncClient]:
    app = build_operated_app(gateway)
    transport = httpx2.ASGITransport(app=app)
    async with lifespan(app), httpx2.AsyncClient(transport=transport, base_url=LOCAL) as session:
        yield session


async def test_backends_list_their_state_counts_and_call_statistics() -> None:
    async with running_gateway({"toy": build(), "other": build("other")}) as gw, admin(gw) as http:
        async with client(gw) as local:
            for text in ("a", "b", "c"):
                await local.call_tool("toy/echo", {"text": text})
            with pytest.raises(MCPError):
                await local.call_tool("toy/fail", {})
        listed = (await http.get("/admin/api/backends")).json()["backends"]
        one = (await http.get("/admin/api/backends/toy")).json()
        unknown = await http.get("/admin/api/backends/nope")
    toy = next(b for b in listed if b["name"] == "toy")
    other = next(b for b in listed if b["name"] == "other")
    assert set(toy) >= BACKEND_FIELDS and one == toy
    assert (toy["state"], toy["breaker"], toy["error"]) == ("ready", "closed", None)
    assert toy["transport"] == "streamable_http"
    assert (toy["enabled"], toy["source"], toy["stderr_tail"], toy["prefix"]) == (True, "config", [], "toy")
    assert toy["tools"] > 0 and toy["protocol"]
    calls = toy["calls"]
    assert (calls["count"], calls["errors"], calls["window_seconds"]) == (4, 1, 300)
    assert 0 < calls["p50_ms"] <= calls["p95_ms"] < 10_000
    assert calls["total"] == 4
    idle = {"count": 0, "errors": 0, "p50_ms": None, "p95_ms": None, "window_seconds": 300, "total": 0}
    assert other["calls"] == idle
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_backend")


class Connections:
    """Connects to in-process servers and counts the connections each backend was given."""

    def __init__(self, servers: dict[str, MCPServer]) -> None:
        self.servers = servers
        self.opened = dict.fromkeys(servers, 0)

    async def __call__(self, config: BackendConfig, stack: AsyncExitStack, hooks: Any) -> Any:
        self.opened[config.name] += 1
        return self.servers[config.name]


async def test_reconnect_opens_a_new_connection_at_once_and_the_backend_is_ready_again() -> None:
    connections = Connections({"toy": build()})
    # A backoff this long would outlast the test's deadline: the reconnect must not wait for it.
    config = config_for({"toy": "toy"}, reconnect_min=30, reconnect_max=60)
    async with Gateway(config, connections) as gw, admin(gw) as http:
        upstream = gw.upstreams["toy"]
        before = upstream.client
        answer = await http.post("/admin/api/backends/toy/reconnect")
        assert upstream.state.value == "down"  # dropped before the answer
        with anyio.fail_after(5):
            await upstream.ready.wait()
        async with client(gw) as local:
            echoed = await local.call_tool("toy/echo", {"text": "again"})
        unknown = await http.post("/admin/api/backends/nope/reconnect")
    assert (answer.status_code, answer.json()) == (202, {"backend": "toy"})
    assert connections.opened["toy"] == 2
    assert upstream.client is not None and upstream.client is not before
    assert echoed.content[0].text == "again"  # type: ignore[union-attr]
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_backend")


async def test_approving_a_withheld_tool_lists_it_again_and_tells_connected_clients(tmp_path: Path) -> None:
    changes = 0
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        nonlocal changes
        if isinstance(message, types.ToolListChangedNotification):
            changes += 1
            changed.set()

    security = {"pinning": {"file": str(tmp_path / "pins.json")}}
    async with (
        running_gateway({"bank": shifting_backend()}, security=security) as gw,
        admin(gw) as http,
        client(gw, mode="legacy", message_handler=on_message) as local,
    ):
        assert (await http.get("/admin/api/pins")).json() == {"pending": []}
        await local.call_tool("bank/mutate", {})
        with anyio.fail_after(5):
            await changed.wait()
        withheld = {t.name for t in (await local.list_tools()).tools}
        pending = (await http.get("/admin/api/pins")).json()["pending"]
        changed, before = anyio.Event(), changes
        approved = await http.post("/admin/api/pins/approve", json={"tool": "bank/transfer"})
        with anyio.fail_after(5):
            await changed.wait()
        listed = {t.name for t in (await local.list_tools()).tools}
        again = await http.post("/admin/api/pins/approve", json={"tool": "bank/transfer"})
        nameless = await http.post("/admin/api/pins/approve", json={"name": "bank/transfer"})
        after = (await http.get("/admin/api/pins")).json()
    assert "bank/transfer" not in withheld
    assert [(p["tool"], p["backend"]) for p in pending] == [("bank/transfer", "bank")]
    assert len(pending[0]["fingerprint"]) == 64 and pending[0]["since"].endswith("+00:00")
    assert (approved.status_code, approved.json()) == (200, {"approved": "bank/transfer"})
    assert changes == before + 1 and "bank/transfer" in listed
    assert (again.status_code, again.json()["error"]["code"]) == (404, "not_pending")
    assert (nameless.status_code, nameless.json()["error"]) == (
        422,
        {"code": "invalid", "message": 'Name the tool: {"tool": name}', "field": "tool"},
    )
    assert after == {"pending": []}


async def test_approving_without_pinning_is_a_conflict() -> None:
    async with running_gateway({"toy": build()}) as gw, admin(gw) as http:
        answer = await http.post("/admin/api/pins/approve", json={"tool": "toy/echo"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "pinning_off")


async def add_backend(request: Request) -> Response:
    """Add a backend.
    ---
    summary: Add a backend
    responses:
      201:
        description: Backend
    """
    return JSONResponse({}, status_code=201)


async def test_the_openapi_document_is_valid_and_covers_every_api_route_extra_ones_included() -> None:
    extra = [Route("/backends", add_backend, methods=["POST"])]
    async with running_gateway({"toy": build()}) as gw:
        app = admin_app(gw, extra)
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=LOCAL) as http:
            document = (await http.get("/openapi.json")).json()
            added = await http.post("/api/backends")
        routes = api_routes(gw, extra)
    validate(document)
    assert document["openapi"].startswith("3.1")
    expected = {(f"/admin/api{r.path}", m.lower()) for r in routes for m in (r.methods or ()) if m != "HEAD"}
    found = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert found == expected and ("/admin/api/backends", "post") in found
    assert added.status_code == 201
    assert all(isinstance(r, Route) for r in routes)
