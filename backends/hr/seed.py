"""The dataset a fresh hr database starts with."""

import sqlite3

from backends._sqlite import is_empty

# id, name, department, title, location, hire_date, manager_id, vacation days per year
_EMPLOYEES: list[tuple[str, str, str, str, str, str, str | None, int]] = [
    ("E1001", "Amara Okafor", "Operations", "Managing Director", "Amsterdam", "2015-04-01", None, 30),
    ("E1002", "Lars Jensen", "Engineering", "VP Engineering", "Amsterdam", "2016-09-12", "E1001", 28),
    ("E1003", "Sofia Marquez", "Finance", "Finance Director", "Amsterdam", "2017-01-09", "E1001", 28),
    ("E1004", "Priya Raman", "HR", "Head of People", "Amsterdam", "2018-03-05", "E1001", 28),
    ("E1005", "Daniel Weber", "Sales", "Sales Director", "Frankfurt", "2017-06-19", "E1001", 28),
    ("E1006", "Hannah Cohen", "Operations", "Operations Manager", "New York", "2019-02-11", "E1001", 25),
    ("E1007", "Mei Chen", "Engineering", "Senior Site Reliability Engineer", "New York", "2020-05-04", "E1002", 25),
    ("E1008", "Jeroen de Vries", "Engineering", "Infrastructure Engineer", "Amsterdam", "2021-08-16", "E1002", 25),
    ("E1009", "Sanjay Patel", "Engineering", "Network Engineer", "Amsterdam", "2019-11-18", "E1002", 25),
    ("E1010", "Ana Novak", "Operations", "Procurement Specialist", "Frankfurt", "2022-01-10", "E1006", 25),
    ("E1011", "Tom Becker", "Operations", "Data Center Technician", "Frankfurt", "2023-04-03", "E1006", 25),
    ("E1012", "Grace Liu", "Engineering", "Software Engineer", "Amsterdam", "2024-02-19", "E1002", 25),
    ("E1013", "Omar Haddad", "Finance", "Financial Analyst", "Amsterdam", "2022-09-05", "E1003", 25),
    ("E1014", "Julia Schmidt", "Finance", "Accountant", "Frankfurt", "2021-03-15", "E1003", 25),
    ("E1015", "Noah Williams", "HR", "HR Business Partner", "New York", "2020-10-26", "E1004", 25),
    ("E1016", "Elif Kaya", "HR", "Recruiter", "Amsterdam", "2025-01-13", "E1004", 25),
    ("E1017", "Marco Rossi", "Sales", "Account Executive", "Frankfurt", "2023-07-03", "E1005", 25),
    ("E1018", "Chloe Martin", "Sales", "Account Executive", "New York", "2024-05-20", "E1005", 25),
    ("E1019", "Ravi Kumar", "Sales", "Sales Engineer", "New York", "2022-11-07", "E1005", 25),
    ("E1020", "Lena Fischer", "Engineering", "Junior Software Engineer", "Amsterdam", "2026-10-05", "E1002", 25),
]
SICK_DAYS = 10
PARENTAL_DAYS = 80

# employee_id, kind, start, end, status, note, created_at, decided_by, decided_at
_LEAVE: list[tuple[str, str, str, str, str, str | None, str, str | None, str | None]] = [
    ("E1007", "vacation", "2026-07-06", "2026-07-17", "approved", "Summer holiday", "2026-03-02T09:00:00+00:00",
     "E1002", "2026-03-03T10:15:00+00:00"),
    ("E1008", "sick", "2026-03-09", "2026-03-10", "approved", None, "2026-03-09T07:30:00+00:00",
     "E1002", "2026-03-09T08:05:00+00:00"),
    ("E1017", "vacation", "2026-08-03", "2026-08-14", "approved", None, "2026-02-11T14:20:00+00:00",
     "E1005", "2026-02-12T09:00:00+00:00"),
    ("E1014", "parental", "2026-09-01", "2026-11-27", "approved", "Birth of second child", "2026-05-04T11:00:00+00:00",
     "E1004", "2026-05-05T16:30:00+00:00"),
    ("E1019", "vacation", "2026-06-22", "2026-06-26", "rejected", "Clashes with quarter-end customer visits",
     "2026-04-14T08:45:00+00:00", "E1005", "2026-04-15T12:00:00+00:00"),
    ("E1012", "vacation", "2026-12-21", "2026-12-31", "pending", "Family visit", "2026-03-05T17:10:00+00:00",
     None, None),
    ("E1011", "unpaid", "2026-10-12", "2026-10-16", "pending", "Moving house", "2026-03-06T10:00:00+00:00",
     None, None),
    ("E1016", "vacation", "2026-12-28", "2026-12-31", "pending", None, "2026-03-06T13:40:00+00:00", None, None),
]  # fmt: skip

# policy_id, title, [(section, text)]
_POLICIES: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("annual-leave", "Annual Leave Policy", [
        ("Entitlement", "Full-time employees receive 25 working days of paid vacation per calendar year; directors "
         "receive 28 and the managing director 30. Part-time entitlement is pro rata."),
        ("Requesting leave", "Request vacation in the HR system at least two weeks ahead for absences longer than "
         "three days. Your manager or HR approves it; requests may not span two calendar years."),
        ("Carry-over", "Up to five unused vacation days carry over to the next year and expire on 31 March."),
    ]),
    ("sick-leave", "Sick Leave Policy", [
        ("Reporting sickness", "Tell your manager before 10:00 on the first day of absence and record sick leave "
         "in the HR system. Ten paid sick days are available per calendar year."),
        ("Medical certificates", "A doctor's certificate is required for absences longer than three consecutive "
         "working days. Long-term sickness is handled with HR and the occupational health service."),
    ]),
    ("parental-leave", "Parental Leave Policy", [
        ("Entitlement", "Every parent, including adoptive parents, may take 80 working days of paid parental leave "
         "within the first year after the birth or adoption."),
        ("Notice", "Give HR at least eight weeks notice of parental leave and agree a handover plan with your "
         "manager. Leave may be split into at most three blocks."),
    ]),
    ("remote-work", "Remote Work Policy", [
        ("Eligibility", "Most roles may work remotely up to three days per week. Data center and on-site "
         "operations roles are excluded; managers may agree exceptions in writing."),
        ("Equipment", "The company provides a laptop, monitor and headset. A home office allowance of 300 EUR is "
         "paid once, claimable through the expense process."),
    ]),
    ("travel-expenses", "Travel and Expense Policy", [
        ("Booking travel", "Book flights and hotels through the travel portal. Economy class applies to flights "
         "under six hours; trains are preferred for journeys under four hours."),
        ("Claiming expenses", "Submit receipts within 30 days. Meals are reimbursed up to 60 EUR per day while "
         "travelling; alcohol and personal entertainment are not reimbursed."),
    ]),
    ("code-of-conduct", "Code of Conduct", [
        ("Respect at work", "We do not tolerate harassment, discrimination or bullying of colleagues, candidates, "
         "customers or suppliers, in the office, online or at company events."),
        ("Reporting concerns", "Raise concerns with your manager, HR or the confidential whistleblowing line. "
         "Reports are investigated promptly and retaliation is a disciplinary offence."),
    ]),
    ("information-security", "Information Security Policy", [
        ("Passwords and MFA", "Use the password manager for every work account and enable multi-factor "
         "authentication everywhere it is offered. Never share credentials, including with IT."),
        ("Device security", "Keep laptops encrypted, locked when unattended and updated within seven days of a "
         "security patch. Report lost devices to the security team immediately."),
    ]),
    ("onboarding", "Onboarding Policy", [
        ("First week", "New hires receive equipment and accounts on day one, meet their manager and an onboarding "
         "buddy, and complete security and code-of-conduct training in the first week."),
        ("Probation", "The probation period is three months, with check-ins at 30, 60 and 90 days documented by "
         "the manager in the HR system."),
    ]),
]  # fmt: skip


def seed(conn: sqlite3.Connection) -> None:
    """Fill each table that is still empty."""
    if is_empty(conn, "employees"):
        conn.executemany(
            "INSERT INTO employees (id, name, email, department, title, location, hire_date, manager_id,"
            " vacation_days, sick_days, parental_days) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(e[0], e[1], _email(e[1]), *e[2:], SICK_DAYS, PARENTAL_DAYS) for e in _EMPLOYEES],
        )
    if is_empty(conn, "leave_requests"):
        conn.executemany(
            "INSERT INTO leave_requests (employee_id, kind, start_date, end_date, status, note, created_at,"
            " decided_by, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _LEAVE,
        )
    if is_empty(conn, "policy_sections"):
        conn.executemany(
            "INSERT INTO policy_sections (policy_id, position, title, section, text) VALUES (?, ?, ?, ?, ?)",
            [
                (policy_id, position, title, section, text)
                for policy_id, title, sections in _POLICIES
                for position, (section, text) in enumerate(sections)
            ],
        )


def _email(name: str) -> str:
    return name.lower().replace(" ", ".") + "@example.com"
