"""One backend behind one narrow interface: connect, list, call, state. Transport-agnostic.

An ``Upstream`` holds a single long-lived client connection to its backend, shared by every downstream client.
Its supervisor task (``run``) owns that connection: it connects, walks every page of the backend's lists,
re-lists when the backend says a list changed, probes the connection periodically, and reconnects with
exponential backoff and jitter when the connection breaks. Requests from any task go through the methods below,
which fail at once with ``BackendUnavailable`` while the backend is not connected, and map the SDK's connection
and timeout errors to the gateway's error tree where they enter.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from enum import StrEnum
from typing import Any, TypeVar

import anyio
from mcp import Client, MCPError, types
from mcp.client.session import IncomingMessage
from mcp.types import CONNECTION_CLOSED, INVALID_REQUEST, REQUEST_TIMEOUT
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

from gateway import __version__
from gateway.catalog import Snapshot
from gateway.config import BackendConfig, GatewayConfig
from gateway.errors import BackendTimeout, BackendUnavailable
from gateway.transports import Connector, open_transport

logger = logging.getLogger(__name__)
ResultT = TypeVar("ResultT", bound=BaseModel)
OnChange = Callable[["Upstream", Snapshot | None], Awaitable[None]]
_LIST_CHANGED = (
    types.ToolListChangedNotification,
    types.PromptListChangedNotification,
    types.ResourceListChangedNotification,
)


class State(StrEnum):
    CONNECTING = "connecting"
    READY = "ready"
    DOWN = "down"


class Upstream:
    """A supervised connection to one backend."""

    def __init__(
        self, config: BackendConfig, settings: GatewayConfig, on_change: OnChange, connect: Connector = open_transport
    ) -> None:
        self.config = config
        self.name = config.name
        self.state = State.CONNECTING
        self.error: str | None = None
        self.protocol_version: str | None = None
        self.server_info: types.Implementation | None = None
        self.capabilities: types.ServerCapabilities | None = None
        self.attempted = anyio.Event()
        self._settings = settings
        self._on_change = on_change
        self._connect = connect
        self._client: Client | None = None
        self._wake = anyio.Event()
        self._dirty = False
        self._suspect = False

    # -- supervision -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the backend connected until cancelled."""
        delay = self._settings.reconnect_min
        while True:
            started = time.monotonic()
            try:
                await self._connection()
            except Exception as exc:
                self.error = _describe(exc)
            self._client = None
            self.state = State.DOWN
            logger.warning("backend %s is down: %s", self.name, self.error)
            await self._on_change(self, None)
            self.attempted.set()
            if time.monotonic() - started > self._settings.reconnect_max:
                delay = self._settings.reconnect_min
            await anyio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._settings.reconnect_max)

    async def _connection(self) -> None:
        """Connect, publish the listing, then serve until the connection breaks."""
        self.state, self._dirty, self._suspect = State.CONNECTING, False, False
        # The deadline covers connecting and listing only; the scope encloses the client so they unwind in order.
        with anyio.CancelScope(deadline=anyio.current_time() + self.config.connect_timeout) as scope:
            async with AsyncExitStack() as stack:
                client = Client(
                    await self._connect(self.config, stack),
                    mode=self.config.protocol,
                    read_timeout_seconds=self.config.call_timeout,
                    message_handler=self._on_message,
                    client_info=types.Implementation(name="mcp-gateway", version=__version__),
                    cache=None,
                )
                await stack.enter_async_context(client)
                snapshot = await self._list_all(client)
                scope.deadline = math.inf
                await self._serve(client, snapshot)
        if scope.cancelled_caught:
            raise TimeoutError(f"no answer within {self.config.connect_timeout:g} s")

    async def _serve(self, client: Client, snapshot: Snapshot) -> None:
        self._client = client
        self.protocol_version = client.protocol_version
        self.server_info = client.server_info
        self.capabilities = client.server_capabilities
        self.state, self.error = State.READY, None
        logger.info("backend %s ready (%s, %d tools)", self.name, self.protocol_version, len(snapshot.tools))
        await self._on_change(self, snapshot)
        self.attempted.set()
        async with anyio.create_task_group() as tg:
            if self.protocol_version in MODERN_PROTOCOL_VERSIONS and self._has_list_changed():
                tg.start_soon(self._listen, client)
            tg.start_soon(self._probe_periodically)
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                if self._suspect:
                    self._suspect = False
                    await self._probe(client)
                if self._dirty:
                    self._dirty = False
                    with anyio.fail_after(self.config.connect_timeout):
                        await self._on_change(self, await self._list_all(client))

    async def _probe_periodically(self) -> None:
        while True:
            await anyio.sleep(self._settings.health_interval)
            self._signal(suspect=True)

    async def _probe(self, client: Client) -> None:
        """A cheap request proves the connection; failing it ends the connection (and reconnects)."""
        with anyio.fail_after(self.config.connect_timeout):
            if self.protocol_version in MODERN_PROTOCOL_VERSIONS:
                await client.session.send_request(types.DiscoverRequest(), types.DiscoverResult)
            else:
                await client.session.send_ping()

    async def _listen(self, client: Client) -> None:
        caps = self.capabilities
        async with client.listen(
            tools_list_changed=bool(caps and caps.tools and caps.tools.list_changed),
            prompts_list_changed=bool(caps and caps.prompts and caps.prompts.list_changed),
            resources_list_changed=bool(caps and caps.resources and caps.resources.list_changed),
        ) as subscription:
            async for _event in subscription:
                self._signal(dirty=True)
        self._signal(suspect=True)

    def _has_list_changed(self) -> bool:
        caps = self.capabilities
        return bool(caps and any(c and c.list_changed for c in (caps.tools, caps.prompts, caps.resources)))

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, _LIST_CHANGED):
            self._signal(dirty=True)
        elif isinstance(message, Exception):
            logger.debug("backend %s transport fault: %r", self.name, message)
            self._signal(suspect=True)

    def _signal(self, *, dirty: bool = False, suspect: bool = False) -> None:
        self._dirty |= dirty
        self._suspect |= suspect
        self._wake.set()

    async def _list_all(self, client: Client) -> Snapshot:
        """Walk every page of every list the backend advertises."""
        caps = client.server_capabilities
        tools = await _pages(client.list_tools, "tools") if caps.tools else []
        prompts = await _pages(client.list_prompts, "prompts") if caps.prompts else []
        resources = await _pages(client.list_resources, "resources") if caps.resources else []
        templates = await _pages(client.list_resource_templates, "resource_templates") if caps.resources else []
        return Snapshot(tuple(tools), tuple(prompts), tuple(resources), tuple(templates))

    # -- requests --------------------------------------------------------------------------------------------

    async def request(self, request: Any, result_type: type[ResultT]) -> ResultT:
        """Send one request to the backend; the backend's own errors pass through unchanged."""
        client = self._client
        if client is None or self.state is not State.READY:
            raise BackendUnavailable(self.name, self.error or self.state.value)
        deadline = self.config.call_timeout
        try:
            return await client.session.send_request(request, result_type, request_read_timeout_seconds=deadline)
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise BackendTimeout(self.name, deadline) from None
            if _is_connection_loss(exc):
                self._signal(suspect=True)
                raise BackendUnavailable(self.name, f"connection lost ({exc.message})") from None
            raise

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None, meta: dict[str, Any] | None = None
    ) -> types.CallToolResult:
        params = types.CallToolRequestParams(name=name, arguments=arguments, _meta=meta)  # type: ignore[arg-type]
        return await self.request(types.CallToolRequest(params=params), types.CallToolResult)

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        params = types.ReadResourceRequestParams(uri=uri)
        return await self.request(types.ReadResourceRequest(params=params), types.ReadResourceResult)

    async def get_prompt(self, name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
        params = types.GetPromptRequestParams(name=name, arguments=arguments)
        return await self.request(types.GetPromptRequest(params=params), types.GetPromptResult)

    async def complete(self, params: types.CompleteRequestParams) -> types.CompleteResult:
        return await self.request(types.CompleteRequest(params=params), types.CompleteResult)


async def _pages(fetch: Callable[..., Awaitable[Any]], attr: str) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page = await fetch(cursor=cursor)
        items.extend(getattr(page, attr))
        cursor = page.next_cursor
        if cursor is None or cursor in seen:
            return items
        seen.add(cursor)


def _is_connection_loss(exc: MCPError) -> bool:
    if exc.code == CONNECTION_CLOSED:
        return True
    return exc.code == INVALID_REQUEST and "session terminated" in exc.message.lower()


def _describe(exc: BaseException) -> str:
    """A one-line reason for status output, digging the real cause out of task-group wrappers."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
