"""The one place that knows backend transports: config in, an SDK ``Transport`` out.

Everything above this module holds a ``Transport`` (an async context manager yielding a pair of message
streams) and never branches on how the bytes travel. ``Connector`` is the seam: tests pass one that returns an
in-process server instead.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx2
from mcp.client._transport import Transport
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from gateway.config import BackendConfig
from gateway.config import Transport as Kind

# Server-sent event streams stay open between messages; their read timeout is not a call deadline.
STREAM_READ_TIMEOUT = 300.0
# Returns anything ``mcp.Client`` connects to: a ``Transport``, or in tests a ``Server``/``MCPServer``.
Connector = Callable[[BackendConfig, AsyncExitStack], Awaitable[Any]]


async def open_transport(config: BackendConfig, stack: AsyncExitStack) -> Transport:
    """A fresh, not yet entered transport for one connection attempt; ``stack`` owns what it needs closed."""
    read_timeout = max(STREAM_READ_TIMEOUT, config.call_timeout + 30)
    if config.transport is Kind.STREAMABLE_HTTP:
        assert config.url is not None
        http = httpx2.AsyncClient(
            headers=config.headers or None,
            timeout=httpx2.Timeout(config.connect_timeout, read=read_timeout),
        )
        await stack.enter_async_context(http)
        return streamable_http_client(config.url, http_client=http)
    if config.transport is Kind.SSE:
        assert config.url is not None
        return sse_client(
            config.url, headers=config.headers or None, timeout=config.connect_timeout, sse_read_timeout=read_timeout
        )
    assert config.command is not None
    params = StdioServerParameters(command=config.command, args=config.args, env=config.env or None, cwd=config.cwd)
    return stdio_client(params, errlog=sys.stderr)
