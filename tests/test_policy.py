"""Authorization: rules per principal, role or scope; deny wins; lists show only what may be used; a denied call
never reaches its backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import MCPError, types

from gateway.config import PolicyConfig, SecurityConfig
from gateway.principal import Principal
from gateway.security.policy import Policy
from tests.support.inproc import client, running_gateway
from tests.support.toy_server import build

ALICE = Principal("alice", frozenset({"ops"}))
BOB = Principal("bob", scopes=frozenset({"hr:read"}))
RULES = {
    "rules": [
        {"roles": ["ops"], "allow": ["ops/*", "hr/search"], "deny": ["ops/crash"]},
        {"scopes": ["hr:read"], "allow": ["hr/*"]},
        {"principals": ["*"], "deny": ["*/record"]},
    ]
}


def policy(auth_enabled: bool = True, **config: Any) -> Policy:
    return Policy(PolicyConfig.model_validate(config), auth_enabled=auth_enabled)


@pytest.mark.parametrize(
    ("principal", "name", "allowed"),
    [
        (ALICE, "ops/search", True),
        (ALICE, "ops/crash", False),
        (ALICE, "hr/search", True),
        (ALICE, "hr/echo", False),
        (ALICE, "ops/record", False),
        (BOB, "hr/echo", True),
        (BOB, "hr/record", False),
        (BOB, "ops/search", False),
        (ALICE, "ops/ops+toy://notes/1", True),
    ],
)
def test_rules_match_by_role_scope_or_name_and_deny_wins(principal: Principal, name: str, allowed: bool) -> None:
    assert policy(**RULES).allows(principal, name) is allowed


def test_the_default_is_allow_without_authentication_and_deny_with_it() -> None:
    stranger = Principal("stranger")
    assert policy(auth_enabled=False).allows(stranger, "ops/anything")
    assert not policy(auth_enabled=True).allows(stranger, "ops/anything")
    assert policy(auth_enabled=True, default="allow").allows(stranger, "ops/anything")
    assert not policy(auth_enabled=False, default="deny").allows(stranger, "ops/anything")


def test_a_rule_must_name_whom_it_is_for() -> None:
    with pytest.raises(ValueError, match="at least one of"):
        PolicyConfig.model_validate({"rules": [{"allow": ["*"]}]})


ISSUER = "https://idp.example.test"
JWT = {"issuer": ISSUER, "audience": "gateway", "algorithms": ["HS256"], "secret": "s" * 32}


def test_a_plain_name_is_a_configured_principal_and_jwt_subjects_are_named_as_such() -> None:
    rules = policy(
        rules=[
            {"principals": ["alice"], "allow": ["ops/*"]},
            {"subjects": ["alice"], "allow": ["hr/*"]},
            {"subjects": ["*"], "allow": ["fin/*"]},
        ]
    )
    key, token = Principal("alice", method="api_key"), Principal("alice", method="jwt", issuer=ISSUER)
    assert [rules.allows(key, name) for name in ("ops/x", "hr/x", "fin/x")] == [True, False, False]
    assert [rules.allows(token, name) for name in ("ops/x", "hr/x", "fin/x")] == [False, True, True]
    assert rules.allows(Principal("desk", method="local"), "ops/x") is False
    everyone = policy(rules=[{"principals": ["*"], "allow": ["ops/*"]}])
    assert everyone.allows(key, "ops/x") and everyone.allows(token, "ops/x")


@pytest.mark.parametrize(
    "security",
    [
        {"policy": {"rules": [{"principals": ["jwt:alice"], "allow": ["*"]}]}},
        {"policy": {"rules": [{"subjects": [""], "allow": ["*"]}]}},
        {"policy": {"rules": [{"subjects": ["alice"], "allow": ["*"]}]}},  # and no JWTs configured
        {"auth": {"jwt": JWT}, "policy": {"rules": [{"principals": ["carol"], "allow": ["*"]}]}},  # no such key
    ],
)
def test_rules_naming_principals_that_cannot_exist_are_refused_at_load(security: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SecurityConfig.model_validate(security)


pytestmark = pytest.mark.anyio
SECURITY = {"auth": {"api_keys": [{"principal": "alice", "key": "k" * 20}]}, "policy": RULES}


async def test_each_principal_lists_only_what_it_may_use() -> None:
    async with running_gateway({"ops": build("ops"), "hr": build("hr")}, security=SECURITY) as gw:
        async with client(gw, principal=ALICE) as alice:
            tools = {t.name for t in (await alice.list_tools()).tools}
            prompts = {p.name for p in (await alice.list_prompts()).prompts}
            resources = {str(r.uri) for r in (await alice.list_resources()).resources}
            templates = {t.uri_template for t in (await alice.list_resource_templates()).resource_templates}
        async with client(gw, principal=BOB, name="claude-ai") as bob:
            strict = {t.name for t in (await bob.list_tools()).tools}
    assert "ops/search" in tools and "hr/search" in tools
    assert not {"ops/crash", "ops/record", "hr/echo"} & tools
    assert all(n.startswith("ops/") or n == "hr/search" for n in tools)
    assert prompts == {"ops/greet", "ops/greet_asked"}
    assert resources == {"ops+toy://about"}
    assert templates == {"ops+toy://asked/{topic}", "ops+toy://notes/{note_id}"}
    assert "hr__echo" in strict and "hr__record" not in strict and not any(n.startswith("ops") for n in strict)


async def test_a_denied_call_is_refused_and_never_reaches_the_backend(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    servers = {"ops": build("ops", journal), "hr": build("hr", journal)}
    async with running_gateway(servers, security=SECURITY) as gw, client(gw, principal=ALICE) as alice:
        with pytest.raises(MCPError) as denied:
            await alice.call_tool("ops/record", {"tag": "denied", "seconds": 0})
        with pytest.raises(MCPError) as other:
            await alice.call_tool("hr/echo", {"text": "x"})
        with pytest.raises(MCPError) as prompt:
            await alice.get_prompt("hr/greet", {"who": "x"})
        with pytest.raises(MCPError) as resource:
            await alice.read_resource("hr+toy://about")
        with pytest.raises(MCPError) as unknown:
            await alice.call_tool("ops/no_such_tool", {})
        allowed = await alice.call_tool("ops/search", {"query": "disk"})
    # A denied name is answered as an unknown one: its lists hide it, so must its calls.
    assert {e.value.code for e in (denied, other, prompt, resource)} == {types.INVALID_PARAMS}
    assert denied.value.data == {"tool": "ops/record"}
    assert denied.value.message == unknown.value.message.replace("ops/no_such_tool", "ops/record")
    assert not journal.exists()
    assert allowed.structured_content == {"result": ["ops:disk"]}


async def test_the_local_principal_of_stdio_follows_the_rules_too() -> None:
    security = {**SECURITY, "auth": {**SECURITY["auth"], "local": {"name": "desk", "roles": ["ops"]}}}
    servers = {"ops": build("ops"), "hr": build("hr")}
    async with running_gateway(servers, security=security) as gw, client(gw) as local:
        tools = {t.name for t in (await local.list_tools()).tools}
    assert gw.guard.local == Principal("desk", frozenset({"ops"}), method="local")
    assert "ops/search" in tools and "hr/echo" not in tools


async def test_hearing_of_a_resource_needs_the_right_to_read_it() -> None:
    servers = {"ops": build("ops"), "hr": build("hr")}
    async with running_gateway(servers, security=SECURITY) as gw:
        async with client(gw, principal=ALICE, mode="legacy") as legacy:
            with pytest.raises(MCPError) as denied:
                await legacy.subscribe_resource("hr+toy://about")
            await legacy.subscribe_resource("ops+toy://about")
        async with client(gw, principal=ALICE) as modern:
            wanted = ["hr+toy://about", "ops+toy://notes/1"]
            async with modern.listen(resource_subscriptions=wanted) as subscription:
                honored = subscription.honored.resource_subscriptions
    assert denied.value.code == types.INVALID_PARAMS
    assert honored == ["ops+toy://notes/1"]
