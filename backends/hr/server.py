"""The hr MCP server: employee lookups, leave requests and approvals, the policy handbook, an onboarding prompt."""

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Message, UserMessage
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from pydantic import Field

from backends._mcp import DomainError, SearchLimit, SearchQuery, invalid_params, make_server, prompt, tool
from backends.hr.models import (
    Employee,
    LeaveKind,
    LeaveRequest,
    LeaveRequestList,
    LeaveStatus,
    PolicyResults,
    SearchResults,
)
from backends.hr.store import HrStore

INSTRUCTIONS = (
    "HR records: employees (ids like E1007) with managers and yearly leave balances, leave requests, and the "
    "policy handbook. Answer policy questions from search_policy rather than from memory. Leave is counted in "
    "working days; a request is approved by the employee's manager or by someone in HR."
)

EmployeeId = Annotated[str, Field(pattern=r"^E\d{4}$", description="Employee id, e.g. E1007")]


class _Hr:
    """The hr tools, resources and prompts over one store."""

    def __init__(self, store: HrStore) -> None:
        self._store = store

    def search_policy(
        self,
        query: SearchQuery,
        limit: Annotated[int, Field(ge=1, le=20, description="Maximum number of sections")] = 5,
    ) -> PolicyResults:
        """Find handbook sections (leave, sickness, remote work, expenses, conduct, security, onboarding)."""
        sections = self._store.search_policies(query, limit)
        return PolicyResults(results=sections, count=len(sections))

    def get_employee(self, employee_id: EmployeeId) -> Employee:
        """An employee's role, manager and leave balances for the current year. An unknown id is an error."""
        return self._store.get_employee(employee_id, dt.date.today().year)

    def request_leave(
        self,
        employee_id: EmployeeId,
        start_date: Annotated[dt.date, Field(description="First day of leave, YYYY-MM-DD")],
        end_date: Annotated[dt.date, Field(description="Last day of leave, inclusive, same calendar year")],
        kind: Annotated[LeaveKind, Field(description="unpaid leave has no yearly limit")],
        note: Annotated[str | None, Field(max_length=500, description="Reason or handover notes")] = None,
    ) -> LeaveRequest:
        """File a leave request; it starts as "pending".

        Refused when the dates are reversed or span two years, contain no working days, overlap another pending
        or approved request, or need more days than remain in the employee's balance for that kind.
        """
        return self._store.request_leave(employee_id, start_date, end_date, kind, note)

    def approve_leave(
        self,
        request_id: Annotated[int, Field(ge=1, le=999_999_999, description="Leave request id")],
        approver_id: Annotated[EmployeeId, Field(description="Who approves: the employee's manager or anyone in HR")],
    ) -> LeaveRequest:
        """Approve a pending leave request. Only the employee's manager or HR may approve, never the employee."""
        return self._store.approve_leave(request_id, approver_id)

    def list_leave_requests(
        self,
        employee_id: Annotated[EmployeeId | None, Field(description="Only this employee's requests")] = None,
        status: Annotated[LeaveStatus | None, Field(description="Only requests with this status")] = None,
    ) -> LeaveRequestList:
        """Leave requests, latest start date first."""
        requests = self._store.list_leave_requests(employee_id, status)
        return LeaveRequestList(requests=requests, count=len(requests))

    def search(
        self,
        query: SearchQuery,
        limit: SearchLimit = 10,
    ) -> SearchResults:
        """Free-text search over employees (name, title, department, location, email) and policy sections."""
        hits = self._store.search(query, limit)
        return SearchResults(results=hits, count=len(hits))

    def employee_profile(self, employee_id: str) -> str:
        """One employee with this year's leave balances, as JSON."""
        try:
            return self.get_employee(employee_id).model_dump_json(indent=2)
        except DomainError as exc:
            raise ResourceNotFoundError(str(exc)) from None

    def policy_index(self) -> str:
        """Every policy with its sections and the URI to read it."""
        index: dict[str, dict[str, Any]] = {}
        for section in self._store.policy_sections():
            uri = f"hr://policies/{section.policy_id}"
            entry = index.setdefault(
                section.policy_id, {"id": section.policy_id, "title": section.title, "uri": uri, "sections": []}
            )
            entry["sections"].append(section.section)
        return json.dumps({"policies": list(index.values())}, indent=2)

    def policy(self, policy_id: str) -> str:
        """One policy in full, as Markdown."""
        sections = self._store.policy_sections(policy_id)
        if not sections:
            raise ResourceNotFoundError(f"No policy with id {policy_id!r}")
        body = "\n\n".join(f"## {s.section}\n\n{s.text}" for s in sections)
        return f"# {sections[0].title}\n\n{body}\n"

    def onboarding_checklist(
        self, employee_id: Annotated[str, Field(description="Id of the new hire, e.g. E1020")]
    ) -> list[Message]:
        """Draft an onboarding checklist for a new hire, following the onboarding and security policies."""
        try:
            employee = self.get_employee(employee_id)
        except DomainError as exc:
            raise invalid_params(str(exc)) from None
        policies = [self.policy("onboarding"), self.policy("information-security")]
        return [
            UserMessage(
                f"Draft an onboarding checklist for {employee.name} ({employee.title}, {employee.department}, "
                f"{employee.location}), starting {employee.hire_date}, reporting to "
                f"{employee.manager_name or 'no manager on record'}. Group it by day one, first week and first "
                "90 days, name an owner for each item, and follow these policies:\n\n" + "\n".join(policies)
            )
        ]


def build_server(db_path: Path) -> MCPServer:
    """The hr server over the SQLite file at `db_path`, created and seeded if new."""
    hr = _Hr(HrStore(db_path))
    server = make_server(
        "hr",
        INSTRUCTIONS,
        tools=[
            tool(hr.search_policy, "Search HR policies", "read"),
            tool(hr.get_employee, "Get employee", "read"),
            tool(hr.request_leave, "Request leave", "create"),
            tool(hr.approve_leave, "Approve leave", "update"),
            tool(hr.list_leave_requests, "List leave requests", "read"),
            tool(hr.search, "Search HR records", "read"),
        ],
        prompts=[prompt(hr.onboarding_checklist, "Onboarding checklist")],
    )
    server.resource("hr://employees/{employee_id}", name="employee", title="Employee", mime_type="application/json")(
        hr.employee_profile
    )
    server.resource("hr://policies", name="policies", title="Policy index", mime_type="application/json")(
        hr.policy_index
    )
    server.resource("hr://policies/{policy_id}", name="policy", title="Policy", mime_type="text/markdown")(hr.policy)
    return server
