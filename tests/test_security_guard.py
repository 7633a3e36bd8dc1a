"""``Guard``: the order of a call's checks (a name the rules hide is answered as unknown before any budget is
spent; arguments are checked before the backend is asked), budgets charged once, lists filtered, and one audit
entry per call whatever its outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import MCPError, types

from gateway.core import Gateway
from gateway.errors import InvalidArguments, RateLimited, UnknownTarget
from gateway.principal import Principal
from gateway.rpc_errors import to_mcp_error
from gateway.security.audit import Entry
from gateway.upstream.caller import Caller
from tests.support.inproc import running_gateway
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ALICE = Caller(principal=Principal("alice", method="api_key"))
SECURITY = {
    "policy": {"default": "deny", "rules": [{"principals": ["alice"], "allow": ["ops/*"], "deny": ["ops/whoami"]}]},
    "limits": {"per_principal": {"rate": 0.001, "burst": 3}},
    "validate_arguments": True,
}


@pytest.fixture
async def guarded(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Gateway, list[Entry]]]:
    """A gateway whose audit entries the test reads as they are recorded."""
    async with running_gateway({"ops": build("ops"), "hr": build("hr")}, security=SECURITY) as gateway:
        entries: list[Entry] = []
        monkeypatch.setattr(gateway.guard.audit, "record", entries.append)
        yield gateway, entries


def outcomes(entries: list[Entry]) -> list[tuple[str, str, str | None]]:
    return [(entry.name, entry.outcome, entry.backend) for entry in entries]


async def refused(call: Any) -> MCPError:
    with pytest.raises(UnknownTarget) as unknown:
        await call
    return to_mcp_error(unknown.value)


async def test_a_name_the_rules_hide_is_answered_as_an_unknown_one_and_spends_no_budget(
    guarded: tuple[Gateway, list[Entry]],
) -> None:
    gateway, entries = guarded
    hidden = await refused(gateway.guard.call_tool(ALICE, "hr/echo", {"text": "x"}))
    denied = await refused(gateway.guard.call_tool(ALICE, "ops/whoami", {}))
    unknown = await refused(gateway.guard.call_tool(ALICE, "hr/nope", {}))
    assert (hidden.code, hidden.error.data) == (unknown.code, {"tool": "hr/echo"})
    assert denied.error.data == {"tool": "ops/whoami"}
    for _ in range(3):  # the whole burst is still there
        await gateway.guard.call_tool(ALICE, "ops/echo", {"text": "x"})
    with pytest.raises(RateLimited):
        await gateway.guard.call_tool(ALICE, "ops/echo", {"text": "x"})
    assert outcomes(entries) == [
        ("hr/echo", "denied", "hr"),
        ("ops/whoami", "denied", "ops"),
        ("hr/nope", "unknown", None),
        *[("ops/echo", "ok", "ops")] * 3,
        ("ops/echo", "rate_limited", "ops"),
    ]


async def test_arguments_that_fail_the_schema_are_refused_with_their_path_before_the_backend(
    guarded: tuple[Gateway, list[Entry]],
) -> None:
    gateway, entries = guarded
    with pytest.raises(InvalidArguments) as invalid:
        await gateway.guard.call_tool(ALICE, "ops/echo", {"text": 5})
    assert (invalid.value.tool, invalid.value.path) == ("ops/echo", "$.text")
    assert outcomes(entries) == [("ops/echo", "invalid_arguments", "ops")]


async def test_every_rendering_is_audited_under_its_canonical_name_with_the_calls_outcome(
    guarded: tuple[Gateway, list[Entry]],
) -> None:
    gateway, entries = guarded
    await gateway.guard.call_tool(ALICE, "ops__echo", {"text": "x"}, request_id=7)
    with pytest.raises(MCPError):
        await gateway.guard.call_tool(ALICE, "ops/fail", {})
    assert outcomes(entries) == [("ops/echo", "ok", "ops"), ("ops/fail", "backend_error", "ops")]
    assert (entries[0].principal, entries[0].kind, entries[0].request_id) == ("api_key:alice", "tool", 7)


async def test_a_budget_charged_early_is_not_charged_again(guarded: tuple[Gateway, list[Entry]]) -> None:
    gateway, entries = guarded
    principal = ALICE.principal
    assert principal is not None
    assert not await gateway.guard.admit(principal, "tools/list", {})  # lists spend nothing
    for _ in range(3):
        assert await gateway.guard.admit(principal, "tools/call", {"name": "ops/echo"})
        await gateway.guard.call_tool(ALICE, "ops/echo", {"text": "x"}, admitted=True)
    with pytest.raises(RateLimited):
        await gateway.guard.admit(principal, "tools/call", {"name": "ops/echo"}, request_id=9)
    assert outcomes(entries)[-1] == ("ops/echo", "rate_limited", None)


async def test_lists_show_only_what_the_principal_may_use(guarded: tuple[Gateway, list[Entry]]) -> None:
    gateway, _ = guarded
    principal = ALICE.principal
    assert principal is not None and gateway.guard.filters
    tools = {tool.name for tool in gateway.guard.listing(principal, "tools")}
    assert tools and all(name.startswith("ops/") for name in tools) and "ops/whoami" not in tools
    assert {str(r.uri) for r in gateway.guard.listing(principal, "resources")} == {"ops+toy://about"}


async def test_a_completion_needs_the_right_to_use_what_it_names(guarded: tuple[Gateway, list[Entry]]) -> None:
    gateway, entries = guarded
    argument = types.CompletionArgument(name="who", value="A")
    allowed = types.CompleteRequestParams(
        ref=types.PromptReference(type="ref/prompt", name="ops/greet"), argument=argument
    )
    hidden = types.CompleteRequestParams(
        ref=types.PromptReference(type="ref/prompt", name="hr/greet"), argument=argument
    )
    assert (await gateway.guard.complete(ALICE, allowed)).completion.values
    await refused(gateway.guard.complete(ALICE, hidden))
    assert [(e.kind, e.outcome) for e in entries] == [("completion", "ok"), ("completion", "denied")]
