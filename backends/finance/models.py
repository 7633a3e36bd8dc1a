"""What the finance tools return; pydantic models so every tool publishes an output schema and structured content.

Amounts are EUR, stored as integer cents and reported as numbers with two decimals.
"""

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

Category = Literal["travel", "software", "hardware", "training", "marketing", "contractors", "office", "events"]


class BudgetStatus(BaseModel):
    department: str
    quarter: str
    allocated: float
    spent: float
    remaining: float = Field(description="Negative when the budget is overspent")
    utilisation_percent: float
    expense_count: int


class Expense(BaseModel):
    id: int
    department: str
    quarter: str
    date: dt.date
    amount: float
    category: Category
    description: str
    created_at: dt.datetime


class ExpenseList(BaseModel):
    expenses: list[Expense]
    count: int
    total: float = Field(description="Sum of the listed expenses")


class CategoryTotal(BaseModel):
    category: Category
    amount: float


class DepartmentReport(BaseModel):
    budget: BudgetStatus
    top_categories: list[CategoryTotal] = Field(description="Largest spending categories first, at most three")


class QuarterReport(BaseModel):
    quarter: str
    departments: list[DepartmentReport]
    total_allocated: float
    total_spent: float
    total_remaining: float


class SearchHit(BaseModel):
    kind: Literal["expense", "department"]
    id: str = Field(description="Expense id, or the department name")
    title: str
    snippet: str


class SearchResults(BaseModel):
    results: list[SearchHit]
    count: int
