"""HR data access: employees with leave allowances, leave requests and policy sections, in one SQLite file."""

import datetime as dt
import sqlite3
from pathlib import Path

from backends._mcp import DomainError
from backends._sqlite import Database, best_first, now_iso, ranked_select
from backends.hr.models import (
    Employee,
    LeaveBalance,
    LeaveKind,
    LeaveRequest,
    LeaveStatus,
    PolicySection,
    SearchHit,
)
from backends.hr.seed import seed

SCHEMA = """
CREATE TABLE IF NOT EXISTS employees (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    department TEXT NOT NULL,
    title TEXT NOT NULL,
    location TEXT NOT NULL,
    hire_date TEXT NOT NULL,
    manager_id TEXT REFERENCES employees (id),
    vacation_days INTEGER NOT NULL,
    sick_days INTEGER NOT NULL,
    parental_days INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS leave_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    employee_id TEXT NOT NULL REFERENCES employees (id),
    kind TEXT NOT NULL CHECK (kind IN ('vacation', 'sick', 'parental', 'unpaid')),
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL CHECK (end_date >= start_date),
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    note TEXT,
    created_at TEXT NOT NULL,
    decided_by TEXT REFERENCES employees (id),
    decided_at TEXT
);
CREATE TABLE IF NOT EXISTS policy_sections (
    policy_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    title TEXT NOT NULL,
    section TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (policy_id, position)
);
"""

_BOOKED = "status IN ('pending', 'approved')"
_KINDS: tuple[LeaveKind, ...] = ("vacation", "sick", "parental", "unpaid")


class HrStore:
    """Employees, leave and policies; every method is one transaction."""

    def __init__(self, path: Path) -> None:
        self._db = Database(path, SCHEMA, seed)

    def get_employee(self, employee_id: str, year: int) -> Employee:
        """The employee with leave balances for `year`."""
        with self._db.read() as conn:
            row = _employee_row(conn, employee_id)
            balances = [_balance(conn, row, kind, year) for kind in _KINDS]
        return Employee.model_validate({**dict(row), "balance_year": year, "balances": balances})

    def request_leave(
        self, employee_id: str, start: dt.date, end: dt.date, kind: LeaveKind, note: str | None
    ) -> LeaveRequest:
        """Book a pending request, refusing impossible dates, overlaps and requests beyond the balance."""
        days = _check_dates(start, end)
        with self._db.write() as conn:
            row = _employee_row(conn, employee_id)
            _check_overlap(conn, employee_id, start, end)
            balance = _balance(conn, row, kind, start.year)
            if balance.remaining_days is not None and days > balance.remaining_days:
                raise DomainError(
                    f"{employee_id} asks for {days} working days of {kind} leave but only "
                    f"{balance.remaining_days} remain in {start.year}"
                )
            created = conn.execute(
                "INSERT INTO leave_requests (employee_id, kind, start_date, end_date, status, note, created_at)"
                " VALUES (?, ?, ?, ?, 'pending', ?, ?) RETURNING *",
                (employee_id, kind, start.isoformat(), end.isoformat(), note, now_iso()),
            ).fetchone()
        return _leave(created)

    def approve_leave(self, request_id: int, approver_id: str) -> LeaveRequest:
        """Approve a pending request on behalf of the employee's manager or anyone in HR."""
        with self._db.write() as conn:
            request = conn.execute("SELECT * FROM leave_requests WHERE id = ?", (request_id,)).fetchone()
            if request is None:
                raise DomainError(f"No leave request with id {request_id}")
            if request["status"] != "pending":
                raise DomainError(f"Leave request {request_id} is already {request['status']}")
            _check_approver(_employee_row(conn, approver_id), _employee_row(conn, request["employee_id"]))
            approved = conn.execute(
                "UPDATE leave_requests SET status = 'approved', decided_by = ?, decided_at = ? WHERE id = ?"
                " RETURNING *",
                (approver_id, now_iso(), request_id),
            ).fetchone()
        return _leave(approved)

    def list_leave_requests(self, employee_id: str | None, status: LeaveStatus | None) -> list[LeaveRequest]:
        """Requests by start date, latest first."""
        conditions = {"employee_id = ?": employee_id, "status = ?": status}
        given = {clause: value for clause, value in conditions.items() if value is not None}
        where = " AND ".join(given) or "1 = 1"
        with self._db.read() as conn:
            if employee_id is not None:
                _employee_row(conn, employee_id)
            rows = conn.execute(
                f"SELECT * FROM leave_requests WHERE {where} ORDER BY start_date DESC, id DESC", list(given.values())
            ).fetchall()
        return [_leave(row) for row in rows]

    def search_policies(self, query: str, limit: int) -> list[PolicySection]:
        sql, values = ranked_select(
            "policy_sections", query, ["title", "section", "text"], "policy_id, position", limit
        )
        with self._db.read() as conn:
            rows = conn.execute(sql, values).fetchall()
        return [_section(row) for row in rows]

    def policy_sections(self, policy_id: str | None = None) -> list[PolicySection]:
        """All sections of one policy, or of every policy, in handbook order."""
        where, values = ("policy_id = ?", [policy_id]) if policy_id else ("1 = 1", [])
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT * FROM policy_sections WHERE {where} ORDER BY policy_id, position", values
            ).fetchall()
        return [_section(row) for row in rows]

    def search(self, query: str, limit: int) -> list[SearchHit]:
        """Employees and policy sections containing the most words of `query` first; employees first on ties."""
        people_sql, people_values = ranked_select(
            "employees", query, ["id", "name", "email", "department", "title", "location"], "id", limit
        )
        policy_sql, policy_values = ranked_select(
            "policy_sections", query, ["title", "section", "text"], "policy_id, position", limit
        )
        with self._db.read() as conn:
            people = conn.execute(people_sql, people_values).fetchall()
            policies = conn.execute(policy_sql, policy_values).fetchall()
        return best_first(
            [
                [(row["score"], _person_hit(row)) for row in people],
                [(row["score"], _policy_hit(row)) for row in policies],
            ],
            limit,
        )


def working_days(start: dt.date, end: dt.date) -> int:
    """Monday to Friday days from `start` to `end` inclusive (public holidays are not modelled)."""
    return sum(1 for offset in range((end - start).days + 1) if (start + dt.timedelta(offset)).weekday() < 5)


def _check_dates(start: dt.date, end: dt.date) -> int:
    if end < start:
        raise DomainError(f"end_date {end} is before start_date {start}")
    if end.year != start.year:
        raise DomainError("A leave request may not span two calendar years; split it at 31 December")
    days = working_days(start, end)
    if days == 0:
        raise DomainError(f"{start} to {end} contains no working days")
    return days


def _check_overlap(conn: sqlite3.Connection, employee_id: str, start: dt.date, end: dt.date) -> None:
    clash = conn.execute(
        f"SELECT id, start_date, end_date FROM leave_requests WHERE employee_id = ? AND {_BOOKED}"
        " AND start_date <= ? AND end_date >= ? ORDER BY start_date LIMIT 1",
        (employee_id, end.isoformat(), start.isoformat()),
    ).fetchone()
    if clash is not None:
        raise DomainError(
            f"Overlaps leave request {clash['id']} ({clash['start_date']} to {clash['end_date']}) of {employee_id}"
        )


def _check_approver(approver: sqlite3.Row, employee: sqlite3.Row) -> None:
    if approver["id"] == employee["id"]:
        raise DomainError("Employees cannot approve their own leave")
    if approver["id"] != employee["manager_id"] and approver["department"] != "HR":
        raise DomainError(f"{approver['id']} ({approver['name']}) is neither the manager of {employee['id']} nor in HR")


def _employee_row(conn: sqlite3.Connection, employee_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT e.*, m.name AS manager_name FROM employees e LEFT JOIN employees m ON m.id = e.manager_id"
        " WHERE e.id = ?",
        (employee_id,),
    ).fetchone()
    if row is None:
        raise DomainError(f"No employee with id '{employee_id}'")
    return row


def _balance(conn: sqlite3.Connection, employee: sqlite3.Row, kind: LeaveKind, year: int) -> LeaveBalance:
    rows = conn.execute(
        f"SELECT start_date, end_date FROM leave_requests WHERE employee_id = ? AND kind = ? AND {_BOOKED}"
        " AND substr(start_date, 1, 4) = ?",
        (employee["id"], kind, str(year)),
    ).fetchall()
    booked = sum(
        working_days(dt.date.fromisoformat(r["start_date"]), dt.date.fromisoformat(r["end_date"])) for r in rows
    )
    allowance = None if kind == "unpaid" else employee[f"{kind}_days"]
    remaining = None if allowance is None else allowance - booked
    return LeaveBalance(kind=kind, allowance_days=allowance, booked_days=booked, remaining_days=remaining)


def _leave(row: sqlite3.Row) -> LeaveRequest:
    start, end = dt.date.fromisoformat(row["start_date"]), dt.date.fromisoformat(row["end_date"])
    return LeaveRequest.model_validate({**dict(row), "working_days": working_days(start, end)})


def _section(row: sqlite3.Row) -> PolicySection:
    return PolicySection.model_validate(dict(row))


def _person_hit(row: sqlite3.Row) -> SearchHit:
    snippet = f"{row['title']}, {row['department']}, {row['location']} <{row['email']}>"
    return SearchHit(kind="employee", id=row["id"], title=row["name"], snippet=snippet)


def _policy_hit(row: sqlite3.Row) -> SearchHit:
    return SearchHit(kind="policy", id=row["policy_id"], title=f"{row['title']}: {row['section']}", snippet=row["text"])
