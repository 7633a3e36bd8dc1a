"""The tool index: ranked full-text search over names, titles, descriptions and arguments, safe for any query."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from mcp import types

from bench.search import generated_tools
from gateway.composition.search import MAX_TERMS, ToolIndex, name_words, terms
from tests.support.reach import sample_tools

NASTY = (
    "",
    "   \t\n",
    '"',
    '"""',
    '"unbalanced',
    "*",
    "incident*",
    "NEAR(incident ticket, 2)",
    "name:incident",
    "{name title}: incident",
    "- incident",
    "^incident",
    "incident AND OR NOT",
    "AND",
    "(((",
    "')); DROP TABLE tools; --",
    "\x00\x01\x1b[31m\x7f",
    "\u202eticket\u200b\ufeff",
    "ticket \ud800",
    "事件 チケット événement Ünïcödé",
    "🙂🔥 ticket",
    "x" * 100_000,
    "ticket " * 20_000,
    " ".join(f"w{i}" for i in range(10_000)),
    "a" * 65 + " leave",
)


@pytest.fixture(scope="module")
def catalogue() -> Iterator[ToolIndex]:
    """The sample backends' tools among 5,000 generated ones."""
    index = ToolIndex([*generated_tools(5000), *sample_tools()], generation=1)
    yield index
    index.close()


def ranked(index: ToolIndex, query: str, limit: int = 5) -> list[str]:
    return [hit.tool.name for hit in index.search(query, limit, lambda name: True)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("approve a leave request", "hr/approve_leave"),
        ("how much budget is left for a department", "fin/calculate_budget"),
        ("change the status of a ticket", "ops/update_ticket_status"),
        ("stock levels of a sku", "ops/lookup_inventory"),
        ("quarterly report", "fin/generate_report"),
        ("book an expense", "fin/record_expense"),
        ("handbook policy on remote work", "hr/search_policy"),
    ],
)
def test_the_sample_backends_tool_for_a_task_ranks_first_among_thousands(
    catalogue: ToolIndex, query: str, expected: str
) -> None:
    assert ranked(catalogue, query)[0] == expected


def test_a_name_word_outranks_the_same_word_in_a_description() -> None:
    named = types.Tool(name="ops/get_incident", description="Read one record.", input_schema={"type": "object"})
    described = types.Tool(name="ops/read", description="Read one incident record.", input_schema={"type": "object"})
    index = ToolIndex([described, named], generation=1)
    assert ranked(index, "incident") == ["ops/get_incident", "ops/read"]


def test_words_of_snake_and_camel_case_names_and_of_arguments_are_found() -> None:
    tools = [
        types.Tool(name="ops__get_incident", input_schema={"type": "object"}),
        types.Tool(name="ops/getOnCallRota", input_schema={"type": "object"}),
        types.Tool(
            name="fin/cost",
            input_schema={"type": "object", "properties": {"cost_center": {"description": "Which ledger to charge"}}},
        ),
    ]
    index = ToolIndex(tools, generation=1)
    assert ranked(index, "incident") == ["ops__get_incident"]
    assert ranked(index, "rota on call") == ["ops/getOnCallRota"]
    assert ranked(index, "ledger center") == ["fin/cost"]


def test_plural_and_stemmed_forms_match() -> None:
    index = ToolIndex(list(sample_tools()), generation=1)
    assert ranked(index, "tickets", 1) == ranked(index, "ticket", 1) == ["ops/list_tickets"]


def test_a_tool_the_caller_may_not_use_is_never_found_and_the_limit_is_refilled(catalogue: ToolIndex) -> None:
    everyone = ranked(catalogue, "leave", 10)
    denied = {name for name in everyone if name.startswith("hr/")}
    assert denied, everyone
    hits = catalogue.search("leave", 10, lambda name: name not in denied)
    assert len(hits) == 10
    assert not denied & {hit.tool.name for hit in hits}
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_a_caller_allowed_nothing_finds_nothing(catalogue: ToolIndex) -> None:
    assert catalogue.search("leave", 10, lambda name: False) == []


def test_the_limit_bounds_the_hits(catalogue: ToolIndex) -> None:
    assert len(catalogue.search("ticket", 3, lambda name: True)) == 3


@pytest.mark.parametrize("query", NASTY, ids=range(len(NASTY)))
def test_any_query_answers_quickly_without_an_error(catalogue: ToolIndex, query: str) -> None:
    started = time.perf_counter()
    hits = catalogue.search(query, 10, lambda name: True)
    assert time.perf_counter() - started < 2.0  # a bound for a loaded machine, far above the measured milliseconds
    assert len(hits) <= 10


def test_query_syntax_is_read_as_words() -> None:
    assert terms('NEAR("incident" ticket*) name:leave OR') == ["near", "incident", "ticket", "name", "leave"]
    assert ranked(ToolIndex(list(sample_tools()), generation=1), 'name:"approve* NEAR(leave')[0] == "hr/approve_leave"


def test_a_query_is_cut_to_a_bounded_number_of_words() -> None:
    assert len(terms(" ".join(f"w{i}" for i in range(1000)))) == MAX_TERMS
    assert terms("Leave leave LEAVE") == ["leave"]


def test_function_words_are_left_out_unless_the_query_has_nothing_else() -> None:
    assert terms("who is on call for the warehouse") == ["call", "warehouse"]
    assert terms("the") == ["the"]
    assert terms("the a of to " * 50 + " ".join(f"w{i}" for i in range(20))) == [f"w{i}" for i in range(MAX_TERMS)]


def test_a_query_of_words_no_tool_has_finds_nothing(catalogue: ToolIndex) -> None:
    assert ranked(catalogue, "zebra quokka") == []


def test_the_index_looks_tools_up_by_name() -> None:
    tools = list(sample_tools())
    index = ToolIndex(tools, generation=7)
    assert index.generation == 7 and len(index) == len(tools)
    assert index.get("hr/approve_leave") is next(t for t in tools if t.name == "hr/approve_leave")
    assert index.get("hr/nope") is None


def test_name_words_split_camel_case_and_leave_snake_case_to_the_tokenizer() -> None:
    assert name_words("ops/getIncidentHTTPStatus") == "ops getIncidentHTTPStatus get Incident HTTP Status"
    assert name_words("ops__get_incident") == "ops__get_incident"


def test_a_tool_with_text_utf_8_cannot_hold_is_indexed_and_found() -> None:
    odd = types.Tool(
        name="ops/odd\ud800",
        title="\x00Odd",
        description="Reads an incident \ud800 record",
        input_schema={"type": "object", "properties": {"q\udfff": {"description": "\ud800"}}},
    )
    index = ToolIndex([odd, *sample_tools()], generation=1)
    assert ranked(index, "incident odd") == ["ops/odd\ud800"]
