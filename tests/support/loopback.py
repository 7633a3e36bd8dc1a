"""An ASGI app on a real loopback socket in the test's own process, and the event store a resumable SDK server
needs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx2
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.types import JSONRPCMessage
from starlette.types import ASGIApp

from gateway.upstream.backchannel import BackChannel
from gateway.upstream.forward import Forwarder
from gateway.upstream.negotiated import CLIENT_INFO, Negotiated
from tests.support.procs import free_port


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """``app`` served by uvicorn on a free loopback port until the block ends; yields its ``/mcp`` URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="on"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            server.should_exit = True


@asynccontextmanager
async def linked(url: str, mode: str) -> AsyncIterator[tuple[Client, Forwarder]]:
    """An SDK client over streamable HTTP, as the gateway opens one, with the raw link beside it."""
    forwarder = Forwarder(url, {}, 5.0, 1 << 20)
    async with httpx2.AsyncClient(event_hooks={"response": [forwarder.on_response]}) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode, client_info=CLIENT_INFO, **BackChannel().callbacks()) as client:
            listed = await client.list_tools()
            forwarder.bind(Negotiated.at(client.protocol_version, listed.tools))
            try:
                yield client, forwarder
            finally:
                forwarder.close()


class MemoryEvents(EventStore):
    """Every event of every stream, in order, so a client can resume a stream after any of them."""

    def __init__(self) -> None:
        self.events: list[tuple[EventId, StreamId, JSONRPCMessage | None]] = []

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = str(len(self.events) + 1)
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        found = [i for i, (event_id, _, _) in enumerate(self.events) if event_id == last_event_id]
        if not found:
            return None
        stream = self.events[found[0]][1]
        for event_id, stream_id, message in self.events[found[0] + 1 :]:
            if stream_id == stream and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream
