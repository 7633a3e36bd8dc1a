"""The catalogue: backend listings under exposed names, and every exposed name routed back to its owner."""

from __future__ import annotations

import re
from typing import Any

import pytest
from mcp import types

from gateway.catalogue.catalog import Catalog, Kind, Route, Snapshot
from gateway.catalogue.naming import Style
from gateway.config import BackendConfig, NamingConfig
from gateway.errors import UnknownTarget

STRICT = re.compile(r"[a-zA-Z0-9_-]{1,64}")
NAMING = NamingConfig()

OPS = BackendConfig(name="ops", prefix="ops", url="http://127.0.0.1:8001/mcp")
HR = BackendConfig(name="hr", prefix="hr", url="http://127.0.0.1:8002/mcp")
FINANCE = BackendConfig(name="finance", prefix="fin", url="http://127.0.0.1:8003/mcp")


def schema(*fields: str) -> dict[str, Any]:
    return {"type": "object", "properties": {f: {"type": "string"} for f in fields}, "required": list(fields)}


def tool(name: str, *fields: str, description: str | None = None) -> types.Tool:
    return types.Tool(name=name, description=description or f"{name} tool", input_schema=schema(*fields))


def prompt(name: str) -> types.Prompt:
    return types.Prompt(name=name, description=f"{name} prompt")


def resource(uri: str, name: str = "r") -> types.Resource:
    return types.Resource(name=name, uri=uri)


def template(uri_template: str, name: str = "t") -> types.ResourceTemplate:
    return types.ResourceTemplate(name=name, uri_template=uri_template)


def unprefixed(name: str) -> BackendConfig:
    return BackendConfig(name=name, prefix="", url=f"http://{name}.example/mcp")


@pytest.fixture
def catalog() -> Catalog:
    """The three sample backends, each with a tool named ``search`` and a few other items."""
    cat = Catalog([OPS, HR, FINANCE], NAMING)
    cat.show(
        "ops",
        Snapshot(
            tools=(tool("search", "query"), tool("create_ticket", "title")),
            prompts=(prompt("triage"),),
            resources=(resource("ops://tickets/7", "ticket 7"),),
            templates=(template("ops://tickets/{ticket_id}"),),
        ),
    )
    cat.show(
        "hr",
        Snapshot(
            tools=(tool("search", "who"),),
            prompts=(prompt("triage"),),
            resources=(resource("hr://policies/leave"),),
            templates=(template("hr://employees/{employee_id}"),),
        ),
    )
    cat.show("finance", Snapshot(tools=(tool("search", "account"),), resources=(resource("finance://reports/q1"),)))
    return cat


def names(items: list[Any]) -> list[str]:
    return [item.name for item in items]


# -- one name per backend item -------------------------------------------------------------------------------------


def test_three_backends_with_a_tool_of_the_same_name_are_kept_apart(catalog: Catalog) -> None:
    assert catalog.resolve_tool("ops/search") == Route("ops", "search")
    assert catalog.resolve_tool("hr/search") == Route("hr", "search")
    assert catalog.resolve_tool("fin/search") == Route("finance", "search")
    assert catalog.conflicts == []


def test_strict_names_route_to_the_same_backends_as_canonical_ones(catalog: Catalog) -> None:
    assert catalog.resolve_tool("ops__search") == Route("ops", "search")
    assert catalog.resolve_tool("hr__search") == Route("hr", "search")
    assert catalog.resolve_tool("fin__search") == Route("finance", "search")
    assert catalog.resolve_tool("ops__create_ticket") == Route("ops", "create_ticket")


def test_every_listed_name_in_either_style_routes_back_to_its_owner(catalog: Catalog) -> None:
    canonical = catalog.tools(Style.CANONICAL)
    strict = catalog.tools(Style.STRICT)

    assert len(canonical) == len(strict) == 4
    for c, s in zip(canonical, strict, strict=True):
        assert catalog.resolve_tool(c.name) == catalog.resolve_tool(s.name)
        assert STRICT.fullmatch(s.name)


def test_canonical_tool_list_is_sorted_by_exposed_name(catalog: Catalog) -> None:
    assert names(catalog.tools(Style.CANONICAL)) == ["fin/search", "hr/search", "ops/create_ticket", "ops/search"]
    assert names(catalog.tools(Style.STRICT)) == [
        "fin__search",
        "hr__search",
        "ops__create_ticket",
        "ops__search",
    ]


def test_lists_do_not_depend_on_the_order_backends_came_up() -> None:
    snapshots = {
        "ops": Snapshot(tools=(tool("b"), tool("a")), resources=(resource("ops://z"), resource("ops://a"))),
        "hr": Snapshot(tools=(tool("c"),), templates=(template("hr://{x}"),)),
        "finance": Snapshot(tools=(tool("a"),), resources=(resource("finance://m"),)),
    }
    forward = Catalog([OPS, HR, FINANCE], NAMING)
    backward = Catalog([OPS, HR, FINANCE], NAMING)
    for backend in ("ops", "hr", "finance"):
        forward.show(backend, snapshots[backend])
    for backend in ("finance", "hr", "ops"):
        backward.show(backend, snapshots[backend])

    for style in Style:
        assert forward.tools(style) == backward.tools(style)
    assert forward.resources() == backward.resources()
    assert forward.templates() == backward.templates()
    assert [r.uri for r in forward.resources()] == ["fin+finance://m", "ops+ops://a", "ops+ops://z"]


def test_an_exposed_tool_is_the_backend_tool_with_only_the_name_changed() -> None:
    original = types.Tool(
        name="search",
        title="Search tickets",
        description="Full-text search over tickets.",
        input_schema=schema("query"),
        output_schema={"type": "object", "properties": {"hits": {"type": "array"}}},
        annotations=types.ToolAnnotations(title="Search", read_only_hint=True, open_world_hint=False),
        icons=[types.Icon(src="https://ops.example/icon.png", mime_type="image/png")],
        meta={"vendor.example/owner": "ops-team"},
    )
    cat = Catalog([OPS], NAMING)
    cat.show("ops", Snapshot(tools=(original,)))

    (canonical,) = cat.tools(Style.CANONICAL)
    (strict,) = cat.tools(Style.STRICT)

    assert (canonical.name, strict.name) == ("ops/search", "ops__search")
    expected = original.model_dump(exclude={"name"})
    assert canonical.model_dump(exclude={"name"}) == expected
    assert strict.model_dump(exclude={"name"}) == expected
    assert original.name == "search"


def test_prompts_are_exposed_and_routed_like_tools(catalog: Catalog) -> None:
    assert names(catalog.prompts(Style.CANONICAL)) == ["hr/triage", "ops/triage"]
    assert names(catalog.prompts(Style.STRICT)) == ["hr__triage", "ops__triage"]
    assert catalog.resolve_prompt("ops/triage") == Route("ops", "triage")
    assert catalog.resolve_prompt("hr__triage") == Route("hr", "triage")
    assert catalog.prompts(Style.CANONICAL)[0].description == "triage prompt"


def test_tool_and_prompt_names_live_in_separate_namespaces(catalog: Catalog) -> None:
    with pytest.raises(UnknownTarget):
        catalog.resolve_prompt("ops/search")
    with pytest.raises(UnknownTarget):
        catalog.resolve_tool("ops/triage")


@pytest.mark.parametrize("name", ["search", "ops/nope", "nope/search", "ops_search", "fin/search/", "finance/search"])
def test_an_unknown_tool_name_raises_unknown_target(catalog: Catalog, name: str) -> None:
    with pytest.raises(UnknownTarget) as excinfo:
        catalog.resolve_tool(name)

    assert (excinfo.value.kind, excinfo.value.name) == ("tool", name)


def test_an_unknown_prompt_name_raises_unknown_target(catalog: Catalog) -> None:
    with pytest.raises(UnknownTarget) as excinfo:
        catalog.resolve_prompt("ops/nope")

    assert excinfo.value.kind == "prompt"


def test_an_empty_catalogue_lists_nothing_and_routes_nothing() -> None:
    cat = Catalog([OPS, HR], NAMING)

    assert cat.tools(Style.CANONICAL) == []
    assert cat.prompts(Style.STRICT) == []
    assert cat.resources() == []
    assert cat.templates() == []
    with pytest.raises(UnknownTarget):
        cat.resolve_tool("ops/search")


# -- changes -------------------------------------------------------------------------------------------------------


def test_show_returns_the_kinds_whose_lists_changed() -> None:
    cat = Catalog([OPS, HR], NAMING)

    assert cat.show("ops", Snapshot(tools=(tool("search"),))) == {Kind.TOOLS}
    assert cat.show("hr", Snapshot(prompts=(prompt("p"),))) == {Kind.PROMPTS}
    assert cat.show("hr", Snapshot(prompts=(prompt("p"),), templates=(template("hr://{x}"),))) == {Kind.RESOURCES}
    assert cat.show("ops", Snapshot(tools=(tool("search"),), resources=(resource("ops://a"),))) == {Kind.RESOURCES}
    assert cat.show("ops", Snapshot(resources=(resource("ops://a"),), prompts=(prompt("q"),))) == {
        Kind.TOOLS,
        Kind.PROMPTS,
    }


def test_showing_an_identical_listing_again_changes_nothing(catalog: Catalog) -> None:
    snapshot = Snapshot(tools=(tool("search", "query"),), prompts=(prompt("triage"),))
    catalog.show("ops", snapshot)

    assert catalog.show("ops", snapshot) == set()
    assert catalog.show("ops", Snapshot(tools=(tool("search", "query"),), prompts=(prompt("triage"),))) == set()


def test_a_changed_description_counts_as_a_change(catalog: Catalog) -> None:
    catalog.show("finance", Snapshot(tools=(tool("search", "account"),), resources=(resource("finance://reports/q1"),)))

    changed = catalog.show(
        "finance",
        Snapshot(tools=(tool("search", "account", description="new"),), resources=(resource("finance://reports/q1"),)),
    )

    assert changed == {Kind.TOOLS}
    assert [t.description for t in catalog.tools(Style.CANONICAL) if t.name == "fin/search"] == ["new"]


def test_hide_removes_a_backends_items_from_every_list(catalog: Catalog) -> None:
    changed = catalog.hide("ops")

    assert changed == {Kind.TOOLS, Kind.PROMPTS, Kind.RESOURCES}
    assert names(catalog.tools(Style.CANONICAL)) == ["fin/search", "hr/search"]
    assert names(catalog.tools(Style.STRICT)) == ["fin__search", "hr__search"]
    assert names(catalog.prompts(Style.CANONICAL)) == ["hr/triage"]
    assert [r.uri for r in catalog.resources()] == ["fin+finance://reports/q1", "hr+hr://policies/leave"]
    assert [t.uri_template for t in catalog.templates()] == ["hr+hr://employees/{employee_id}"]


def test_a_hidden_backends_names_still_route_so_callers_can_be_told_it_is_unavailable(catalog: Catalog) -> None:
    catalog.hide("ops")

    assert catalog.resolve_tool("ops/search") == Route("ops", "search")
    assert catalog.resolve_tool("ops__create_ticket") == Route("ops", "create_ticket")
    assert catalog.resolve_prompt("ops/triage") == Route("ops", "triage")
    assert catalog.resolve_uri("ops+ops://tickets/7") == Route("ops", "ops://tickets/7")


def test_hiding_twice_changes_nothing_the_second_time(catalog: Catalog) -> None:
    catalog.hide("hr")

    assert catalog.hide("hr") == set()
    assert catalog.hide("never-shown") == set()


def test_showing_a_hidden_backend_again_restores_its_items(catalog: Catalog) -> None:
    before = catalog.tools(Style.CANONICAL)
    catalog.hide("hr")

    changed = catalog.show("hr", Snapshot(tools=(tool("search", "who"),)))

    assert Kind.TOOLS in changed
    assert catalog.tools(Style.CANONICAL) == before


# -- conflicts -----------------------------------------------------------------------------------------------------


def test_two_unprefixed_backends_offering_one_name_keep_the_first_in_config_order_and_record_a_conflict() -> None:
    first, second = unprefixed("alpha"), unprefixed("beta")
    cat = Catalog([first, second], NAMING)
    cat.show("beta", Snapshot(tools=(tool("search", "beta_arg"), tool("only_beta"))))
    cat.show("alpha", Snapshot(tools=(tool("search", "alpha_arg"),)))

    assert cat.resolve_tool("search") == Route("alpha", "search")
    assert cat.resolve_tool("only_beta") == Route("beta", "only_beta")
    (listed_search,) = [t for t in cat.tools(Style.CANONICAL) if t.name == "search"]
    assert listed_search.input_schema == schema("alpha_arg")
    assert names(cat.tools(Style.CANONICAL)) == ["only_beta", "search"]
    (conflict,) = cat.conflicts
    assert "search" in conflict
    assert "alpha" in conflict
    assert "beta" in conflict


def test_a_conflict_is_listed_once_however_often_the_catalogue_is_rebuilt() -> None:
    cat = Catalog([unprefixed("alpha"), unprefixed("beta")], NAMING)
    cat.show("alpha", Snapshot(tools=(tool("search"),)))
    cat.show("beta", Snapshot(tools=(tool("search"),)))
    cat.show("beta", Snapshot(tools=(tool("search"),)))
    cat.hide("beta")

    assert len(cat.conflicts) == 1


def test_a_conflict_disappears_when_the_clashing_item_is_gone() -> None:
    cat = Catalog([unprefixed("alpha"), unprefixed("beta")], NAMING)
    cat.show("alpha", Snapshot(tools=(tool("search"),)))
    cat.show("beta", Snapshot(tools=(tool("search"),)))

    cat.show("beta", Snapshot(tools=(tool("lookup"),)))

    assert cat.conflicts == []
    assert cat.resolve_tool("lookup") == Route("beta", "lookup")


def test_tools_whose_strict_renderings_collide_get_distinct_strict_names_that_both_route() -> None:
    cat = Catalog([OPS], NAMING)
    cat.show("ops", Snapshot(tools=(tool("a.b", "dot"), tool("a_b", "underscore"))))

    strict = cat.tools(Style.STRICT)
    canonical = cat.tools(Style.CANONICAL)

    assert names(canonical) == ["ops/a.b", "ops/a_b"]
    assert len({t.name for t in strict}) == 2
    assert all(STRICT.fullmatch(t.name) for t in strict)
    routes = {next(iter(t.input_schema["properties"])): cat.resolve_tool(t.name) for t in strict}
    assert routes == {"dot": Route("ops", "a.b"), "underscore": Route("ops", "a_b")}
    assert cat.resolve_tool("ops/a.b") == Route("ops", "a.b")
    assert cat.resolve_tool("ops/a_b") == Route("ops", "a_b")
    assert cat.conflicts == []


def test_an_unprefixed_tool_named_like_another_backends_strict_rendering_does_not_steal_it() -> None:
    plain = unprefixed("plain")
    cat = Catalog([OPS, plain], NAMING)
    cat.show("ops", Snapshot(tools=(tool("search", "ops_arg"),)))
    cat.show("plain", Snapshot(tools=(tool("ops__search", "plain_arg"),)))

    assert cat.resolve_tool("ops/search") == Route("ops", "search")
    assert cat.resolve_tool("ops__search") == Route("plain", "ops__search")
    strict = cat.tools(Style.STRICT)
    assert len({t.name for t in strict}) == 2
    for listed in strict:
        owner = cat.resolve_tool(listed.name)
        assert listed.input_schema == schema("ops_arg" if owner.backend == "ops" else "plain_arg")


def test_long_tool_names_get_valid_distinct_strict_names_that_route() -> None:
    cat = Catalog([OPS], NAMING)
    long_names = [f"{'generate_quarterly_report_' * 3}{suffix}" for suffix in ("csv", "pdf", "xlsx")]
    cat.show("ops", Snapshot(tools=tuple(tool(n) for n in long_names)))

    strict = names(cat.tools(Style.STRICT))

    assert len(set(strict)) == 3
    assert all(STRICT.fullmatch(n) for n in strict)
    assert sorted(cat.resolve_tool(n).original for n in strict) == sorted(long_names)


def test_strict_names_follow_the_configured_separator() -> None:
    cat = Catalog([OPS], NamingConfig(separator="-"))
    cat.show("ops", Snapshot(tools=(tool("search"),)))

    assert names(cat.tools(Style.STRICT)) == ["ops-search"]
    assert cat.resolve_tool("ops-search") == Route("ops", "search")
    with pytest.raises(UnknownTarget):
        cat.resolve_tool("ops__search")


# -- resources and templates ---------------------------------------------------------------------------------------


def test_resource_and_template_uris_are_exposed_under_the_backend_prefix(catalog: Catalog) -> None:
    assert [r.uri for r in catalog.resources()] == [
        "fin+finance://reports/q1",
        "hr+hr://policies/leave",
        "ops+ops://tickets/7",
    ]
    assert [t.uri_template for t in catalog.templates()] == [
        "hr+hr://employees/{employee_id}",
        "ops+ops://tickets/{ticket_id}",
    ]
    (ticket,) = [r for r in catalog.resources() if r.uri == "ops+ops://tickets/7"]
    assert ticket.name == "ticket 7"


def test_resolve_uri_strips_the_prefix_and_finds_the_owner(catalog: Catalog) -> None:
    assert catalog.resolve_uri("ops+ops://tickets/7") == Route("ops", "ops://tickets/7")
    assert catalog.resolve_uri("hr+hr://policies/leave") == Route("hr", "hr://policies/leave")
    assert catalog.resolve_uri("fin+finance://reports/q1") == Route("finance", "finance://reports/q1")


def test_a_uri_filled_in_from_a_template_routes_to_the_templates_backend(catalog: Catalog) -> None:
    assert catalog.resolve_uri("hr+hr://employees/42") == Route("hr", "hr://employees/42")
    assert catalog.resolve_uri("ops+ops://tickets/1001") == Route("ops", "ops://tickets/1001")


def test_a_backend_uri_with_a_plus_in_its_scheme_round_trips() -> None:
    cat = Catalog([OPS], NAMING)
    cat.show("ops", Snapshot(resources=(resource("git+https://git.example/repo.git"),)))

    (exposed,) = cat.resources()

    assert exposed.uri == "ops+git+https://git.example/repo.git"
    assert cat.resolve_uri(exposed.uri) == Route("ops", "git+https://git.example/repo.git")


@pytest.mark.parametrize("uri", ["ops://tickets/7", "nope+ops://tickets/7", "file:///etc/passwd", "tickets/7"])
def test_a_uri_without_a_known_prefix_is_unknown_when_every_backend_has_one(catalog: Catalog, uri: str) -> None:
    with pytest.raises(UnknownTarget) as excinfo:
        catalog.resolve_uri(uri)

    assert (excinfo.value.kind, excinfo.value.name) == ("resource", uri)


def test_an_unprefixed_backend_keeps_its_uris_and_receives_unprefixed_reads() -> None:
    plain = unprefixed("plain")
    cat = Catalog([OPS, plain], NAMING)
    cat.show("plain", Snapshot(resources=(resource("notes://today"),), templates=(template("notes://{day}"),)))
    cat.show("ops", Snapshot(resources=(resource("ops://tickets/7"),)))

    assert [r.uri for r in cat.resources()] == ["notes://today", "ops+ops://tickets/7"]
    assert [t.uri_template for t in cat.templates()] == ["notes://{day}"]
    assert cat.resolve_uri("notes://today") == Route("plain", "notes://today")
    assert cat.resolve_uri("notes://yesterday") == Route("plain", "notes://yesterday")
    assert cat.resolve_uri("ops+ops://tickets/7") == Route("ops", "ops://tickets/7")


def test_with_two_unprefixed_backends_a_listed_uri_goes_to_its_lister_and_an_unlisted_one_is_unknown() -> None:
    cat = Catalog([unprefixed("alpha"), unprefixed("beta")], NAMING)
    cat.show("alpha", Snapshot(resources=(resource("a://one"),)))
    cat.show("beta", Snapshot(resources=(resource("b://two"),)))

    assert cat.resolve_uri("a://one") == Route("alpha", "a://one")
    assert cat.resolve_uri("b://two") == Route("beta", "b://two")
    with pytest.raises(UnknownTarget):
        cat.resolve_uri("c://three")


# -- schemas and counts --------------------------------------------------------------------------------------------


def test_input_schema_is_the_backend_schema_for_a_visible_tools_canonical_name(catalog: Catalog) -> None:
    assert catalog.input_schema("ops/search") == schema("query")
    assert catalog.input_schema("hr/search") == schema("who")
    assert catalog.input_schema("fin/search") == schema("account")
    assert catalog.input_schema("ops/nope") is None


def test_input_schema_is_found_under_the_strict_name_a_strict_client_calls(catalog: Catalog) -> None:
    # The SDK passes the name from the client's tools/call to get_tool_input_schema; strict clients call ops__search.
    assert catalog.input_schema("ops__search") == schema("query")
    assert catalog.input_schema("fin__search") == schema("account")


def test_input_schema_is_withheld_while_the_backend_is_hidden(catalog: Catalog) -> None:
    catalog.hide("hr")

    assert catalog.input_schema("hr/search") is None
    assert catalog.input_schema("ops/search") == schema("query")


def test_counts_are_the_sizes_of_a_backends_last_listing_even_while_hidden(catalog: Catalog) -> None:
    assert catalog.counts("ops") == {"tools": 2, "prompts": 1, "resources": 1, "templates": 1}
    assert catalog.counts("finance") == {"tools": 1, "prompts": 0, "resources": 1, "templates": 0}

    catalog.hide("ops")

    assert catalog.counts("ops") == {"tools": 2, "prompts": 1, "resources": 1, "templates": 1}


def test_counts_of_a_backend_never_shown_are_zero() -> None:
    cat = Catalog([OPS], NAMING)

    assert cat.counts("ops") == {"tools": 0, "prompts": 0, "resources": 0, "templates": 0}


# -- incremental updates -------------------------------------------------------------------------------------------


def test_a_backends_arrival_reuses_every_other_backends_exposed_items(catalog: Catalog) -> None:
    before = {t.name: t for style in Style for t in catalog.tools(style)}

    catalog.show("hr", Snapshot(tools=(tool("search", "who"), tool("hire", "name"))))

    after = {t.name: t for style in Style for t in catalog.tools(style)}
    assert after.keys() == before.keys() | {"hr/hire", "hr__hire"}
    others = [name for name in before if not name.startswith(("hr/", "hr__"))]
    assert len(others) == 6
    assert all(after[name] is before[name] for name in others)


def test_a_batch_of_changes_merges_once_and_reports_every_kind_it_changed() -> None:
    one_by_one = Catalog([OPS, HR, FINANCE], NAMING)
    batched = Catalog([OPS, HR, FINANCE], NAMING)
    snapshots = {
        "ops": Snapshot(tools=(tool("search"),)),
        "hr": Snapshot(prompts=(prompt("triage"),)),
        "finance": Snapshot(resources=(resource("finance://q1"),)),
    }
    for backend, snapshot in snapshots.items():
        one_by_one.show(backend, snapshot)

    changed = batched.apply(snapshots)

    assert changed == {Kind.TOOLS, Kind.PROMPTS, Kind.RESOURCES}
    assert batched.generation == 1
    for style in Style:
        assert batched.tools(style) == one_by_one.tools(style)
        assert batched.prompts(style) == one_by_one.prompts(style)
    assert batched.resources() == one_by_one.resources()
    assert batched.apply({"hr": None, "finance": snapshots["finance"]}) == {Kind.PROMPTS}
    assert batched.generation == 2


def test_a_listing_with_one_kind_changed_keeps_the_other_kinds_items(catalog: Catalog) -> None:
    prompts = catalog.prompts(Style.CANONICAL)

    changed = catalog.show("ops", Snapshot(tools=(tool("search", "query"),), prompts=(prompt("triage"),)))

    assert changed == {Kind.TOOLS, Kind.RESOURCES}
    assert all(a is b for a, b in zip(catalog.prompts(Style.CANONICAL), prompts, strict=True))


def test_the_generation_moves_only_when_a_list_changes(catalog: Catalog) -> None:
    generation = catalog.generation

    catalog.hide("never-shown")
    assert catalog.generation == generation
    catalog.hide("hr")
    assert catalog.generation == generation + 1


def test_strict_copies_are_made_only_when_a_strict_list_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    copies: list[str] = []
    model_copy = types.Tool.model_copy

    def counted(self: types.Tool, **kwargs: Any) -> types.Tool:
        copies.append(kwargs["update"]["name"])
        return model_copy(self, **kwargs)

    monkeypatch.setattr(types.Tool, "model_copy", counted)
    catalog = Catalog([OPS, HR], NAMING)
    catalog.apply({"ops": Snapshot(tools=(tool("search", "q"),)), "hr": Snapshot(tools=(tool("hire", "n"),))})
    canonical_only = list(copies)
    strict = names(catalog.tools(Style.STRICT))
    assert canonical_only == ["hr/hire", "ops/search"]
    assert strict == ["hr__hire", "ops__search"] and copies[2:] == strict


def test_a_strict_list_made_on_first_use_follows_every_later_change() -> None:
    catalog = Catalog([OPS, HR], NAMING)
    catalog.show("ops", Snapshot(tools=(tool("search", "q"),)))
    first = names(catalog.tools(Style.STRICT))
    catalog.show("hr", Snapshot(tools=(tool("hire", "n"),)))
    second = names(catalog.tools(Style.STRICT))
    catalog.hide("ops")
    third, cursor = catalog.page("tools", Style.STRICT, None, 1)
    assert (first, second, names(third), cursor) == (["ops__search"], ["hr__hire", "ops__search"], ["hr__hire"], None)
    assert catalog.tools(Style.STRICT) is catalog.tools(Style.STRICT)
