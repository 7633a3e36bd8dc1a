"""What a backend sends during a call reaches the client that made it, as if there were no gateway: progress,
log messages at the client's level, and the backend's own requests (sampling, elicitation, roots).

Each interaction is made twice, directly with the toy backend and through the gateway, and the two compared.
Backend links: ``web`` (streamable HTTP, 2025 session, raw forwarding), ``modern`` (streamable HTTP, 2026) and
``local`` (stdio, the SDK's client, shared) and ``own`` (stdio, a session per client).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import anyio
import pytest
from mcp import Client, MCPError, types
from mcp.types import INVALID_REQUEST

from gateway.config import BackendConfig, GatewayConfig
from gateway.core import Gateway
from gateway.errors import InvalidRequestState
from gateway.principal import Principal
from gateway.upstream.caller import Caller

pytestmark = pytest.mark.anyio
Stack = dict[str, str]


@pytest.fixture
def stack(toy_links: Stack) -> Stack:
    return toy_links


class Nope(types.Request[None, Literal["nope/nothing"]]):
    """A method no revision defines."""

    method: Literal["nope/nothing"] = "nope/nothing"
    params: None = None


async def outcome(client: Client, request: types.Request[Any, Any]) -> str:
    try:
        await client.session.send_request(request, types.EmptyResult)
    except MCPError as exc:
        return f"error {exc.code}"
    return "ok"


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_ping_and_unknown_methods_are_answered_as_directly(stack: Stack, mode: str) -> None:
    """``ping`` is a 2025 method (2026-07-28 dropped it); a method no revision defines is ``-32601`` in both."""
    answers = []
    for url in (stack["direct"], stack["gateway"]):
        async with Client(url, mode=mode) as client:
            answers.append((await outcome(client, types.PingRequest()), await outcome(client, Nope())))
    assert answers[0] == ("ok" if mode == "legacy" else "error -32601", "error -32601")
    assert answers[1] == answers[0]


def endpoints(stack: Stack, backend: str) -> list[tuple[str, str]]:
    """(URL, tool prefix) directly, then through the gateway."""
    return [(stack["direct"], ""), (stack["gateway"], f"{backend}/")]


def text(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    return str(result.content[0].text)  # type: ignore[union-attr]


@pytest.mark.parametrize("backend", ["web", "modern", "local"])
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_progress_reaches_the_caller_with_its_own_token(stack: Stack, backend: str, mode: str) -> None:
    seen: list[list[tuple[float, float | None, str | None]]] = []
    for url, prefix in endpoints(stack, backend):
        updates: list[tuple[float, float | None, str | None]] = []

        async def progress(value: float, total: float | None, message: str | None) -> None:
            updates.append((value, total, message))  # noqa: B023 - consumed before the next iteration

        async with Client(url, mode=mode) as client:
            assert text(await client.call_tool(f"{prefix}steps", {"count": 3}, progress_callback=progress)) == "3 steps"
        seen.append(updates)
    assert seen[0] == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    assert seen[1] == seen[0]


async def logged(url: str, tool: str, mode: str, set_level: str | None = None) -> list[tuple[str, Any]]:
    entries: list[tuple[str, Any]] = []

    async def log(params: types.LoggingMessageNotificationParams) -> None:
        entries.append((params.level, params.data))

    async with Client(url, mode=mode, logging_callback=log, log_level="warning") as client:
        if set_level:
            await client.set_logging_level(set_level)  # type: ignore[arg-type]
        await client.call_tool(tool, {"count": 1})
    return entries


@pytest.mark.parametrize("backend", ["web", "modern", "own"])
async def test_a_2026_client_hears_the_log_level_its_request_asked_for(stack: Stack, backend: str) -> None:
    direct = await logged(stack["direct"], "steps", "2026-07-28")
    assert direct == [("warning", {"steps": 1})]
    assert await logged(stack["gateway"], f"{backend}/steps", "2026-07-28") == direct


@pytest.mark.parametrize("backend", ["web", "modern", "own"])
async def test_a_2025_client_hears_every_level_until_it_sets_one(stack: Stack, backend: str) -> None:
    direct = await logged(stack["direct"], "steps", "legacy")
    assert direct == [("debug", "a detail"), ("warning", {"steps": 1})]
    assert await logged(stack["gateway"], f"{backend}/steps", "legacy") == direct
    assert await logged(stack["gateway"], f"{backend}/steps", "legacy", "warning") == [("warning", {"steps": 1})]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_log_messages_on_a_shared_stdio_link_reach_no_client(stack: Stack, mode: str) -> None:
    """Nothing on a link every client shares says which call a log message belongs to: none is guessed at (a
    session per client, ``own`` above, carries them)."""
    assert await logged(stack["gateway"], "local/steps", mode) == []


async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content.text  # type: ignore[union-attr]
    return types.CreateMessageResult(role="assistant", model="m1", content=types.TextContent(type="text", text=asked))


async def elicitation(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada"})


async def roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///srv/work", name="work")])


@pytest.mark.parametrize("backend", ["web"])
async def test_backend_requests_reach_the_calling_client_and_its_answer_goes_back(stack: Stack, backend: str) -> None:
    answers: list[tuple[str, str, str]] = []
    for url, prefix in endpoints(stack, backend):
        callbacks: dict[str, Any] = {"sampling_callback": sampling, "elicitation_callback": elicitation}
        async with Client(url, mode="legacy", list_roots_callback=roots, **callbacks) as client:
            asked = text(await client.call_tool(f"{prefix}ask_model", {"prompt": "hello"}))
            elicited = text(await client.call_tool(f"{prefix}ask_user", {"question": "Who?"}))
            found = await client.call_tool(f"{prefix}roots", {})
            answers.append((asked, elicited, json.dumps(found.structured_content)))
    assert answers[0] == ("m1: hello", "accept: Ada", json.dumps({"result": ["file:///srv/work"]}))
    assert answers[1] == answers[0]


@pytest.mark.parametrize("backend", ["web", "own"])
async def test_a_backend_that_gives_up_on_its_request_has_it_cancelled_at_the_client(
    stack: Stack, backend: str
) -> None:
    """The other direction of cancellation: the backend cancels its own request to the client (here at its
    timeout), and the client's handler for it is cancelled, as it is when the backend is asked directly."""
    seen = []
    for url, prefix in endpoints(stack, backend):
        cancelled = anyio.Event()

        async def waiting(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
            try:
                await anyio.sleep_forever()
            finally:
                cancelled.set()  # noqa: B023 - awaited before the next iteration

        async with Client(url, mode="legacy", sampling_callback=waiting) as client:
            result = text(await client.call_tool(f"{prefix}ask_model_briefly", {"seconds": 0.5}))
            with anyio.fail_after(10):
                await cancelled.wait()
        seen.append(result)
    assert seen == ["gave up: -32001", "gave up: -32001"]


async def test_a_backend_request_never_reaches_another_client(stack: Stack) -> None:
    asked_b: list[str] = []

    async def b_sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked_b.append("b")
        return await sampling(context, params)

    gateway = stack["gateway"]
    async with (
        Client(gateway, mode="legacy", sampling_callback=sampling) as a,
        Client(gateway, mode="legacy", sampling_callback=b_sampling) as b,
    ):
        assert text(await a.call_tool("web/ask_model", {"prompt": "for a"})) == "m1: for a"
        assert text(await b.call_tool("web/echo", {"text": "b is here"})) == "b is here"
    assert asked_b == []


async def test_a_client_without_the_capability_gets_an_error_like_the_backend_s_not_a_hang(stack: Stack) -> None:
    errors = []
    for url, prefix in endpoints(stack, "web"):
        async with Client(url, mode="legacy") as client:
            with pytest.raises(MCPError) as refused:
                await client.call_tool(f"{prefix}ask_model", {"prompt": "anyone?"})
        errors.append(refused.value)
    assert errors[1].code == errors[0].code == INVALID_REQUEST
    assert "did not declare" in errors[1].message


async def elicit_name(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada"})


@pytest.mark.parametrize(("backend", "mode"), [("modern", "2026-07-28"), ("modern", "legacy"), ("web", "legacy")])
async def test_multi_round_requests_pass_through_or_are_bridged(stack: Stack, backend: str, mode: str) -> None:
    """2026 link, 2026 client: input_required and the retry pass through. 2026 link, 2025 client: the gateway asks
    the client mid-call and retries for it. 2025 link: the backend asks mid-call and the gateway relays."""
    greetings = []
    for url, prefix in endpoints(stack, backend):
        async with Client(url, mode=mode, elicitation_callback=elicit_name) as client:
            greetings.append(text(await client.call_tool(f"{prefix}greet_user", {})))
    assert greetings == ["hello Ada", "hello Ada"]


def prompt_text(result: types.GetPromptResult) -> str:
    return str(result.messages[0].content.text)  # type: ignore[union-attr]


def resource_text(result: types.ReadResourceResult) -> str:
    return str(result.contents[0].text)  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_prompts_and_resources_take_multiple_rounds_too(stack: Stack, mode: str) -> None:
    """A 2026 backend's ``input_required`` to prompts/get and resources/read: a 2026 client gets it and retries
    (the SDK client does so itself); for a 2025 client the gateway asks mid-request and retries. Compared with a 2026
    client talking to the backend directly (a 2025 session cannot take part in multiple rounds there)."""
    answers = []
    for url, prefix, uri, client_mode in ((stack["direct"], "", "toy://asked/cats", "2026-07-28"),
                                          (stack["gateway"], "modern/", "modern+toy://asked/cats", mode)):  # fmt: skip
        async with Client(url, mode=client_mode, elicitation_callback=elicit_name) as client:
            prompt = await client.get_prompt(f"{prefix}greet_asked", {})
            read = await client.read_resource(uri)
        answers.append((prompt_text(prompt), resource_text(read), str(read.contents[0].uri)))
    assert answers[0] == ("Hello Ada", "cats for Ada", "toy://asked/cats")
    assert answers[1] == ("Hello Ada", "cats for Ada", "modern+toy://asked/cats")


async def test_a_prompts_request_state_is_sealed_to_its_caller(stack: Stack) -> None:
    config = GatewayConfig(backends=(BackendConfig(name="m", url=stack["direct"], protocol="2026-07-28"),))
    alice, mallory = Caller(identity="alice"), Caller(identity="mallory")
    async with Gateway(config) as gateway:
        router = gateway.router
        first = await router.get_prompt("m/greet_asked", {}, caller=alice)
        assert isinstance(first, types.InputRequiredResult) and first.request_state and first.input_requests
        answer = {"name": {"action": "accept", "content": {"name": "Ada"}}}
        with pytest.raises(InvalidRequestState):
            await router.get_prompt("m/greet_asked", {}, mallory, answer, first.request_state)
        with pytest.raises(InvalidRequestState):
            await router.read_resource("m+toy://asked/x", alice, answer, first.request_state)
        done = await router.get_prompt("m/greet_asked", {}, alice, answer, first.request_state)
    assert prompt_text(done) == "Hello Ada"  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["web", "own"])
async def test_a_2025_backend_asking_mid_call_is_bridged_to_a_2026_client_in_rounds(stack: Stack, backend: str) -> None:
    """The backend asks on the call's stream and waits; the 2026 client gets ``input_required`` and retries (the SDK
    client does so itself), and its answers reach the backend, which finishes the call. The same answers a 2025
    client gets through the gateway, and a 2026 client directly from a backend that asks in rounds."""
    callbacks: dict[str, Any] = {"sampling_callback": sampling, "elicitation_callback": elicitation}
    async with Client(stack["gateway"], mode="2026-07-28", list_roots_callback=roots, **callbacks) as client:
        asked = text(await client.call_tool(f"{backend}/ask_model", {"prompt": "hello"}))
        elicited = text(await client.call_tool(f"{backend}/ask_user", {"question": "Who?"}))
        found = await client.call_tool(f"{backend}/roots", {})
        greeted = text(await client.call_tool(f"{backend}/greet_user", {}))
    async with Client(stack["direct"], mode="2026-07-28", elicitation_callback=elicit_name) as direct:
        greeted_directly = text(await direct.call_tool("greet_user", {}))
    assert (asked, elicited, found.structured_content) == ("m1: hello", "accept: Ada", {"result": ["file:///srv/work"]})
    assert greeted == greeted_directly == "hello Ada"


async def test_a_2026_client_that_declared_no_capability_is_not_asked(stack: Stack) -> None:
    async with Client(stack["gateway"], mode="2026-07-28") as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("web/ask_user", {"question": "Who?"})
    assert refused.value.code == INVALID_REQUEST and "did not declare" in refused.value.message


CAN_ELICIT = types.ClientCapabilities(elicitation=types.ElicitationCapability(form=types.FormElicitationCapability()))


async def test_a_bridged_calls_request_state_serves_its_caller_once(stack: Stack) -> None:
    config = GatewayConfig(backends=(BackendConfig(name="w", url=stack["direct"], protocol="legacy"),))
    alice, mallory = (
        Caller(identity="alice", capabilities=CAN_ELICIT),
        Caller(identity="mallory", capabilities=CAN_ELICIT),
    )
    async with Gateway(config) as gateway:
        router = gateway.router
        first = await router.call_tool("w/ask_user", {"question": "Who?"}, caller=alice)
        assert isinstance(first, types.InputRequiredResult) and first.request_state and first.input_requests
        (key, question), *_ = first.input_requests.items()
        assert isinstance(question, types.ElicitRequest) and question.params.message == "Who?"
        retry = {
            "input_responses": {key: {"action": "accept", "content": {"name": "Ada"}}},
            "request_state": first.request_state,
        }
        with pytest.raises(InvalidRequestState):
            await router.call_tool("w/ask_user", {}, caller=mallory, **retry)
        done = await router.call_tool("w/ask_user", {}, caller=alice, **retry)
        with pytest.raises(InvalidRequestState):
            await router.call_tool("w/ask_user", {}, caller=alice, **retry)
    assert text(done) == "accept: Ada"  # type: ignore[arg-type]


async def test_request_state_is_bound_to_the_caller_and_request_it_was_issued_for(stack: Stack) -> None:
    config = GatewayConfig(backends=(BackendConfig(name="m", url=stack["direct"], protocol="2026-07-28"),))
    alice, mallory = (
        Caller(identity="alice", capabilities=CAN_ELICIT),
        Caller(identity="mallory", capabilities=CAN_ELICIT),
    )
    async with Gateway(config) as gateway:
        router = gateway.router
        first = await router.call_tool("m/greet_user", {}, caller=alice)
        assert isinstance(first, types.InputRequiredResult) and first.request_state and first.input_requests
        answer = {key: {"action": "accept", "content": {"name": "Ada"}} for key in first.input_requests}
        state = first.request_state
        for who, tool, sealed in ((mallory, "m/greet_user", state), (alice, "m/echo", state),
                                  (alice, "m/greet_user", "0" + state)):  # fmt: skip
            with pytest.raises(InvalidRequestState):
                await router.call_tool(tool, {"text": "x"}, caller=who, input_responses=answer, request_state=sealed)
        done = await router.call_tool("m/greet_user", {}, caller=alice, input_responses=answer, request_state=state)
    assert text(done) == "hello Ada"  # type: ignore[arg-type]


async def test_over_stdio_backend_requests_need_a_session_per_client(stack: Stack) -> None:
    async with Client(stack["gateway"], mode="legacy", sampling_callback=sampling) as client:
        assert text(await client.call_tool("own/ask_model", {"prompt": "mine"})) == "m1: mine"
        with pytest.raises(MCPError) as refused:
            await client.call_tool("local/ask_model", {"prompt": "whose?"})
    assert refused.value.code == INVALID_REQUEST and "session: per_client" in refused.value.message


@pytest.mark.parametrize("forward", [True, False])
async def test_the_callers_token_reaches_only_backends_configured_to_receive_it(stack: Stack, forward: bool) -> None:
    backend = BackendConfig(name="m", url=stack["direct"], protocol="legacy", forward_token=forward)
    async with Gateway(GatewayConfig(backends=(backend,))) as gateway:
        alice = Caller(principal=Principal("alice", method="api_key", token="alice-token-123"))
        seen = await gateway.guard.call_tool(alice, "m/whoami", {})
    assert text(seen) == ("Bearer alice-token-123" if forward else "")  # type: ignore[arg-type]
