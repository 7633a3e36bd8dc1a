"""Tool arguments are validated against the tool's inputSchema at the gateway, in every JSON Schema dialect, where
the operator turned validation on; by default the backend's own answer comes back."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError, types
from mcp.server import Server

from gateway.config import BackendConfig, GatewayConfig
from gateway.core import Gateway
from gateway.errors import InvalidArguments
from gateway.security.validation import ArgumentValidator
from tests.support.inproc import client, http_client, running_gateway, serving
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ORDER = {
    "type": "object",
    "properties": {
        "sku": {"type": "string", "minLength": 3},
        "lines": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer"}}}},
    },
    "required": ["sku"],
}
VALIDATING = {"validate_arguments": True}


@pytest.mark.parametrize(
    "dialect",
    [
        None,
        "https://json-schema.org/draft/2020-12/schema",
        "https://json-schema.org/draft/2019-09/schema",
        "http://json-schema.org/draft-07/schema#",
        "http://json-schema.org/draft-04/schema#",
    ],
)
@pytest.mark.parametrize(
    ("arguments", "path"),
    [({"sku": "AB"}, "$.sku"), ({}, "$"), ({"sku": "ABC", "lines": [{"qty": 1}, {"qty": "two"}]}, "$.lines[1].qty")],
)
def test_the_first_failure_is_named_by_its_path(dialect: str | None, arguments: dict[str, Any], path: str) -> None:
    schema = {**ORDER, "$schema": dialect} if dialect else ORDER
    with pytest.raises(InvalidArguments) as caught:
        ArgumentValidator().check("ops/order", schema, arguments)
    assert caught.value.path == path


def test_valid_arguments_pass() -> None:
    ArgumentValidator().check("ops/order", ORDER, {"sku": "ABC", "lines": [{"qty": 2}]})


def test_an_unusable_schema_leaves_arguments_to_the_backend() -> None:
    ArgumentValidator().check("ops/odd", {"type": "no-such-type"}, {"x": 1})


def test_references_inside_the_schema_resolve_and_those_outside_refuse_only_the_arguments_that_reach_them() -> None:
    schema = {
        "$id": "https://schemas.example/order",
        "$defs": {"qty": {"type": "integer"}, "sku": {"$id": "sku.json", "type": "string"}},
        "properties": {
            "qty": {"$ref": "#/$defs/qty"},
            "sku": {"$ref": "sku.json"},
            "remote": {"$ref": "https://schemas.invalid/x.json"},
        },
    }
    validator = ArgumentValidator()
    with pytest.raises(InvalidArguments) as caught:
        validator.check("ops/order", schema, {"qty": "two"})
    assert caught.value.path == "$.qty"
    validator.check("ops/order", schema, {"qty": 2, "sku": "A"})
    with pytest.raises(InvalidArguments) as remote:
        validator.check("ops/order", schema, {"remote": 1})
    assert remote.value.path == "$"


def recording_backend(journal: Path) -> Server[Any]:
    """A backend whose one tool records every call that reaches it."""

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="order", input_schema=ORDER)])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        await anyio.Path(journal).write_text(repr(params.arguments))
        return types.CallToolResult(content=[types.TextContent(type="text", text="ordered")])

    return Server("orders", on_list_tools=list_tools, on_call_tool=call_tool)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_invalid_arguments_are_refused_at_the_gateway_with_the_path(mode: str, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    async with (
        running_gateway({"ops": recording_backend(journal)}, security=VALIDATING) as gw,
        client(gw, mode=mode) as local,
    ):
        with pytest.raises(MCPError) as caught:
            await local.call_tool("ops/order", {"sku": "ABC", "lines": [{"qty": "two"}]})
        assert not journal.exists()
        ordered = await local.call_tool("ops/order", {"sku": "ABC"})
    assert caught.value.code == types.INVALID_PARAMS
    assert caught.value.data == {"tool": "ops/order", "path": "$.lines[0].qty"}
    assert ordered.content[0].text == "ordered"  # type: ignore[union-attr]
    assert journal.exists()


async def test_strict_names_are_validated_against_the_same_schema_and_named_as_called() -> None:
    servers = {"ops": build("ops")}
    async with running_gateway(servers, security=VALIDATING) as gw, client(gw, name="claude-ai") as strict:
        with pytest.raises(MCPError) as caught:
            await strict.call_tool("ops__echo", {"text": 7})
    assert caught.value.data == {"tool": "ops__echo", "path": "$.text"}  # the name as the client called it
    assert "'ops__echo'" in caught.value.message and "ops/echo" not in caught.value.message


class Canary:
    """A real HTTP listener on an ephemeral loopback port that records every request it gets."""

    def __init__(self) -> None:
        hits: list[str] = []
        self.hits = hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                body = json.dumps({"type": "integer"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/schema+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Canary:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def referring_backend(canary: str, journal: Path) -> Server[Any]:
    """A backend whose tools' schemas name references outside themselves: network, file, and via ``$id``."""
    schemas = {
        "net": {"properties": {"x": {"$ref": f"{canary}/x"}}},
        "file": {"properties": {"x": {"$ref": "file:///etc/passwd"}}},
        "based": {"$id": f"{canary}/base/", "properties": {"x": {"$ref": "x.json"}}},
        "dynamic": {"properties": {"x": {"$dynamicRef": f"{canary}/dynamic"}}},
        "meta": {"$schema": f"{canary}/meta", "properties": {"x": {"type": "integer"}}},
    }
    schemas = {name: {"type": "object", **schema} for name, schema in schemas.items()}

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name=n, input_schema=s) for n, s in schemas.items()])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        await anyio.Path(journal).write_text(params.name)
        return types.CallToolResult(content=[types.TextContent(type="text", text="called")])

    return Server("refs", on_list_tools=list_tools, on_call_tool=call_tool)


REFERRING = ("net", "file", "based", "dynamic")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_schema_reference_is_never_fetched_and_the_call_gets_a_clear_error(mode: str, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    with Canary() as canary:
        async with (
            running_gateway({"refs": referring_backend(canary.url, journal)}, security=VALIDATING) as gw,
            serving(gw) as url,
            http_client(url, mode=mode) as remote,
        ):
            refused = []
            for tool in REFERRING:
                with anyio.fail_after(10), pytest.raises(MCPError) as caught:  # an answer at once, not a wait
                    await remote.call_tool(f"refs/{tool}", {"x": 1})
                refused.append(caught.value)
            await remote.call_tool("refs/meta", {"x": 1})
    assert canary.hits == []
    assert [(e.code, e.data) for e in refused] == [
        (types.INVALID_PARAMS, {"tool": f"refs/{tool}", "path": "$"}) for tool in REFERRING
    ]
    assert journal.read_text() == "meta"


REPORT = {"type": "object", "properties": {"verbose": {"type": "boolean"}}}


def lenient_backend(name: str) -> Server[Any]:
    """A backend whose schema says ``verbose`` is a boolean but which takes ``null`` too, as many do."""

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="report", input_schema=REPORT)])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        answer = f"{name} got {json.dumps(params.arguments, sort_keys=True)}"
        return types.CallToolResult(content=[types.TextContent(type="text", text=answer)])

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


@asynccontextmanager
async def gateway_over(backends: dict[str, bool | None], **security: Any) -> AsyncIterator[Gateway]:
    """A gateway in front of one lenient backend per name, each with its own ``validate_arguments``."""
    configs = [
        BackendConfig(name=name, url=f"http://{name}.invalid/mcp", validate_arguments=validates)
        for name, validates in backends.items()
    ]

    async def connect(config: BackendConfig, stack: Any, hooks: Any) -> Any:
        return lenient_backend(config.name)

    async with Gateway(GatewayConfig(backends=tuple(configs), security=security), connect) as gateway:
        yield gateway


NULL = {"verbose": None}


async def test_by_default_a_null_for_a_boolean_reaches_the_backend_and_its_answer_comes_back() -> None:
    async with Client(lenient_backend("ops")) as direct:  # type: ignore[arg-type]
        expected = await direct.call_tool("report", NULL)
    answers = []
    async with gateway_over({"ops": None}) as gw:
        for mode in ("legacy", "auto"):
            async with client(gw, mode=mode) as local:
                answers.append(await local.call_tool("ops/report", NULL))
        async with serving(gw) as url:
            for mode in ("legacy", "auto"):  # over HTTP: the 2026 fast path, and the SDK's 2025 path
                async with http_client(url, mode=mode) as remote:
                    answers.append(await remote.call_tool("ops/report", NULL))
    assert not expected.is_error
    assert [(a.is_error, a.content) for a in answers] == [(False, expected.content)] * 4


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_with_validation_on_a_null_for_a_boolean_is_refused_with_its_path(mode: str) -> None:
    async with (
        gateway_over({"ops": None}, validate_arguments=True) as gw,
        serving(gw) as url,
        http_client(url, mode=mode) as remote,
    ):
        with pytest.raises(MCPError) as caught:
            await remote.call_tool("ops/report", NULL)
    assert caught.value.code == types.INVALID_PARAMS
    assert caught.value.data == {"tool": "ops/report", "path": "$.verbose"}
    assert "None is not of type 'boolean'" in caught.value.message


async def test_a_backend_setting_overrides_the_global_one_both_ways() -> None:
    outcomes: dict[str, str] = {}
    for default in (False, True):
        backends = {"on": True, "off": False, "inherits": None}
        async with gateway_over(backends, validate_arguments=default) as gw, client(gw) as local:
            for name in backends:
                try:
                    await local.call_tool(f"{name}/report", NULL)
                    outcomes[f"{name}, global {default}"] = "reached"
                except MCPError as exc:
                    outcomes[f"{name}, global {default}"] = f"refused {exc.code} {exc.data['path']}"
    refused = f"refused {types.INVALID_PARAMS} $.verbose"
    assert outcomes == {
        "on, global False": refused,
        "off, global False": "reached",
        "inherits, global False": "reached",
        "on, global True": refused,
        "off, global True": "reached",
        "inherits, global True": refused,
    }


async def test_validation_is_off_unless_configured() -> None:
    config = GatewayConfig.model_validate({"backends": [{"name": "ops", "url": "http://ops.invalid/mcp"}]})
    assert config.security.validate_arguments is False
    assert config.backends[0].validate_arguments is None
