"""Who may use the admin API: the admin role when authentication is on, loopback when it is off, and the same
Host/Origin allow-lists as ``/mcp``; refusals say why and carry nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest

from gateway.core import Gateway
from gateway.operations.app import build_operated_app
from tests.support.inproc import LOCAL, lifespan, running_gateway, serving_app
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ADMIN_KEY = "admin-key-0123456789abcdef"
READER_KEY = "reader-key-0123456789abcdef"
KEYS = {
    "auth": {
        "api_keys": [
            {"principal": "root", "key": ADMIN_KEY, "roles": ["admin"]},
            {"principal": "reader", "key": READER_KEY, "roles": ["ops"]},
        ]
    }
}
BACKENDS = "/admin/api/backends"


@asynccontextmanager
async def in_process(gateway: Gateway, client: str) -> AsyncIterator[httpx2.AsyncClient]:
    """The operated app in process, the request coming from ``client`` (the ASGI scope's client address)."""
    app = build_operated_app(gateway)
    transport = httpx2.ASGITransport(app=app, client=(client, 40000))
    async with lifespan(app), httpx2.AsyncClient(transport=transport, base_url=LOCAL) as session:
        yield session


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_over_http_no_credential_is_401_a_principal_without_the_role_403_and_an_admin_200() -> None:
    async with (
        running_gateway({"toy": build()}, security=KEYS) as gw,
        serving_app(build_operated_app(gw), gw.config) as port,
        httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        anonymous = await http.get(BACKENDS)
        wrong = await http.get(BACKENDS, headers=bearer("not-a-key-at-all-0123456789"))
        reader = await http.get(BACKENDS, headers=bearer(READER_KEY))
        reader_post = await http.post("/admin/api/backends/toy/reconnect", headers=bearer(READER_KEY))
        admin = await http.get(BACKENDS, headers=bearer(ADMIN_KEY))
        document = await http.get("/admin/openapi.json")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="mcp-gateway"'
    assert anonymous.json()["error"]["code"] == "unauthorized"
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert (reader.status_code, reader.json()["error"]["code"]) == (403, "forbidden")
    assert list(reader.json()) == ["error"]  # no data beside the reason
    assert reader_post.status_code == 403
    assert document.status_code == 401
    assert admin.status_code == 200
    assert [b["name"] for b in admin.json()["backends"]] == ["toy"]


async def test_the_admin_role_is_configurable() -> None:
    settings: dict[str, Any] = {"security": KEYS, "admin": {"role": "ops"}}
    async with running_gateway({"toy": build()}, **settings) as gw, in_process(gw, "127.0.0.1") as http:
        reader = await http.get(BACKENDS, headers=bearer(READER_KEY))
        root = await http.get(BACKENDS, headers=bearer(ADMIN_KEY))
    assert (reader.status_code, root.status_code) == (200, 403)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
async def test_without_authentication_a_loopback_client_is_served(address: str) -> None:
    async with running_gateway({"toy": build()}) as gw, in_process(gw, address) as http:
        answer = await http.get(BACKENDS)
    assert answer.status_code == 200


@pytest.mark.parametrize("address", ["192.0.2.7", "10.0.0.1", "2001:db8::1"])
async def test_without_authentication_a_client_off_loopback_is_403(address: str) -> None:
    async with running_gateway({"toy": build()}) as gw, in_process(gw, address) as http:
        listed = await http.get(BACKENDS)
        reconnect = await http.post("/admin/api/backends/toy/reconnect")
    assert (listed.status_code, listed.json()["error"]["code"]) == (403, "forbidden")
    assert reconnect.status_code == 403
    assert gw.upstreams["toy"].state.value == "ready"  # nothing was done


async def test_with_authentication_an_admin_off_loopback_is_served() -> None:
    async with running_gateway({"toy": build()}, security=KEYS) as gw, in_process(gw, "192.0.2.7") as http:
        answer = await http.get(BACKENDS, headers=bearer(ADMIN_KEY))
    assert answer.status_code == 200


async def test_the_host_and_origin_allow_lists_of_mcp_apply() -> None:
    async with running_gateway({"toy": build()}) as gw, in_process(gw, "127.0.0.1") as http:
        rebound = await http.get(BACKENDS, headers={"Host": "attacker.example:8000"})
        foreign = await http.get(BACKENDS, headers={"Origin": "https://attacker.example"})
        local = await http.get(BACKENDS, headers={"Origin": "http://localhost:8000"})
    assert (rebound.status_code, rebound.json()["error"]["code"]) == (421, "host_not_allowed")
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (403, "origin_not_allowed")
    assert local.status_code == 200


async def test_the_admin_api_can_be_turned_off() -> None:
    async with running_gateway({"toy": build()}, admin={"enabled": False}) as gw, in_process(gw, "127.0.0.1") as http:
        answer = await http.get(BACKENDS)
    assert answer.status_code == 404


async def test_an_unknown_admin_path_is_a_json_404_behind_the_same_check() -> None:
    async with running_gateway({"toy": build()}, security=KEYS) as gw, in_process(gw, "127.0.0.1") as http:
        anonymous = await http.get("/admin/api/nothing")
        admin = await http.get("/admin/api/nothing", headers=bearer(ADMIN_KEY))
    assert anonymous.status_code == 401
    assert (admin.status_code, admin.json()["error"]["code"]) == (404, "not_found")


async def test_the_dashboard_page_holds_no_data_and_passes_the_host_check_alone() -> None:
    async with running_gateway({"toy": build()}, security=KEYS) as gw, in_process(gw, "192.0.2.7") as http:
        page = await http.get("/admin/")
        rebound = await http.get("/admin/", headers={"Host": "attacker.example"})
        data = await http.get("/admin/api/backends")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "toy" not in page.text
    assert rebound.status_code == 421
    assert data.status_code == 401
