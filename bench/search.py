"""What tool search costs in-process: the index over a generated catalogue (10,000 tools by default), built once and
searched with realistic queries, common-word queries and hostile ones.

The catalogue reads like a real one: 100 backends of 100 tools each, named ``<backend>__<verb>_<noun>``, with
titles, descriptions in sentences that share their filler words (``the``, ``a``, ``returns``) across every tool,
and arguments with descriptions. Reported: the build time, and the p50/p95/max per search over every query, with
the slowest query named. ``bench.search_gateway`` measures the same queries end to end, through a gateway.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from mcp import types

from bench.settings import Settings
from gateway.composition.search import ToolIndex


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


DOMAINS = _words(
    "crm billing github jira kubernetes slack calendar payroll inventory shipping warehouse support wiki drive "
    "email analytics monitoring incident oncall deploy registry dns firewall vpn identity audit ledger invoice "
    "budget procurement recruiting training travel expenses assets contracts legal compliance risk sales marketing "
    "ads seo forms survey chat voice video storage backup database cache queue search logs metrics traces alerts "
    "pager status releases builds tests security secrets keys certificates domains billing2 tax payments refunds "
    "orders catalog pricing promotions loyalty reviews returns fulfilment fleet maps weather news stocks crypto "
    "health fitness recipes music photos notes tasks projects timesheets leave benefits"
)
VERBS = _words("get list create update delete search export import sync archive approve assign close open count")
NOUNS = _words(
    "incident ticket item order invoice customer employee user account project issue alert deployment release "
    "repository branch commit message channel event meeting report budget payment refund shipment package record "
    "document file folder page comment review task schedule shift rota certificate secret key domain zone rule "
    "policy role group team contract asset license vendor supplier quote lead opportunity campaign segment"
)
FIELDS = _words("status owner priority created updated amount currency region warehouse due assignee labels notes")
FILLER = (
    "Returns the matching records with their identifiers.",
    "Use this when the user asks about it by name or by number.",
    "Results are paged; pass the cursor from the previous answer to read on.",
    "Requires the right permissions on the account.",
    "The answer is a JSON object with the fields listed in the output schema.",
)
QUERIES = (
    "open incidents in a warehouse",
    "who is on call this week",
    "cost of an incident",
    "create an invoice for a customer",
    "approve leave request",
    "incident",
    "list kubernetes deployments",
    "refund a payment",
    "search slack messages from a channel",
    "rotate a certificate before it expires",
    "find the tool that returns the status of an order and its shipment",
    "get list the a of with",
    "the",
    'NEAR("incident" "ticket") OR ops:* "unbalanced',
    "x" * 100_000,
    "in" * 50_000,
    " ".join(NOUNS),
    "événement incidént 事件 \x00\x1b\u202e",
    "",
)


def generated_tools(count: int, seed: int = 7, separator: str = "__") -> list[types.Tool]:
    """``count`` tools named ``<domain><separator><verb>_<noun>_<n>``: by default in the strict style, as 100
    backends of a gateway would list them; with ``_``, as one backend of them all would."""
    rnd = random.Random(seed)
    tools = []
    for i in range(count):
        domain, verb, noun = DOMAINS[i % len(DOMAINS)], rnd.choice(VERBS), rnd.choice(NOUNS)
        fields = rnd.sample(FIELDS, 3)
        description = (
            f"{verb.capitalize()} a {noun} in {domain}. Returns the {noun} with its {fields[0]}, {fields[1]} and "
            f"{fields[2]}. {rnd.choice(FILLER)} {rnd.choice(FILLER)}"
        )
        schema = {
            "type": "object",
            "properties": {
                f"{noun}_id": {"type": "string", "description": f"The {noun}'s identifier in {domain}"},
                fields[0]: {"type": "string", "description": f"Only {noun}s with this {fields[0]}"},
                "limit": {"type": "integer", "description": "At most this many results"},
            },
        }
        name = f"{domain}{separator}{verb}_{noun}_{i // len(DOMAINS)}"
        title = f"{verb.capitalize()} {noun} ({domain})"
        tools.append(types.Tool(name=name, title=title, description=description, input_schema=schema))
    return tools


def search_cost(settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the index over ``settings.search_tools`` tools, then time every query ``settings.search_reps`` times."""
    tools = generated_tools(settings.search_tools)
    started = time.perf_counter()
    index = ToolIndex(tools, generation=1)
    build = time.perf_counter() - started
    log(f"  search: index of {len(tools)} tools built in {build * 1000:.0f} ms")
    times: list[float] = []
    slowest = (0.0, "")
    for _ in range(settings.search_reps):
        for query in QUERIES:
            started = time.perf_counter()
            index.search(query, 10, lambda name: True)
            elapsed = time.perf_counter() - started
            times.append(elapsed)
            slowest = max(slowest, (elapsed, query[:40]))
    index.close()
    times.sort()
    return {
        "tools": len(tools),
        "queries": len(QUERIES),
        "searches": len(times),
        "build_ms": build * 1000,
        "p50_ms": statistics.median(times) * 1000,
        "p95_ms": times[int(len(times) * 0.95) - 1] * 1000,
        "max_ms": times[-1] * 1000,
        "slowest_query": slowest[1],
    }


def render(cost: dict[str, Any]) -> str:
    """The report's line."""
    return (
        f"**Tool search** (in-process index, {cost['tools']} generated tools, {cost['queries']} queries x "
        f"{cost['searches'] // cost['queries']}): built in {cost['build_ms']:.0f} ms; per search p50 "
        f"{cost['p50_ms']:.2f} ms, p95 {cost['p95_ms']:.2f} ms, max {cost['max_ms']:.2f} ms "
        f"(slowest: {cost['slowest_query']!r})."
    )
