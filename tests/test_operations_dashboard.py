"""The dashboard at ``/admin/``, in a real headless Chromium: it shows the backends as they go down and come back,
their calls, the errors seen, and approves a withheld tool. Its screenshot of a backend down is the one in
docs/dashboard.png: ``DASHBOARD_SCREENSHOT=docs/dashboard.png`` refreshes it; otherwise it stays in the
test's folder."""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from mcp.server import MCPServer
from playwright.async_api import Page, async_playwright

from gateway.config import BackendConfig
from gateway.core import Gateway
from gateway.operations.app import build_operated_app
from tests.support.inproc import Unreachable, config_for, serving_app
from tests.support.toy_server import build
from tests.test_pinning import shifting_backend

pytestmark = [pytest.mark.anyio, pytest.mark.processes]
CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 10_000


class Switchable:
    """In-process backends, each of which can be made unreachable."""

    def __init__(self, servers: dict[str, MCPServer]) -> None:
        self.servers = servers
        self.down: set[str] = set()

    async def __call__(self, config: BackendConfig, stack: AsyncExitStack, hooks: Any) -> Any:
        if config.name in self.down:
            raise Unreachable(f"connection refused by {config.name}")
        return self.servers[config.name]


async def state(page: Page, backend: str, value: str) -> None:
    await page.wait_for_selector(f'#backends tr[data-backend="{backend}"][data-state="{value}"]', timeout=WAIT_MS)


async def test_the_dashboard_follows_a_backend_down_and_back_and_approves_a_withheld_tool(tmp_path: Path) -> None:
    backends = Switchable({"toy": build(), "bank": shifting_backend()})
    security = {"pinning": {"file": str(tmp_path / "pins.json")}}
    # No reconnect of its own within the test: the backend comes back when the operator asks.
    config = config_for({"toy": "toy", "bank": "bank"}, reconnect_min=30, reconnect_max=60, security=security)
    async with (
        Gateway(config, backends) as gw,
        serving_app(build_operated_app(gw), gw.config) as port,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 640})
            await page.goto(f"http://127.0.0.1:{port}/admin/")
            await state(page, "toy", "ready")
            for text in ("a", "b", "c"):
                await gw.router.call_tool("toy/echo", {"text": text})
            await gw.router.call_tool("bank/mutate", {})
            await page.wait_for_selector('#pins tr[data-tool="bank/transfer"]', timeout=WAIT_MS)
            await page.wait_for_function(
                "document.querySelector('#backends tr[data-backend=\"toy\"]').cells[5].textContent === '3'",
                timeout=WAIT_MS,
            )

            backends.down.add("toy")
            gw.upstreams["toy"].reconnect()
            await state(page, "toy", "down")
            await page.wait_for_selector("#errors li:has-text('connection refused by toy')", timeout=WAIT_MS)
            shot = Path(os.environ.get("DASHBOARD_SCREENSHOT") or tmp_path / "dashboard.png")
            assert (await page.screenshot(path=str(shot))).startswith(b"\x89PNG")

            backends.down.discard("toy")
            gw.upstreams["toy"].reconnect()
            await state(page, "toy", "ready")

            await page.click('#pins tr[data-tool="bank/transfer"] button')
            await page.wait_for_selector('#pins tr[data-tool="bank/transfer"]', state="detached", timeout=WAIT_MS)
        finally:
            await browser.close()
        assert gw.guard.pins.changed() == []
        assert "bank/transfer" in {t.name for t in gw.guard.listing(gw.guard.local, "tools")}
