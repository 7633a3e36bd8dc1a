"""The dataset a fresh finance database starts with: discretionary (non-payroll) budgets for 2026 and expenses."""

import sqlite3
from decimal import Decimal

from backends._sqlite import is_empty

# name, cost_center, owner
_DEPARTMENTS = [
    ("Engineering", "CC-100", "Lars Jensen"),
    ("Operations", "CC-200", "Hannah Cohen"),
    ("Finance", "CC-300", "Sofia Marquez"),
    ("HR", "CC-400", "Priya Raman"),
    ("Sales", "CC-500", "Daniel Weber"),
]

# allocation in EUR for 2026-Q1..Q4
_BUDGETS = {
    "Engineering": (60_000, 62_000, 65_000, 65_000),
    "Operations": (85_000, 80_000, 90_000, 95_000),
    "Finance": (15_000, 15_000, 16_000, 16_000),
    "HR": (20_000, 18_000, 18_000, 24_000),
    "Sales": (45_000, 50_000, 50_000, 55_000),
}

# department, date, amount in EUR, category, description
_EXPENSES = [
    ("Engineering", "2026-01-08", "18400.00", "software", "GitHub Enterprise annual renewal, 80 seats"),
    ("Engineering", "2026-01-20", "6250.00", "hardware", "Developer laptops, 2x MacBook Pro 14"),
    ("Engineering", "2026-02-03", "2400.00", "training", "Kubernetes CKA certification for four engineers"),
    ("Engineering", "2026-02-17", "9800.00", "contractors", "External penetration test of the customer portal"),
    ("Engineering", "2026-03-10", "1180.50", "travel", "Conference travel to KubeCon EU"),
    ("Engineering", "2026-03-24", "4300.00", "software", "Datadog APM overage, March"),
    ("Engineering", "2026-04-07", "12500.00", "contractors", "Mobile app accessibility audit"),
    ("Engineering", "2026-05-12", "3150.00", "hardware", "GPU workstation upgrade for the ML team"),
    ("Engineering", "2026-06-02", "2890.00", "events", "Engineering offsite venue, Utrecht"),
    ("Engineering", "2026-07-15", "5600.00", "software", "JetBrains licence renewal"),
    ("Operations", "2026-01-12", "24800.00", "hardware", "4x Dell PowerEdge R740 for the NYC-1 expansion"),
    ("Operations", "2026-02-11", "1450.00", "travel", "Technician travel to FRA-2 for the rack audit"),
    ("Operations", "2026-02-24", "3600.00", "hardware", "40x 1 TB NVMe SSD restock for FRA-2, PO-2291"),
    ("Operations", "2026-03-03", "8900.00", "contractors", "Colocation remote hands, AMS-1, Q1"),
    ("Operations", "2026-03-18", "2150.00", "hardware", "Replacement power supplies and fan kits"),
    ("Operations", "2026-04-14", "18600.00", "hardware", "Nexus 93180YC-FX core switch for FRA-2"),
    ("Operations", "2026-05-06", "950.00", "office", "Cable management and labelling supplies"),
    ("Operations", "2026-06-23", "7400.00", "contractors", "Data center fire suppression inspection"),
    ("Operations", "2026-08-05", "11200.00", "hardware", "25G NICs and DAC cables for NYC-1"),
    ("Finance", "2026-01-15", "4200.00", "software", "Accounting suite subscription, Q1"),
    ("Finance", "2026-02-26", "6500.00", "contractors", "Year-end audit preparation support"),
    ("Finance", "2026-03-30", "890.00", "training", "IFRS 16 update course"),
    ("Finance", "2026-04-15", "4200.00", "software", "Accounting suite subscription, Q2"),
    ("Finance", "2026-05-19", "620.00", "travel", "Bank meeting in Frankfurt"),
    ("Finance", "2026-07-15", "4400.00", "software", "Accounting suite subscription, Q3"),
    ("HR", "2026-01-22", "7800.00", "software", "Applicant tracking system, annual licence"),
    ("HR", "2026-02-09", "3200.00", "events", "New-joiner welcome day"),
    ("HR", "2026-03-05", "4500.00", "training", "Leadership training for team leads"),
    ("HR", "2026-04-21", "9600.00", "contractors", "Recruitment agency fee, senior SRE hire"),
    ("HR", "2026-05-28", "5400.00", "training", "Manager coaching programme"),
    ("HR", "2026-06-10", "2750.00", "events", "Summer team event"),
    ("HR", "2026-09-14", "1200.00", "office", "Ergonomic chairs for new hires"),
    ("Sales", "2026-01-27", "6800.00", "events", "Trade show booth, Data Center World Frankfurt"),
    ("Sales", "2026-02-12", "3450.75", "travel", "Customer visits in the Nordics"),
    ("Sales", "2026-03-09", "12000.00", "marketing", "Q1 digital campaign"),
    ("Sales", "2026-03-26", "2100.00", "software", "CRM add-on seats"),
    ("Sales", "2026-04-16", "4890.20", "travel", "Customer visits in New York"),
    ("Sales", "2026-05-20", "15000.00", "marketing", "Industry analyst report licence"),
    ("Sales", "2026-06-17", "9200.00", "events", "Customer summit, Amsterdam"),
    ("Sales", "2026-08-25", "7300.00", "marketing", "Q3 webinar series"),
]


def seed(conn: sqlite3.Connection) -> None:
    """Fill each table that is still empty."""
    if is_empty(conn, "departments"):
        conn.executemany("INSERT INTO departments (name, cost_center, owner) VALUES (?, ?, ?)", _DEPARTMENTS)
    if is_empty(conn, "budgets"):
        conn.executemany(
            "INSERT INTO budgets (department, quarter, allocated_cents) VALUES (?, ?, ?)",
            [
                (department, f"2026-Q{index + 1}", amount * 100)
                for department, amounts in _BUDGETS.items()
                for index, amount in enumerate(amounts)
            ],
        )
    if is_empty(conn, "expenses"):
        conn.executemany(
            "INSERT INTO expenses (department, date, amount_cents, category, description, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (department, date, int(Decimal(amount) * 100), category, text, f"{date}T17:00:00+00:00")
                for department, date, amount, category, text in _EXPENSES
            ],
        )
