"""The dataset a fresh ops database starts with."""

import sqlite3

from backends._sqlite import is_empty

# sku, name, unit, {warehouse: (quantity, reorder_level)}
_ITEMS: list[tuple[str, str, str, dict[str, tuple[int, int]]]] = [
    ("SRV-R740-01", "Dell PowerEdge R740 server", "unit", {"AMS-1": (4, 2), "FRA-2": (1, 2), "NYC-1": (6, 2)}),
    ("SRV-R650-02", "Dell PowerEdge R650 1U server", "unit", {"AMS-1": (8, 3), "NYC-1": (2, 3)}),
    ("SSD-1TB-NVME", "1 TB NVMe SSD, U.2", "unit", {"AMS-1": (42, 20), "FRA-2": (12, 20), "NYC-1": (35, 20)}),
    ("SSD-4TB-SATA", "3.84 TB SATA SSD, 2.5in", "unit", {"AMS-1": (18, 10), "FRA-2": (22, 10)}),
    ("HDD-12TB-SAS", "12 TB 7.2k SAS HDD, 3.5in", "unit", {"AMS-1": (30, 12), "FRA-2": (9, 12), "NYC-1": (24, 12)}),
    ("RAM-32G-DDR4", "32 GB DDR4-3200 RDIMM", "unit", {"AMS-1": (64, 32), "FRA-2": (40, 32), "NYC-1": (16, 32)}),
    ("RAM-64G-DDR5", "64 GB DDR5-4800 RDIMM", "unit", {"AMS-1": (24, 16), "NYC-1": (32, 16)}),
    ("NIC-25G-2P", "ConnectX-4 Lx 25GbE dual-port NIC", "unit", {"AMS-1": (10, 4), "FRA-2": (6, 4), "NYC-1": (3, 4)}),
    ("SFP-10G-SR", "10GBASE-SR SFP+ transceiver", "unit", {"AMS-1": (120, 40), "FRA-2": (75, 40), "NYC-1": (38, 40)}),
    ("CBL-CAT6-3M", "Cat6 patch cable, 3 m", "box of 25", {"AMS-1": (14, 5), "FRA-2": (8, 5), "NYC-1": (11, 5)}),
    ("CBL-DAC-25G-2M", "25G SFP28 DAC cable, 2 m", "unit", {"AMS-1": (48, 20), "NYC-1": (52, 20)}),
    ("PSU-750W-HP", "750 W hot-plug power supply", "unit", {"AMS-1": (6, 4), "FRA-2": (2, 4), "NYC-1": (7, 4)}),
    ("SW-N9K-48P", "Nexus 93180YC-FX 48-port switch", "unit", {"AMS-1": (2, 1), "FRA-2": (1, 1)}),
]

# title, description, priority, status, assignee, created_at, updated_at
_TICKETS: list[tuple[str, str, str, str, str | None, str, str]] = [
    (
        "Disk failure on db-ams-03",
        "SMART errors on bay 4 of db-ams-03 (PostgreSQL replica). RAID degraded; replace with HDD-12TB-SAS.",
        "high",
        "in_progress",
        "j.devries",
        "2026-03-02T08:14:00+00:00",
        "2026-03-02T09:40:00+00:00",
    ),
    (
        "Replace PSU in rack FRA-2/R12",
        "Redundant PSU on app-fra-12 reports failed. Host is on a single supply until PSU-750W-HP is swapped.",
        "medium",
        "open",
        None,
        "2026-03-04T13:05:00+00:00",
        "2026-03-04T13:05:00+00:00",
    ),
    (
        "Provision 4 servers for NYC-1 expansion",
        "Rack and cable four SRV-R740-01 in NYC-1 row C for the analytics cluster, 2x NIC-25G-2P each.",
        "medium",
        "open",
        "m.chen",
        "2026-03-05T10:30:00+00:00",
        "2026-03-05T10:30:00+00:00",
    ),
    (
        "Latency spikes on AMS-1 core switch",
        "p99 latency above 40 ms every 15 minutes on core-ams-1; suspect a flapping 10G uplink optic.",
        "critical",
        "open",
        "s.patel",
        "2026-03-06T07:55:00+00:00",
        "2026-03-06T07:55:00+00:00",
    ),
    (
        "Restock NVMe SSDs in FRA-2",
        "FRA-2 fell below the reorder level for SSD-1TB-NVME; purchase order PO-2291 raised for 40 units.",
        "low",
        "closed",
        "a.novak",
        "2026-02-20T15:20:00+00:00",
        "2026-02-27T11:00:00+00:00",
    ),
    (
        "Decommission backup host nyc-bkp-01",
        "Wipe and recycle nyc-bkp-01 after the migration to object storage; keep the HDDs for spares.",
        "low",
        "in_progress",
        "m.chen",
        "2026-02-25T09:00:00+00:00",
        "2026-03-03T16:45:00+00:00",
    ),
]


def seed(conn: sqlite3.Connection) -> None:
    """Fill each table that is still empty."""
    if is_empty(conn, "inventory"):
        conn.executemany(
            "INSERT INTO inventory (sku, name, warehouse, quantity, reorder_level, unit) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (sku, name, warehouse, quantity, reorder, unit)
                for sku, name, unit, stock in _ITEMS
                for warehouse, (quantity, reorder) in stock.items()
            ],
        )
    if is_empty(conn, "tickets"):
        conn.executemany(
            "INSERT INTO tickets (title, description, priority, status, assignee, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            _TICKETS,
        )
