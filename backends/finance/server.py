"""The finance MCP server: budget status, expense booking and reporting, budget resources, a review prompt."""

import datetime as dt
import json
import re
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver import Message, UserMessage
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from pydantic import Field

from backends._mcp import DomainError, SearchLimit, SearchQuery, invalid_params, make_server, prompt, tool
from backends.finance.models import (
    BudgetStatus,
    Category,
    DepartmentReport,
    Expense,
    ExpenseList,
    QuarterReport,
    SearchResults,
)
from backends.finance.store import OVERRUN_LIMIT_PERCENT, FinanceStore

INSTRUCTIONS = (
    "Finance data in EUR: discretionary quarterly budgets for the Engineering, Operations, Finance, HR and Sales "
    "departments (2026-Q1 to 2026-Q4) and the expenses booked against them. Quarters are written like 2026-Q2. "
    "Check calculate_budget before recording a large expense."
)

_QUARTER_PATTERN = r"^\d{4}-Q[1-4]$"
Quarter = Annotated[str, Field(pattern=_QUARTER_PATTERN, description="Fiscal quarter, e.g. 2026-Q2")]
DepartmentName = Annotated[
    str, Field(min_length=1, max_length=64, description="Department name, e.g. Engineering (case-insensitive)")
]


class _Finance:
    """The finance tools, resources and prompts over one store."""

    def __init__(self, store: FinanceStore) -> None:
        self._store = store

    def calculate_budget(self, department: DepartmentName, quarter: Quarter) -> BudgetStatus:
        """Allocated, spent and remaining budget and utilisation for one department and quarter."""
        return self._store.budget(department, quarter)

    def record_expense(
        self,
        department: DepartmentName,
        amount: Annotated[
            Decimal, Field(gt=0, le=1_000_000, decimal_places=2, description="Amount in EUR, at most two decimals")
        ],
        category: Annotated[Category, Field(description="Spending category")],
        description: Annotated[str, Field(min_length=3, max_length=500, description="What was bought and why")],
        date: Annotated[dt.date | None, Field(description="Date of the expense, YYYY-MM-DD; today if omitted")] = None,
    ) -> Expense:
        """Book an expense against its department's budget for the quarter of its date.

        Refused when the quarter has no budget, or when the expense would take the department's spending in that
        quarter past 110% of its allocation; spending up to 10% over budget is allowed.
        """
        cents = int(amount * 100)
        return self._store.record_expense(department, cents, category, description, date or dt.date.today())

    def generate_report(
        self,
        quarter: Quarter,
        department: Annotated[DepartmentName | None, Field(description="Only this department")] = None,
    ) -> QuarterReport:
        """Per-department budget totals and top spending categories for a quarter, with overall totals."""
        rows = self._store.quarter(quarter, department)
        reports = [DepartmentReport(budget=budget, top_categories=top) for budget, top in rows]
        allocated = _cents_total(r.budget.allocated for r in reports)
        spent = _cents_total(r.budget.spent for r in reports)
        return QuarterReport(
            quarter=quarter,
            departments=reports,
            total_allocated=allocated,
            total_spent=spent,
            total_remaining=round(allocated - spent, 2),
        )

    def list_expenses(
        self,
        department: Annotated[DepartmentName | None, Field(description="Only this department")] = None,
        quarter: Annotated[Quarter | None, Field(description="Only this quarter")] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="Maximum number of expenses")] = 20,
    ) -> ExpenseList:
        """Expenses, latest first."""
        expenses = self._store.expenses(department, quarter, limit)
        return ExpenseList(expenses=expenses, count=len(expenses), total=_cents_total(e.amount for e in expenses))

    def search(
        self,
        query: SearchQuery,
        limit: SearchLimit = 10,
    ) -> SearchResults:
        """Free-text search over departments (name, cost center, owner) and expenses (description, category)."""
        hits = self._store.search(query, limit)
        return SearchResults(results=hits, count=len(hits))

    def departments(self) -> str:
        """Departments with their cost centers and budget owners."""
        return json.dumps({"departments": self._store.departments()}, indent=2)

    def budgets(self, quarter: str) -> str:
        """Every department's budget status for one quarter, as JSON."""
        try:
            report = self.generate_report(_quarter(quarter))
        except (DomainError, ValueError) as exc:
            raise ResourceNotFoundError(str(exc)) from None
        return json.dumps(
            {"quarter": report.quarter, "budgets": [r.budget.model_dump() for r in report.departments]}, indent=2
        )

    def budget_review(
        self,
        department: Annotated[str, Field(description="Department to review, e.g. Sales")],
        quarter: Annotated[str, Field(description="Quarter to review, e.g. 2026-Q2")],
    ) -> list[Message]:
        """Review a department's spending in a quarter against its budget."""
        try:
            report = self.generate_report(_quarter(quarter), department)
            expenses = self._store.expenses(department, quarter, 100)
        except (DomainError, ValueError) as exc:
            raise invalid_params(str(exc)) from None
        lines = "\n".join(f"- {e.date} {e.category} EUR {e.amount:,.2f}: {e.description}" for e in expenses)
        return [
            UserMessage(
                f"Review {report.departments[0].budget.department}'s spending in {quarter}. Say whether it is on "
                f"track, which categories drive it, anything unusual, and what to watch next quarter. Expenses "
                f"may take a quarter up to {OVERRUN_LIMIT_PERCENT}% of its allocation.\n\nBudget and top "
                f"categories:\n{report.departments[0].model_dump_json(indent=2)}\n\nExpenses:\n{lines or '- none'}"
            )
        ]


def _cents_total(amounts: Iterable[float]) -> float:
    """Sum of EUR amounts, rounded back to cents so float noise never shows."""
    return round(sum(amounts), 2)


def _quarter(text: str) -> str:
    """Resource and prompt arguments arrive as free text; tools get the same check from their input schema."""
    if re.fullmatch(_QUARTER_PATTERN, text) is None:
        raise ValueError(f"Quarter must look like 2026-Q2, got {text!r}")
    return text


def build_server(db_path: Path) -> MCPServer:
    """The finance server over the SQLite file at `db_path`, created and seeded if new."""
    finance = _Finance(FinanceStore(db_path))
    server = make_server(
        "finance",
        INSTRUCTIONS,
        tools=[
            tool(finance.calculate_budget, "Calculate budget", "read"),
            tool(finance.record_expense, "Record expense", "create"),
            tool(finance.generate_report, "Generate quarterly report", "read"),
            tool(finance.list_expenses, "List expenses", "read"),
            tool(finance.search, "Search finance records", "read"),
        ],
        prompts=[prompt(finance.budget_review, "Budget review")],
    )
    server.resource("finance://departments", name="departments", title="Departments", mime_type="application/json")(
        finance.departments
    )
    server.resource("finance://budgets/{quarter}", name="budgets", title="Budgets", mime_type="application/json")(
        finance.budgets
    )
    return server
