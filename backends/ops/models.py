"""What the ops tools return; pydantic models so every tool publishes an output schema and structured content."""

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

Warehouse = Literal["AMS-1", "FRA-2", "NYC-1"]
Priority = Literal["low", "medium", "high", "critical"]
TicketStatus = Literal["open", "in_progress", "closed"]


class InventoryItem(BaseModel):
    sku: str
    name: str
    warehouse: Warehouse
    quantity: int
    reorder_level: int
    unit: str
    needs_reorder: bool = Field(description="True when quantity is at or below the reorder level")


class InventoryList(BaseModel):
    items: list[InventoryItem]
    count: int


class Ticket(BaseModel):
    id: int
    title: str
    description: str
    priority: Priority
    status: TicketStatus
    assignee: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class TicketList(BaseModel):
    tickets: list[Ticket]
    count: int


class SearchHit(BaseModel):
    kind: Literal["inventory", "ticket"]
    id: str = Field(description="SKU@warehouse for inventory, the ticket number for tickets")
    title: str
    snippet: str


class SearchResults(BaseModel):
    results: list[SearchHit]
    count: int
