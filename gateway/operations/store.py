"""Runtime changes, kept in SQLite in the gateway's state directory so that a restart keeps them.

Four tables. ``backends`` holds one override per backend name: the definition given at run time, or none for a
backend removed at run time, and ``base``, the config file's definition of that name when the change was made
(``null`` when the file had none); ``gateway.operations.runtime`` drops an override whose base no longer matches
the file, because then the file was edited after the change and the later edit wins. ``disabled_backends`` and
``disabled_tools`` hold what an operator switched off, by backend name and by canonical tool name. ``endpoints``
holds the same kind of override for the virtual servers, the composites and ``search``, keyed by section and name
(``gateway.operations.endpoints``).

Replicas sharing a Redis share these changes too: the gateway that made one publishes a ``snapshot`` of its store,
and every other one ``restore``s it into its own and applies it (``gateway.operations.runtime``).

The file is created with mode 0600 (definitions may carry tokens in headers or environment values) in a directory
created 0700. Every write is one short transaction; the gateway writes only when an operator changes something.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import StartupError

FILE_NAME = "runtime.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS backends (
    name TEXT PRIMARY KEY,
    definition TEXT,
    base TEXT NOT NULL,
    changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE TABLE IF NOT EXISTS disabled_backends (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS disabled_tools (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS endpoints (
    section TEXT NOT NULL,
    name TEXT NOT NULL,
    definition TEXT,
    base TEXT NOT NULL,
    changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (section, name)
);
"""


@dataclass(frozen=True)
class Override:
    """A backend's runtime definition (``None``: removed at run time) over the file's ``base`` (JSON text)."""

    name: str
    definition: dict[str, Any] | None
    base: str
    changed_at: str


class Store:
    """The runtime changes of one gateway."""

    def __init__(self, state_dir: Path | None) -> None:
        """``None``: kept in memory, for this process only."""
        self.path = None if state_dir is None else state_dir / FILE_NAME
        try:
            if state_dir is not None and self.path is not None:
                state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
                os.chmod(self.path, 0o600)
            self._db = sqlite3.connect(self.path or ":memory:", isolation_level=None, check_same_thread=False)
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StartupError(f"cannot keep runtime changes in {state_dir}: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def overrides(self) -> list[Override]:
        rows = self._db.execute("SELECT name, definition, base, changed_at FROM backends ORDER BY rowid")
        return [Override(name, None if d is None else json.loads(d), base, at) for name, d, base, at in rows]

    def put(self, name: str, definition: dict[str, Any] | None, base: str) -> None:
        text = None if definition is None else json.dumps(definition, sort_keys=True)
        self._db.execute(
            "INSERT INTO backends (name, definition, base) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "definition = excluded.definition, base = excluded.base, changed_at = excluded.changed_at",
            (name, text, base),
        )

    def drop(self, name: str) -> None:
        """Forget a backend's override (the file's definition applies again)."""
        self._db.execute("DELETE FROM backends WHERE name = ?", (name,))

    def endpoint_overrides(self, section: str) -> list[Override]:
        """The overrides of one section (``servers``, ``composites``, ``search``), oldest first."""
        rows = self._db.execute(
            "SELECT name, definition, base, changed_at FROM endpoints WHERE section = ? ORDER BY rowid", (section,)
        )
        return [Override(name, None if d is None else json.loads(d), base, at) for name, d, base, at in rows]

    def put_endpoint(self, section: str, name: str, definition: dict[str, Any] | None, base: str) -> None:
        text = None if definition is None else json.dumps(definition, sort_keys=True)
        self._db.execute(
            "INSERT INTO endpoints (section, name, definition, base) VALUES (?, ?, ?, ?) ON CONFLICT (section, name) "
            "DO UPDATE SET definition = excluded.definition, base = excluded.base, changed_at = excluded.changed_at",
            (section, name, text, base),
        )

    def drop_endpoint(self, section: str, name: str) -> None:
        self._db.execute("DELETE FROM endpoints WHERE section = ? AND name = ?", (section, name))

    def disabled_backends(self) -> set[str]:
        return {name for (name,) in self._db.execute("SELECT name FROM disabled_backends")}

    def disabled_tools(self) -> frozenset[str]:
        return frozenset(name for (name,) in self._db.execute("SELECT name FROM disabled_tools"))

    def set_backend_enabled(self, name: str, enabled: bool) -> None:
        self._switch("disabled_backends", name, enabled)

    def set_tool_enabled(self, name: str, enabled: bool) -> None:
        self._switch("disabled_tools", name, enabled)

    def snapshot(self) -> dict[str, Any]:
        """Every change, as JSON, for another replica's ``restore``."""
        return {
            "backends": [[o.name, o.definition, o.base, o.changed_at] for o in self.overrides()],
            "disabled_backends": sorted(self.disabled_backends()),
            "disabled_tools": sorted(self.disabled_tools()),
            "endpoints": [
                [section, name, None if d is None else json.loads(d), base, at]
                for section, name, d, base, at in self._db.execute(
                    "SELECT section, name, definition, base, changed_at FROM endpoints ORDER BY rowid"
                )
            ],
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Replace every change with another replica's ``snapshot``; ``ValueError`` (nothing changed) if it is not
        one."""
        try:
            rows = [(str(n), None if d is None else json.dumps(dict(d), sort_keys=True), str(b), str(at))
                    for n, d, b, at in snapshot["backends"]]  # fmt: skip
            backends = [(str(name),) for name in snapshot["disabled_backends"]]
            tools = [(str(name),) for name in snapshot["disabled_tools"]]
            endpoints = [(str(section), str(n), None if d is None else json.dumps(dict(d), sort_keys=True), str(b),
                          str(at))
                         for section, n, d, b, at in snapshot["endpoints"]]  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a snapshot of runtime changes: {exc!r}") from None
        with self._db:
            self._db.execute("BEGIN")
            for table in ("backends", "disabled_backends", "disabled_tools", "endpoints"):
                self._db.execute(f"DELETE FROM {table}")
            self._db.executemany("INSERT INTO backends (name, definition, base, changed_at) VALUES (?, ?, ?, ?)", rows)
            self._db.executemany("INSERT INTO disabled_backends (name) VALUES (?)", backends)
            self._db.executemany("INSERT INTO disabled_tools (name) VALUES (?)", tools)
            self._db.executemany(
                "INSERT INTO endpoints (section, name, definition, base, changed_at) VALUES (?, ?, ?, ?, ?)", endpoints
            )

    def _switch(self, table: str, name: str, enabled: bool) -> None:
        if enabled:
            self._db.execute(f"DELETE FROM {table} WHERE name = ?", (name,))
        else:
            self._db.execute(f"INSERT OR IGNORE INTO {table} (name) VALUES (?)", (name,))
