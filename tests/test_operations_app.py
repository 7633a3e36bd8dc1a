"""``build_operated_app`` as ``serve`` runs it: the change endpoints under ``/admin/api`` behind the admin API's
access control, reached by ``mcp-gateway backends add|remove`` over a real socket, and each backend's ``enabled``
and ``source`` as the runtime knows them."""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
import httpx2
import pytest

from gateway.catalogue.naming import Style
from gateway.operations.app import build_operated_app
from gateway.operations.runtime import operated
from tests.support.inproc import serving_app
from tests.test_cli_backends import ADMIN_KEY, KEYS, cli
from tests.test_operations_runtime import Backends, config_of

pytestmark = pytest.mark.anyio


async def test_the_cli_adds_and_removes_a_backend_through_the_served_admin_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backends = Backends("ops", "hr")
    async with (
        operated(config_of("ops", security=KEYS), tmp_path, backends.connect) as runtime,
        serving_app(build_operated_app(runtime.gateway, runtime=runtime), runtime.gateway.config) as port,
    ):
        url, gateway = f"http://127.0.0.1:{port}", runtime.gateway
        add = ("backends", "add", "--name", "hr", "--backend-url", "http://hr.invalid/mcp", "--url", url)
        refused = await anyio.to_thread.run_sync(cli, *add)
        assert "hr" not in gateway.upstreams
        added = await anyio.to_thread.run_sync(cli, *add, "--token", ADMIN_KEY)
        assert "hr/echo" in {t.name for t in gateway.catalog.tools(Style.CANONICAL)}
        async with httpx2.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
            listed = {b["name"]: b for b in (await http.get("/admin/api/backends")).json()["backends"]}
            await http.post("/admin/api/backends/ops/disable")
            ops = (await http.get("/admin/api/backends/ops")).json()
        removed = await anyio.to_thread.run_sync(cli, "backends", "remove", "hr", "--url", url, "--token", ADMIN_KEY)
        assert "hr" not in gateway.upstreams
    assert (refused, added, removed) == (1, 0, 0)
    assert (listed["ops"]["source"], listed["hr"]["source"]) == ("config", "runtime")
    assert listed["hr"]["enabled"] and not ops["enabled"]
    assert capsys.readouterr().err.count("\n") == 1  # the refusal, on one line
