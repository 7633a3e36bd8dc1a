"""The ops MCP server: inventory lookups, a ticket queue, a stock summary and an incident-report prompt.

Written the way the SDK teaches: functions registered with `@mcp.tool()`, `@mcp.resource(...)` and `@mcp.prompt()`,
here inside `build_server` so that each server gets the store of its own SQLite file.
"""

import json
import re
from pathlib import Path
from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver import Message, UserMessage
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from pydantic import Field

from backends._mcp import CREATE, READ, UPDATE, SearchLimit, SearchQuery, StrictServer, invalid_params
from backends.ops.models import (
    InventoryList,
    Priority,
    SearchResults,
    Ticket,
    TicketList,
    TicketStatus,
    Warehouse,
)
from backends.ops.store import OpsStore

INSTRUCTIONS = (
    "Operations data for the AMS-1, FRA-2 and NYC-1 warehouses: hardware stock per SKU and the ops ticket queue. "
    "Check stock with lookup_inventory or search before filing a ticket about hardware; tickets are numbered."
)

TicketId = Annotated[
    int, Field(ge=1, le=999_999_999, description="Ticket number, as returned by create_ticket or list_tickets")
]


def build_server(db_path: Path) -> MCPServer:
    """The ops server over the SQLite file at `db_path`, created and seeded if new."""
    store = OpsStore(db_path)
    mcp = StrictServer("ops", instructions=INSTRUCTIONS)
    _add_tools(mcp, store)
    _add_resources(mcp, store)
    _add_prompts(mcp, store)
    return mcp


def _add_tools(mcp: MCPServer, store: OpsStore) -> None:
    @mcp.tool(title="Look up inventory", annotations=READ)
    def lookup_inventory(
        sku: Annotated[
            str | None, Field(min_length=1, max_length=40, description="Exact SKU, e.g. SRV-R740-01")
        ] = None,
        name_contains: Annotated[
            str | None, Field(min_length=1, max_length=100, description="Words the item name must contain, e.g. nvme")
        ] = None,
        warehouse: Annotated[Warehouse | None, Field(description="Only this warehouse")] = None,
    ) -> InventoryList:
        """Stock levels per warehouse. Filters combine; with no filter the whole inventory is listed.

        An unknown SKU is an error; a known SKU not stocked in the chosen warehouse gives an empty list.
        """
        items = store.find_items(sku.strip().upper() if sku else None, name_contains, warehouse)
        return InventoryList(items=items, count=len(items))

    @mcp.tool(title="Create ticket", annotations=CREATE)
    def create_ticket(
        title: Annotated[str, Field(min_length=3, max_length=200, description="One-line summary")],
        description: Annotated[str, Field(min_length=1, max_length=5000, description="What happened, where, impact")],
        priority: Annotated[Priority, Field(description="critical = outage, high = degraded service")],
        assignee: Annotated[
            str | None, Field(min_length=1, max_length=64, description="Username of the owner, e.g. m.chen")
        ] = None,
    ) -> Ticket:
        """Open a new ops ticket. It starts with status "open"."""
        return store.create_ticket(title, description, priority, assignee)

    @mcp.tool(title="List tickets", annotations=READ)
    def list_tickets(
        status: Annotated[TicketStatus | None, Field(description="Only tickets with this status")] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="Maximum number of tickets")] = 20,
    ) -> TicketList:
        """Tickets, newest first."""
        tickets = store.list_tickets(status, limit)
        return TicketList(tickets=tickets, count=len(tickets))

    @mcp.tool(title="Update ticket status", annotations=UPDATE)
    def update_ticket_status(
        ticket_id: TicketId,
        status: Annotated[TicketStatus, Field(description="The new status")],
    ) -> Ticket:
        """Move a ticket to open, in_progress or closed. An unknown ticket number is an error."""
        return store.set_ticket_status(ticket_id, status)

    @mcp.tool(title="Search ops records", annotations=READ)
    def search(query: SearchQuery, limit: SearchLimit = 10) -> SearchResults:
        """Free-text search over inventory (SKU, name, warehouse) and tickets (title, description, assignee)."""
        hits = store.search(query, limit)
        return SearchResults(results=hits, count=len(hits))


def _add_resources(mcp: MCPServer, store: OpsStore) -> None:
    @mcp.resource(
        "ops://inventory/summary", name="inventory_summary", title="Inventory summary", mime_type="application/json"
    )
    def inventory_summary() -> str:
        """Units on hand and SKUs needing reorder, per warehouse."""
        return json.dumps({"warehouses": store.warehouse_summary()}, indent=2)

    @mcp.resource("ops://tickets/{ticket_id}", name="ticket", title="Ticket", mime_type="application/json")
    def ticket(ticket_id: str) -> str:
        """One ticket as JSON."""
        found = _find_ticket(store, ticket_id)
        if found is None:
            raise ResourceNotFoundError(f"No ticket with id {ticket_id!r}")
        return found.model_dump_json(indent=2)


def _add_prompts(mcp: MCPServer, store: OpsStore) -> None:
    @mcp.prompt(title="Incident report")
    def incident_report(
        ticket_id: Annotated[str, Field(description="Ticket number of the incident, e.g. 4")],
    ) -> list[Message]:
        """Draft a post-incident report from a ticket."""
        found = _find_ticket(store, ticket_id)
        if found is None:
            raise invalid_params(f"No ticket with id {ticket_id!r}")
        return [
            UserMessage(
                "Write a concise post-incident report for the ops ticket below. Sections: Summary, Impact, "
                "Timeline (from the ticket timestamps), Probable cause, Follow-up actions with owners. "
                "Say what is unknown instead of guessing.\n\n" + found.model_dump_json(indent=2)
            )
        ]


def _find_ticket(store: OpsStore, ticket_id: str) -> Ticket | None:
    """Resource and prompt arguments arrive as text; anything but a plausible ticket number matches nothing."""
    if re.fullmatch(r"[0-9]{1,9}", ticket_id) is None:
        return None
    return store.get_ticket(int(ticket_id))
