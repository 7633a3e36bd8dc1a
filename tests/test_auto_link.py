"""``protocol: auto`` (the default) on real sockets: a backend that speaks both eras, written the 2025 way (its
tools ask the client mid-call; it takes 2025 ``resources/subscribe`` and serves no listen streams), gives clients of
both eras through the gateway what it gives them directly; a backend that refuses the 2025 handshake gets a 2026 link.

Backends (the toy server over streamable HTTP, behind one gateway with no ``protocol`` set): ``both`` (both eras,
``--no-listen``), ``new`` (2026-07-28 alone, ``--modern-only``) and ``token`` (``both`` again, with ``forward_token``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from mcp import Client, types

from tests.support.procs import Processes, free_port, http_get, listening, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.processes]
Stack = dict[str, str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("auto-link")
    procs = Processes()
    try:
        urls = {}
        for name, flag in (("both", "--no-listen"), ("new", "--modern-only")):
            port = free_port()
            procs.start("-m", "tests.support.toy_server", "--port", str(port), flag)
            wait_until(lambda: listening(port), what=f"the {name} backend to listen")  # noqa: B023 - awaited here
            urls[name] = f"http://127.0.0.1:{port}/mcp"
        backends = [{"name": name, "url": url} for name, url in urls.items()]
        backends.append({"name": "token", "url": urls["both"], "forward_token": True})
        (root / "gateway.json").write_text(json.dumps({"backends": backends}))
        port = free_port()
        procs.start("-m", "gateway", "serve", "--config", str(root / "gateway.json"), "--port", str(port))
        ready = f"http://127.0.0.1:{port}/readyz"
        wait_until(lambda: listening(port) and http_get(ready)[0] == 200, timeout=60)
        yield {**urls, "gateway": f"http://127.0.0.1:{port}/mcp", "ready": ready}
    finally:
        procs.stop_all()


def text(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    return str(result.content[0].text)  # type: ignore[union-attr]


async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content.text  # type: ignore[union-attr]
    return types.CreateMessageResult(role="assistant", model="m1", content=types.TextContent(type="text", text=asked))


async def elicitation(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada"})


async def roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///srv/work", name="work")])


CALLBACKS: dict[str, Any] = {"sampling_callback": sampling, "elicitation_callback": elicitation,
                             "list_roots_callback": roots}  # fmt: skip


async def asked(url: str, mode: str, prefix: str) -> tuple[str, str, Any, str]:
    """What the backend's tools that ask the client answer: sampling, elicitation, roots, and a Resolve dependency."""
    async with Client(url, mode=mode, **CALLBACKS) as client:
        model = text(await client.call_tool(f"{prefix}ask_model", {"prompt": "hello"}))
        user = text(await client.call_tool(f"{prefix}ask_user", {"question": "Who?"}))
        found = (await client.call_tool(f"{prefix}roots", {})).structured_content
        greeted = text(await client.call_tool(f"{prefix}greet_user", {}))
    return model, user, found, greeted


async def test_a_2025_client_gets_the_backend_s_requests_mid_call_as_directly(stack: Stack) -> None:
    direct = await asked(stack["both"], "legacy", "")
    assert direct == ("m1: hello", "accept: Ada", {"result": ["file:///srv/work"]}, "hello Ada")
    assert await asked(stack["gateway"], "legacy", "both/") == direct


async def test_a_2026_client_gets_the_backend_s_requests_in_rounds(stack: Stack) -> None:
    """Directly, a 2026 request has no back-channel, so only the ``Resolve`` dependency asks in rounds; through the
    gateway the backend's own requests during the call become rounds too (``routing/bridge.py``)."""
    async with Client(stack["both"], mode="2026-07-28", elicitation_callback=elicitation) as direct:
        greeted = text(await direct.call_tool("greet_user", {}))
    assert greeted == "hello Ada"
    assert await asked(stack["gateway"], "2026-07-28", "both/") == (
        "m1: hello", "accept: Ada", {"result": ["file:///srv/work"]}, greeted
    )  # fmt: skip


class Updates:
    def __init__(self) -> None:
        self.uris: list[str] = []
        self.arrived = anyio.Event()

    async def handle(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.uris.append(str(message.params.uri))
            self.arrived.set()


async def updated(url: str, prefix: str, uri: str) -> tuple[bool, list[str]]:
    """Whether a 2025 client is told it may subscribe, and the updates it hears after subscribing to ``uri``."""
    updates = Updates()
    async with Client(url, mode="legacy", message_handler=updates.handle) as client:
        resources = client.server_capabilities.resources
        await client.subscribe_resource(uri)
        async with Client(url, mode="legacy") as other:
            assert not (await other.call_tool(f"{prefix}touch", {"uri": uri.removeprefix("both+")})).is_error
        with anyio.fail_after(10):
            await updates.arrived.wait()
    return bool(resources and resources.subscribe), updates.uris


async def test_a_2025_client_subscribes_as_directly(stack: Stack) -> None:
    assert await updated(stack["both"], "", "toy://about") == (True, ["toy://about"])
    assert await updated(stack["gateway"], "both/", "both+toy://about") == (True, ["both+toy://about"])


async def test_a_2026_client_hears_the_2025_subscription_on_its_listen_stream(stack: Stack) -> None:
    updates = Updates()
    async with (
        Client(stack["gateway"], mode="2026-07-28", message_handler=updates.handle) as client,
        client.listen(resource_subscriptions=["both+toy://about"]) as subscription,
    ):
        assert subscription.honored.resource_subscriptions == ["both+toy://about"]
        assert not (await client.call_tool("both/touch", {"uri": "toy://about"})).is_error
        with anyio.fail_after(10):
            await updates.arrived.wait()
    assert updates.uris == ["both+toy://about"]


async def test_each_backend_gets_the_link_that_loses_nothing(stack: Stack) -> None:
    """Both eras: the 2025 link. 2026-07-28 alone: the handshake is refused, and the SDK negotiates a 2026 link. With
    ``forward_token`` the SDK negotiates at once: a 2025 session would be bound to one credential."""
    status, body = http_get(stack["ready"])
    links = {b["name"]: (b["state"], b["protocol"]) for b in body["backends"]}
    assert status == 200
    assert links == {"both": ("ready", "2025-11-25"), "new": ("ready", "2026-07-28"), "token": ("ready", "2026-07-28")}
    for mode in ("legacy", "2026-07-28"):
        async with Client(stack["gateway"], mode=mode) as client:
            assert text(await client.call_tool("new/echo", {"text": "hi"})) == "hi"
