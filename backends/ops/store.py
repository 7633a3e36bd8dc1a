"""Ops data access: inventory per warehouse and tickets, in one SQLite file."""

import sqlite3
from pathlib import Path
from typing import Any

from backends._mcp import DomainError
from backends._sqlite import Database, best_first, match_all_terms, now_iso, ranked_select
from backends.ops.models import InventoryItem, SearchHit, Ticket, TicketStatus
from backends.ops.seed import seed

SCHEMA = """
CREATE TABLE IF NOT EXISTS inventory (
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    warehouse TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity >= 0),
    reorder_level INTEGER NOT NULL CHECK (reorder_level >= 0),
    unit TEXT NOT NULL,
    PRIMARY KEY (sku, warehouse)
);
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    priority TEXT NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    status TEXT NOT NULL CHECK (status IN ('open', 'in_progress', 'closed')),
    assignee TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

_TICKET_COLUMNS = "id, title, description, priority, status, assignee, created_at, updated_at"


class OpsStore:
    """Inventory and tickets; every method is one transaction."""

    def __init__(self, path: Path) -> None:
        self._db = Database(path, SCHEMA, seed)

    def find_items(self, sku: str | None, name_contains: str | None, warehouse: str | None) -> list[InventoryItem]:
        """Items matching every given filter; no filter lists the whole inventory."""
        conditions: list[str] = []
        values: list[Any] = []
        for clause, value in (("sku = ?", sku), ("warehouse = ?", warehouse)):
            if value is not None:
                conditions.append(clause)
                values.append(value)
        if name_contains is not None:
            clause, patterns = match_all_terms(name_contains, ["name"])
            conditions.append(clause)
            values.extend(patterns)
        where = " AND ".join(conditions) or "1 = 1"
        with self._db.read() as conn:
            if sku is not None and conn.execute("SELECT 1 FROM inventory WHERE sku = ?", (sku,)).fetchone() is None:
                raise DomainError(f"No inventory item with SKU '{sku}'")
            rows = conn.execute(f"SELECT * FROM inventory WHERE {where} ORDER BY sku, warehouse", values).fetchall()
        return [_item(row) for row in rows]

    def warehouse_summary(self) -> list[dict[str, Any]]:
        """Per warehouse: distinct SKUs, units on hand and the SKUs at or below their reorder level."""
        with self._db.read() as conn:
            totals = conn.execute(
                "SELECT warehouse, COUNT(*) AS skus, SUM(quantity) AS units FROM inventory"
                " GROUP BY warehouse ORDER BY warehouse"
            ).fetchall()
            low = conn.execute(
                "SELECT warehouse, sku FROM inventory WHERE quantity <= reorder_level ORDER BY sku"
            ).fetchall()
        return [
            {
                "warehouse": row["warehouse"],
                "skus": row["skus"],
                "units_on_hand": row["units"],
                "needs_reorder": [r["sku"] for r in low if r["warehouse"] == row["warehouse"]],
            }
            for row in totals
        ]

    def create_ticket(self, title: str, description: str, priority: str, assignee: str | None) -> Ticket:
        now = now_iso()
        with self._db.write() as conn:
            row = conn.execute(
                "INSERT INTO tickets (title, description, priority, status, assignee, created_at, updated_at)"
                f" VALUES (?, ?, ?, 'open', ?, ?, ?) RETURNING {_TICKET_COLUMNS}",
                (title, description, priority, assignee, now, now),
            ).fetchone()
        return _ticket(row)

    def list_tickets(self, status: TicketStatus | None, limit: int) -> list[Ticket]:
        """Newest first."""
        where, values = ("status = ?", [status]) if status else ("1 = 1", [])
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE {where} ORDER BY id DESC LIMIT ?", [*values, limit]
            ).fetchall()
        return [_ticket(row) for row in rows]

    def get_ticket(self, ticket_id: int) -> Ticket | None:
        with self._db.read() as conn:
            row = conn.execute(f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
        return None if row is None else _ticket(row)

    def set_ticket_status(self, ticket_id: int, status: TicketStatus) -> Ticket:
        with self._db.write() as conn:
            row = conn.execute(
                f"UPDATE tickets SET status = ?, updated_at = ? WHERE id = ? RETURNING {_TICKET_COLUMNS}",
                (status, now_iso(), ticket_id),
            ).fetchone()
        if row is None:
            raise DomainError(f"No ticket with id {ticket_id}")
        return _ticket(row)

    def search(self, query: str, limit: int) -> list[SearchHit]:
        """Items and tickets containing the most words of `query` first; inventory before tickets on ties."""
        item_sql, item_values = ranked_select("inventory", query, ["sku", "name", "warehouse"], "sku, warehouse", limit)
        ticket_sql, ticket_values = ranked_select(
            "tickets", query, ["title", "description", "assignee", "priority", "status"], "id DESC", limit
        )
        with self._db.read() as conn:
            items = conn.execute(item_sql, item_values).fetchall()
            tickets = conn.execute(ticket_sql, ticket_values).fetchall()
        return best_first(
            [[(row["score"], _item_hit(row)) for row in items], [(row["score"], _ticket_hit(row)) for row in tickets]],
            limit,
        )


def _item(row: sqlite3.Row) -> InventoryItem:
    return InventoryItem(**dict(row), needs_reorder=row["quantity"] <= row["reorder_level"])


def _ticket(row: sqlite3.Row) -> Ticket:
    return Ticket.model_validate(dict(row))


def _item_hit(row: sqlite3.Row) -> SearchHit:
    snippet = f"{row['quantity']} x {row['unit']} in {row['warehouse']} (reorder at {row['reorder_level']})"
    return SearchHit(kind="inventory", id=f"{row['sku']}@{row['warehouse']}", title=row["name"], snippet=snippet)


def _ticket_hit(row: sqlite3.Row) -> SearchHit:
    snippet = f"[{row['status']}, {row['priority']}] {row['description'][:160]}"
    return SearchHit(kind="ticket", id=str(row["id"]), title=row["title"], snippet=snippet)
