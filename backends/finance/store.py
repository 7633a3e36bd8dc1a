"""Finance data access: departments, quarterly budgets and expenses, in one SQLite file. Money is integer cents."""

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

from backends._mcp import DomainError
from backends._sqlite import Database, best_first, now_iso, ranked_select
from backends.finance.models import BudgetStatus, Category, CategoryTotal, Expense, SearchHit
from backends.finance.seed import seed

SCHEMA = """
CREATE TABLE IF NOT EXISTS departments (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    cost_center TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS budgets (
    department TEXT NOT NULL REFERENCES departments (name),
    quarter TEXT NOT NULL,
    allocated_cents INTEGER NOT NULL CHECK (allocated_cents >= 0),
    PRIMARY KEY (department, quarter)
);
CREATE TABLE IF NOT EXISTS expenses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    department TEXT NOT NULL REFERENCES departments (name),
    date TEXT NOT NULL,
    quarter TEXT GENERATED ALWAYS AS (
        substr(date, 1, 4) || '-Q' || ((CAST(substr(date, 6, 2) AS INTEGER) + 2) / 3)
    ) VIRTUAL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    category TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS expenses_by_budget ON expenses (department, quarter);
"""

# An expense may take a department's quarterly spending to at most this share of its allocation.
OVERRUN_LIMIT_PERCENT = 110


class FinanceStore:
    """Budgets and expenses; every method is one transaction."""

    def __init__(self, path: Path) -> None:
        self._db = Database(path, SCHEMA, seed)

    def departments(self) -> list[dict[str, str]]:
        with self._db.read() as conn:
            rows = conn.execute("SELECT name, cost_center, owner FROM departments ORDER BY cost_center").fetchall()
        return [dict(row) for row in rows]

    def budget(self, department: str, quarter: str) -> BudgetStatus:
        """Allocation against spending for one department and quarter."""
        with self._db.read() as conn:
            return _budget(conn, _department(conn, department), quarter)

    def quarter(self, quarter: str, department: str | None) -> list[tuple[BudgetStatus, list[CategoryTotal]]]:
        """Each department's budget for the quarter with its three largest spending categories."""
        with self._db.read() as conn:
            names = [_department(conn, department)] if department else _budgeted(conn, quarter)
            if not names:
                raise DomainError(f"No budgets for {quarter}")
            return [(_budget(conn, name, quarter), _top_categories(conn, name, quarter)) for name in names]

    def record_expense(
        self, department: str, cents: int, category: Category, description: str, date: dt.date
    ) -> Expense:
        """Book an expense unless it takes the quarter past its allocation plus the overrun tolerance."""
        with self._db.write() as conn:
            name = _department(conn, department)
            row = conn.execute(
                "INSERT INTO expenses (department, date, amount_cents, category, description, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
                (name, date.isoformat(), cents, category, description, now_iso()),
            ).fetchone()
            # Checked after the insert, inside the transaction: raising rolls the expense back.
            allocated, spent, _ = _totals(conn, name, row["quarter"])
            if spent * 100 > allocated * OVERRUN_LIMIT_PERCENT:
                raise DomainError(
                    f"Refused: {_eur(cents)} would bring {name} spending in {row['quarter']} to {_eur(spent)} "
                    f"against {_eur(allocated)} allocated, more than {OVERRUN_LIMIT_PERCENT - 100}% over budget"
                )
        return _expense(row)

    def expenses(self, department: str | None, quarter: str | None, limit: int) -> list[Expense]:
        """Latest first."""
        with self._db.read() as conn:
            filters: dict[str, str] = {}
            if department is not None:
                filters["department = ?"] = _department(conn, department)
            if quarter is not None:
                filters["quarter = ?"] = quarter
            rows = conn.execute(
                f"SELECT * FROM expenses WHERE {' AND '.join(filters) or '1 = 1'} ORDER BY date DESC, id DESC LIMIT ?",
                [*filters.values(), limit],
            ).fetchall()
        return [_expense(row) for row in rows]

    def search(self, query: str, limit: int) -> list[SearchHit]:
        """Departments and expenses containing the most words of `query` first; departments first on ties."""
        dept_sql, dept_values = ranked_select("departments", query, ["name", "cost_center", "owner"], "name", limit)
        expense_sql, expense_values = ranked_select(
            "expenses", query, ["description", "category", "department", "quarter"], "date DESC", limit
        )
        with self._db.read() as conn:
            departments = conn.execute(dept_sql, dept_values).fetchall()
            expenses = conn.execute(expense_sql, expense_values).fetchall()
        return best_first(
            [
                [(row["score"], _department_hit(row)) for row in departments],
                [(row["score"], _expense_hit(row)) for row in expenses],
            ],
            limit,
        )


def _department(conn: sqlite3.Connection, name: str) -> str:
    """The canonical department name; lookups ignore case."""
    row = conn.execute("SELECT name FROM departments WHERE name = ?", (name.strip(),)).fetchone()
    if row is None:
        known = ", ".join(r["name"] for r in conn.execute("SELECT name FROM departments ORDER BY name"))
        raise DomainError(f"Unknown department '{name}'; known departments: {known}")
    return str(row["name"])


def _budgeted(conn: sqlite3.Connection, quarter: str) -> list[str]:
    rows = conn.execute(
        "SELECT b.department FROM budgets b JOIN departments d ON d.name = b.department"
        " WHERE b.quarter = ? ORDER BY d.cost_center",
        (quarter,),
    ).fetchall()
    return [row["department"] for row in rows]


def _budget(conn: sqlite3.Connection, department: str, quarter: str) -> BudgetStatus:
    allocated, spent, count = _totals(conn, department, quarter)
    return BudgetStatus(
        department=department,
        quarter=quarter,
        allocated=allocated / 100,
        spent=spent / 100,
        remaining=(allocated - spent) / 100,
        utilisation_percent=round(100 * spent / allocated, 1) if allocated else 0.0,
        expense_count=count,
    )


def _totals(conn: sqlite3.Connection, department: str, quarter: str) -> tuple[int, int, int]:
    """Allocated and spent cents and the number of expenses; a quarter without a budget is an error."""
    allocated = conn.execute(
        "SELECT allocated_cents FROM budgets WHERE department = ? AND quarter = ?", (department, quarter)
    ).fetchone()
    if allocated is None:
        raise DomainError(f"No budget for {department} in {quarter}")
    spent, count = conn.execute(
        "SELECT coalesce(sum(amount_cents), 0), count(*) FROM expenses WHERE department = ? AND quarter = ?",
        (department, quarter),
    ).fetchone()
    return allocated["allocated_cents"], spent, count


def _top_categories(conn: sqlite3.Connection, department: str, quarter: str) -> list[CategoryTotal]:
    rows = conn.execute(
        "SELECT category, sum(amount_cents) AS cents FROM expenses WHERE department = ? AND quarter = ?"
        " GROUP BY category ORDER BY cents DESC, category LIMIT 3",
        (department, quarter),
    ).fetchall()
    return [CategoryTotal(category=row["category"], amount=row["cents"] / 100) for row in rows]


def _expense(row: sqlite3.Row) -> Expense:
    values: dict[str, Any] = dict(row)
    return Expense.model_validate({**values, "amount": values["amount_cents"] / 100})


def _department_hit(row: sqlite3.Row) -> SearchHit:
    snippet = f"Cost center {row['cost_center']}, budget owner {row['owner']}"
    return SearchHit(kind="department", id=row["name"], title=row["name"], snippet=snippet)


def _expense_hit(row: sqlite3.Row) -> SearchHit:
    snippet = f"{_eur(row['amount_cents'])}, {row['category']}, {row['department']}, {row['date']}"
    return SearchHit(kind="expense", id=str(row["id"]), title=row["description"], snippet=snippet)


def _eur(cents: int) -> str:
    return f"EUR {cents / 100:,.2f}"
