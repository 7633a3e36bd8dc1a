"""The ops MCP server: inventory lookups, a ticket queue, a stock summary and an incident-report prompt."""

import json
import re
from pathlib import Path
from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver import Message, UserMessage
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from pydantic import Field

from backends._mcp import SearchLimit, SearchQuery, invalid_params, make_server, prompt, tool
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


class _Ops:
    """The ops tools, resources and prompts over one store."""

    def __init__(self, store: OpsStore) -> None:
        self._store = store

    def lookup_inventory(
        self,
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
        items = self._store.find_items(sku.strip().upper() if sku else None, name_contains, warehouse)
        return InventoryList(items=items, count=len(items))

    def create_ticket(
        self,
        title: Annotated[str, Field(min_length=3, max_length=200, description="One-line summary")],
        description: Annotated[str, Field(min_length=1, max_length=5000, description="What happened, where, impact")],
        priority: Annotated[Priority, Field(description="critical = outage, high = degraded service")],
        assignee: Annotated[
            str | None, Field(min_length=1, max_length=64, description="Username of the owner, e.g. m.chen")
        ] = None,
    ) -> Ticket:
        """Open a new ops ticket. It starts with status "open"."""
        return self._store.create_ticket(title, description, priority, assignee)

    def list_tickets(
        self,
        status: Annotated[TicketStatus | None, Field(description="Only tickets with this status")] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="Maximum number of tickets")] = 20,
    ) -> TicketList:
        """Tickets, newest first."""
        tickets = self._store.list_tickets(status, limit)
        return TicketList(tickets=tickets, count=len(tickets))

    def update_ticket_status(
        self,
        ticket_id: TicketId,
        status: Annotated[TicketStatus, Field(description="The new status")],
    ) -> Ticket:
        """Move a ticket to open, in_progress or closed. An unknown ticket number is an error."""
        return self._store.set_ticket_status(ticket_id, status)

    def search(
        self,
        query: SearchQuery,
        limit: SearchLimit = 10,
    ) -> SearchResults:
        """Free-text search over inventory (SKU, name, warehouse) and tickets (title, description, assignee)."""
        hits = self._store.search(query, limit)
        return SearchResults(results=hits, count=len(hits))

    def inventory_summary(self) -> str:
        """Units on hand and SKUs needing reorder, per warehouse."""
        return json.dumps({"warehouses": self._store.warehouse_summary()}, indent=2)

    def ticket(self, ticket_id: str) -> str:
        """One ticket as JSON."""
        found = self._find_ticket(ticket_id)
        if found is None:
            raise ResourceNotFoundError(f"No ticket with id {ticket_id!r}")
        return found.model_dump_json(indent=2)

    def incident_report(
        self, ticket_id: Annotated[str, Field(description="Ticket number of the incident, e.g. 4")]
    ) -> list[Message]:
        """Draft a post-incident report from a ticket."""
        found = self._find_ticket(ticket_id)
        if found is None:
            raise invalid_params(f"No ticket with id {ticket_id!r}")
        return [
            UserMessage(
                "Write a concise post-incident report for the ops ticket below. Sections: Summary, Impact, "
                "Timeline (from the ticket timestamps), Probable cause, Follow-up actions with owners. "
                "Say what is unknown instead of guessing.\n\n" + found.model_dump_json(indent=2)
            )
        ]

    def _find_ticket(self, ticket_id: str) -> Ticket | None:
        """Resource and prompt arguments arrive as text; anything but a plausible ticket number matches nothing."""
        if re.fullmatch(r"[0-9]{1,9}", ticket_id) is None:
            return None
        return self._store.get_ticket(int(ticket_id))


def build_server(db_path: Path) -> MCPServer:
    """The ops server over the SQLite file at `db_path`, created and seeded if new."""
    ops = _Ops(OpsStore(db_path))
    server = make_server(
        "ops",
        INSTRUCTIONS,
        tools=[
            tool(ops.lookup_inventory, "Look up inventory", "read"),
            tool(ops.create_ticket, "Create ticket", "create"),
            tool(ops.list_tickets, "List tickets", "read"),
            tool(ops.update_ticket_status, "Update ticket status", "update"),
            tool(ops.search, "Search ops records", "read"),
        ],
        prompts=[prompt(ops.incident_report, "Incident report")],
    )
    server.resource(
        "ops://inventory/summary", name="inventory_summary", title="Inventory summary", mime_type="application/json"
    )(ops.inventory_summary)
    server.resource("ops://tickets/{ticket_id}", name="ticket", title="Ticket", mime_type="application/json")(
        ops.ticket
    )
    return server
