"""Backends changed while the gateway serves: added, replaced, removed, switched off and on, and kept across a
restart in the state directory."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError, types
from mcp.server import MCPServer

from gateway.config import BackendConfig, GatewayConfig
from gateway.errors import BACKEND_UNAVAILABLE
from gateway.operations.errors import ChangeError
from gateway.operations.runtime import Runtime, operated
from gateway.operations.store import FILE_NAME
from tests.support.inproc import client
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
UNKNOWN = types.INVALID_PARAMS


class Backends:
    """In-process backends by name; ``connections`` counts each backend's connects."""

    def __init__(self, *names: str) -> None:
        self.servers: dict[str, MCPServer] = {name: build(name) for name in names}
        self.connections: dict[str, int] = {}

    async def connect(self, config: BackendConfig, stack: AsyncExitStack, hooks: Any) -> Any:
        self.connections[config.name] = self.connections.get(config.name, 0) + 1
        return self.servers[config.name]


def entry(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "url": f"http://{name}.invalid/mcp", **fields}


def config_of(*names: str, **settings: Any) -> GatewayConfig:
    return GatewayConfig.model_validate({"backends": [entry(n) for n in names], **settings})


@asynccontextmanager
async def runtime_for(backends: Backends, state: Path, *names: str, **settings: Any) -> AsyncIterator[Runtime]:
    async with operated(config_of(*names, **settings), state, backends.connect) as runtime:
        yield runtime


class Heard:
    """What list_changed notifications a connected 2025 client heard."""

    def __init__(self) -> None:
        self.tools = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.tools.set()

    async def next_tools(self) -> None:
        with anyio.fail_after(5):
            await self.tools.wait()
        self.tools = anyio.Event()


async def names(c: Any) -> set[str]:
    return {t.name for t in (await c.list_tools()).tools}


async def test_an_added_backend_is_listed_and_callable_and_connected_clients_hear_of_it(tmp_path: Path) -> None:
    backends, heard = Backends("ops", "hr"), Heard()
    async with (
        runtime_for(backends, tmp_path, "ops") as rt,
        client(rt.gateway, mode="legacy", message_handler=heard) as c,
    ):
        assert "hr/echo" not in await names(c)
        added = await rt.add(entry("hr"))
        await heard.next_tools()
        result = await c.call_tool("hr/echo", {"text": "hi"})
        listed = await names(c)
    assert added["name"] == "hr" and added["state"] == "ready" and added["source"] == "runtime"
    assert "hr/echo" in listed and "ops/echo" in listed
    assert result.content[0].text == "hi"  # type: ignore[union-attr]
    assert backends.connections == {"ops": 1, "hr": 1}


async def test_an_invalid_definition_is_refused_naming_the_field_and_nothing_changes(tmp_path: Path) -> None:
    backends = Backends("ops", "hr")
    async with runtime_for(backends, tmp_path, "ops") as rt, client(rt.gateway) as c:
        before = (await c.list_tools()).tools
        with pytest.raises(ChangeError) as bad_url:
            await rt.add(entry("hr", url="ftp://hr/mcp"))
        with pytest.raises(ChangeError) as bad_timeout:
            await rt.add(entry("hr", call_timeout=-1))
        with pytest.raises(ChangeError) as clash:
            await rt.add(entry("hr", prefix="ops"))
        with pytest.raises(ChangeError) as taken:
            await rt.add(entry("ops"))
        with pytest.raises(ChangeError) as stdio:
            await rt.replace("ops", {"transport": "stdio"})
        after = (await c.list_tools()).tools
        config = rt.gateway.config
    assert (bad_url.value.code, bad_url.value.field) == ("invalid", "url")
    assert (bad_timeout.value.code, bad_timeout.value.field) == ("invalid", "call_timeout")
    assert (clash.value.code, clash.value.field) == ("invalid", "prefix")
    assert taken.value.code == "backend_exists"
    assert (stdio.value.code, stdio.value.field) == ("invalid", "command")
    assert after == before
    assert [b.name for b in config.backends] == ["ops"] and config.backends[0].transport == "streamable_http"
    assert backends.connections == {"ops": 1}


async def test_a_change_of_what_calls_read_keeps_the_connection_and_a_new_prefix_renames(tmp_path: Path) -> None:
    backends, heard = Backends("ops"), Heard()
    async with (
        runtime_for(backends, tmp_path, "ops") as rt,
        client(rt.gateway, mode="legacy", message_handler=heard) as c,
    ):
        await rt.replace("ops", entry("ops", call_timeout=5, prefix="tickets"))
        await heard.next_tools()
        listed = await names(c)
        result = await c.call_tool("tickets/echo", {"text": "same link"})
        timeout = rt.gateway.upstreams["ops"].config.call_timeout
    assert "tickets/echo" in listed and "ops/echo" not in listed
    assert result.content[0].text == "same link"  # type: ignore[union-attr]
    assert timeout == 5
    assert backends.connections == {"ops": 1}


async def test_a_change_of_the_connection_reconnects_that_backend_alone(tmp_path: Path) -> None:
    backends = Backends("ops", "hr")
    async with runtime_for(backends, tmp_path, "ops", "hr") as rt, client(rt.gateway) as c:
        await rt.replace("ops", entry("ops", headers={"X-Team": "a"}))
        await rt.replace("hr", entry("hr"))  # the same definition: nothing to do
        result = await c.call_tool("ops/echo", {"text": "again"})
    assert result.content[0].text == "again"  # type: ignore[union-attr]
    assert backends.connections == {"ops": 2, "hr": 1}


async def test_removing_a_backend_lets_its_call_in_flight_finish_and_its_names_become_unknown(tmp_path: Path) -> None:
    backends = Backends("ops", "hr")
    async with runtime_for(backends, tmp_path, "ops", "hr") as rt, client(rt.gateway) as c:
        results: list[Any] = []

        async def slow_call() -> None:
            results.append(await c.call_tool("hr/slow", {"seconds": 0.3}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow_call)
            with anyio.fail_after(5):
                while not rt.gateway.upstreams["hr"].pending.count:
                    await anyio.sleep(0.01)
            await rt.remove("hr")
            assert results, "the removal answered before the call in flight ended"
        with pytest.raises(MCPError) as unknown:
            await c.call_tool("hr/echo", {"text": "x"})
        listed = await names(c)
        status = rt.gateway.status()
    assert results[0].is_error is not True
    assert unknown.value.error.code == UNKNOWN
    assert not any(n.startswith("hr/") for n in listed)
    assert [b["name"] for b in status["backends"]] == ["ops"]


async def test_a_call_still_running_after_the_grace_period_ends_with_a_clear_error_and_an_audit_line(
    tmp_path: Path,
) -> None:
    audit = tmp_path / "audit.jsonl"
    backends = Backends("ops", "hr")
    settings = {"retire_grace": 0.1, "security": {"audit": {"file": str(audit)}}}
    async with runtime_for(backends, tmp_path, "ops", "hr", **settings) as rt, client(rt.gateway) as c:
        failures: list[MCPError] = []

        async def stuck_call() -> None:
            with pytest.raises(MCPError) as failed:
                await c.call_tool("hr/slow", {"seconds": 30})
            failures.append(failed.value)

        async with anyio.create_task_group() as tg:
            tg.start_soon(stuck_call)
            with anyio.fail_after(5):
                while not rt.gateway.upstreams["hr"].pending.count:
                    await anyio.sleep(0.01)
                await rt.remove("hr")
    assert failures[0].error.code == BACKEND_UNAVAILABLE
    assert "removed" in failures[0].error.message
    lines = audit.read_text().splitlines()
    assert any('"hr/slow"' in line and '"unavailable"' in line for line in lines)


async def test_a_disabled_backend_leaves_the_lists_answers_unavailable_and_comes_back_enabled(tmp_path: Path) -> None:
    backends = Backends("ops", "hr")
    async with runtime_for(backends, tmp_path, "ops", "hr") as rt, client(rt.gateway) as c:
        await rt.set_enabled("hr", False)
        hidden = await names(c)
        with pytest.raises(MCPError) as refused:
            await c.call_tool("hr/echo", {"text": "x"})
        described = rt.describe("hr")
        ready_while_off = rt.gateway.ready
        await rt.set_enabled("hr", True)
        result = await c.call_tool("hr/echo", {"text": "back"})
    assert not any(n.startswith("hr/") for n in hidden) and "ops/echo" in hidden
    assert refused.value.error.code == BACKEND_UNAVAILABLE
    assert described["enabled"] is False and described["state"] == "down"
    assert ready_while_off
    assert result.content[0].text == "back"  # type: ignore[union-attr]
    assert backends.connections["hr"] == 2


async def test_a_disabled_tool_is_unlisted_and_unknown_until_enabled(tmp_path: Path) -> None:
    backends = Backends("ops")
    async with runtime_for(backends, tmp_path, "ops") as rt, client(rt.gateway) as c:
        assert await rt.set_tool_enabled("ops/echo", False) == "ops/echo"
        hidden = await names(c)
        with pytest.raises(MCPError) as unknown:
            await c.call_tool("ops/echo", {"text": "x"})
        with pytest.raises(ChangeError) as missing:
            await rt.set_tool_enabled("ops/nothing", False)
        await rt.set_tool_enabled("ops/echo", True)
        shown = await names(c)
    assert "ops/echo" not in hidden and "ops/search" in hidden
    assert unknown.value.error.code == UNKNOWN
    assert missing.value.code == "unknown_tool"
    assert "ops/echo" in shown


async def test_a_second_gateway_on_the_same_state_dir_sees_the_runtime_changes(tmp_path: Path) -> None:
    backends = Backends("ops", "hr", "fin")
    async with runtime_for(backends, tmp_path, "ops", "hr", "fin") as rt:
        await rt.add(entry("extra", prefix="x"))
        backends.servers["extra"] = build("extra")
        await rt.replace("ops", entry("ops", prefix="tickets"))
        await rt.remove("fin")
        await rt.set_enabled("hr", False)
        await rt.set_tool_enabled("tickets/search", False)
    async with runtime_for(backends, tmp_path, "ops", "hr", "fin") as again, client(again.gateway) as c:
        listed = await names(c)
        configured = [b.name for b in again.gateway.config.backends]
        disabled = set(again.gateway.disabled)
    assert configured == ["ops", "hr", "extra"]
    assert disabled == {"hr"}
    assert "tickets/echo" in listed and "x/echo" in listed
    assert "tickets/search" not in listed and not any(n.startswith(("hr/", "fin/")) for n in listed)
    assert stat.S_IMODE(os.stat(tmp_path / FILE_NAME).st_mode) == 0o600


async def test_a_later_edit_of_the_file_wins_over_an_earlier_runtime_change(tmp_path: Path) -> None:
    backends = Backends("ops", "hr")
    async with runtime_for(backends, tmp_path, "ops", "hr") as rt:
        await rt.replace("ops", entry("ops", prefix="tickets"))
        await rt.replace("hr", entry("hr", prefix="people"))
    edited = GatewayConfig.model_validate({"backends": [entry("ops", prefix="desk"), entry("hr")]})
    async with operated(edited, tmp_path, backends.connect) as again:
        prefixes = {b.name: b.exposed_prefix for b in again.gateway.config.backends}
    assert prefixes == {"ops": "desk", "hr": "people"}


async def test_a_reload_applies_only_what_changed_and_keeps_the_runtime_overlay(tmp_path: Path) -> None:
    backends = Backends("ops", "hr", "fin", "extra")
    async with runtime_for(backends, tmp_path, "ops", "hr", "fin") as rt, client(rt.gateway) as c:
        await rt.add(entry("extra"))
        edited = GatewayConfig.model_validate(
            {"backends": [entry("ops"), entry("hr", prefix="people"), entry("new")], "health_interval": 3}
        )
        backends.servers["new"] = build("new")
        await rt.reload(edited)
        listed = await names(c)
        configured = [b.name for b in rt.gateway.config.backends]
        interval = rt.gateway.upstreams["ops"].settings.health_interval
    assert configured == ["ops", "hr", "extra", "new"]
    assert {"ops/echo", "people/echo", "extra/echo", "new/echo"} <= listed
    assert not any(n.startswith(("fin/", "hr/")) for n in listed)
    assert interval == 3
    assert backends.connections == {"ops": 1, "hr": 1, "fin": 1, "extra": 1, "new": 1}
