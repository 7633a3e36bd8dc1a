"""What the hr tools return; pydantic models so every tool publishes an output schema and structured content."""

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

LeaveKind = Literal["vacation", "sick", "parental", "unpaid"]
LeaveStatus = Literal["pending", "approved", "rejected"]


class LeaveBalance(BaseModel):
    kind: LeaveKind
    allowance_days: int | None = Field(description="Working days per calendar year; null means no limit")
    booked_days: int = Field(description="Working days in pending and approved requests")
    remaining_days: int | None


class Employee(BaseModel):
    id: str
    name: str
    email: str
    department: str
    title: str
    location: str
    hire_date: dt.date
    manager_id: str | None
    manager_name: str | None
    balance_year: int
    balances: list[LeaveBalance]


class LeaveRequest(BaseModel):
    id: int
    employee_id: str
    kind: LeaveKind
    start_date: dt.date
    end_date: dt.date
    working_days: int = Field(description="Monday to Friday days between start and end, inclusive")
    status: LeaveStatus
    note: str | None
    created_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None


class LeaveRequestList(BaseModel):
    requests: list[LeaveRequest]
    count: int


class PolicySection(BaseModel):
    policy_id: str
    title: str
    section: str
    text: str


class PolicyResults(BaseModel):
    results: list[PolicySection]
    count: int


class SearchHit(BaseModel):
    kind: Literal["employee", "policy"]
    id: str = Field(description="Employee id, or the policy id for policy sections")
    title: str
    snippet: str


class SearchResults(BaseModel):
    results: list[SearchHit]
    count: int
