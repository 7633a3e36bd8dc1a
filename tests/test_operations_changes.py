"""The admin API's change endpoints, mounted in a plain Starlette app: status codes, the error shape, and nothing
changed by a refused request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.schemas import SchemaGenerator

from gateway.catalogue.naming import Style
from gateway.operations.changes import change_routes
from gateway.operations.runtime import Runtime, operated
from tests.test_operations_runtime import Backends, config_of, entry

pytestmark = pytest.mark.anyio


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx2.AsyncClient, Runtime]]:
    backends = Backends("ops", "hr")
    async with operated(config_of("ops"), tmp_path, backends.connect) as runtime:
        app = Starlette(routes=[Mount("/admin/api", routes=change_routes(runtime))])
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            yield http, runtime


def error(response: httpx2.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


async def test_post_adds_a_backend_and_answers_201_with_it(api: tuple[httpx2.AsyncClient, Runtime]) -> None:
    http, runtime = api
    response = await http.post("/admin/api/backends", json=entry("hr"))
    assert response.status_code == 201
    assert response.json()["name"] == "hr" and response.json()["state"] == "ready"
    assert "hr/echo" in {t.name for t in runtime.gateway.catalog.tools(Style.CANONICAL)}


async def test_refusals_have_their_status_code_and_shape_and_change_nothing(
    api: tuple[httpx2.AsyncClient, Runtime],
) -> None:
    http, runtime = api
    before = runtime.gateway.config
    invalid = await http.post("/admin/api/backends", json=entry("hr", url="nope"))
    taken = await http.post("/admin/api/backends", json=entry("ops"))
    garbled = await http.post("/admin/api/backends", content=b"{not json")
    listed = await http.post("/admin/api/backends", json=[entry("hr")])
    unknown = await http.put("/admin/api/backends/nobody", json=entry("nobody"))
    gone = await http.delete("/admin/api/backends/nobody")
    switch = await http.post("/admin/api/backends/nobody/disable")
    tool = await http.post("/admin/api/tools/disable", json={"tool": "ops/nothing"})
    assert (invalid.status_code, error(invalid)["code"], error(invalid)["field"]) == (422, "invalid", "url")
    assert (taken.status_code, error(taken)["code"]) == (409, "backend_exists")
    assert garbled.status_code == 400 and "field" not in error(garbled)
    assert (listed.status_code, error(listed)["field"]) == (422, "")
    assert (unknown.status_code, error(unknown)["code"]) == (404, "unknown_backend")
    assert (gone.status_code, switch.status_code) == (404, 404)
    assert (tool.status_code, error(tool)["code"]) == (404, "unknown_tool")
    assert runtime.gateway.config == before


async def test_put_delete_and_the_switches_answer_as_the_contract_says(
    api: tuple[httpx2.AsyncClient, Runtime],
) -> None:
    http, runtime = api
    replaced = await http.put("/admin/api/backends/ops", json={"url": "http://ops.invalid/mcp", "call_timeout": 7})
    off = await http.post("/admin/api/backends/ops/disable")
    on = await http.post("/admin/api/backends/ops/enable")
    tool_off = await http.post("/admin/api/tools/disable", json={"tool": "ops/echo"})
    tool_on = await http.post("/admin/api/tools/enable", json={"tool": "ops/echo"})
    removed = await http.delete("/admin/api/backends/ops")
    assert replaced.status_code == 200 and replaced.json()["name"] == "ops"
    assert off.json() == {"backend": "ops", "enabled": False}
    assert on.json() == {"backend": "ops", "enabled": True}
    assert tool_off.json() == {"tool": "ops/echo", "enabled": False}
    assert tool_on.json() == {"tool": "ops/echo", "enabled": True}
    assert removed.json() == {"removed": "ops"}
    assert runtime.gateway.config.backends == ()


async def test_every_route_documents_itself_for_the_openapi_document(
    api: tuple[httpx2.AsyncClient, Runtime],
) -> None:
    _, runtime = api
    generator = SchemaGenerator({"openapi": "3.1.0", "info": {"title": "admin", "version": "1"}})
    schema = generator.get_schema(routes=[Mount("/admin/api", routes=change_routes(runtime))])
    operations = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert operations == {
        ("/admin/api/backends", "post"),
        ("/admin/api/backends/{name}", "put"),
        ("/admin/api/backends/{name}", "delete"),
        ("/admin/api/backends/{name}/enable", "post"),
        ("/admin/api/backends/{name}/disable", "post"),
        ("/admin/api/tools/enable", "post"),
        ("/admin/api/tools/disable", "post"),
    }
    assert all("responses" in op for item in schema["paths"].values() for op in item.values())
