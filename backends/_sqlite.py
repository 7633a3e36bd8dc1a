"""SQLite plumbing shared by the backends.

Tools run on worker threads and may run concurrently, so no connection is shared: every operation opens its own,
runs in one transaction and closes it. Writers take the lock up front (BEGIN IMMEDIATE) so two writers queue on the
busy timeout instead of failing when a read transaction tries to upgrade.
"""

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T")

_BUSY_TIMEOUT_SECONDS = 5.0


class Database:
    """One SQLite file with a schema, seeded once when its tables are still empty."""

    def __init__(self, path: Path, schema: str, seed: Callable[[sqlite3.Connection], None]) -> None:
        self.path = path
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(schema)
        # Under the write lock so two processes starting on a fresh file cannot both seed it.
        with self.write() as conn:
            seed(conn)

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for multi-query reads."""
        with self._transaction("DEFERRED") as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with self._transaction("IMMEDIATE") as conn:
            yield conn

    @contextmanager
    def _transaction(self, mode: str) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute(f"BEGIN {mode}")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            yield conn
        finally:
            conn.close()


def now_iso() -> str:
    """The current UTC time as stored in the databases: ISO 8601, to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def is_empty(conn: sqlite3.Connection, table: str) -> bool:
    """Whether a table has no rows yet; seeding keys off this so restarts never duplicate data."""
    return bool(conn.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {table})").fetchone()[0])


def match_all_terms(query: str, columns: Sequence[str]) -> tuple[str, list[str]]:
    """A WHERE clause (and its parameters) requiring every word of `query` somewhere in `columns`.

    Words match case-insensitively as substrings; LIKE wildcards in the query are taken literally.
    """
    patterns = _patterns(query)
    clause = " AND ".join(f"{_haystack(columns)} LIKE ? ESCAPE '\\'" for _ in patterns)
    return clause or "1 = 1", patterns


def ranked_select(table: str, query: str, columns: Sequence[str], tie_break: str, limit: int) -> tuple[str, list[Any]]:
    """A SELECT over `table` of rows containing any word of `query`, best first, with a `score` column.

    The score counts the distinct query words a row contains, so free text such as "vacation carry over" finds
    the section mentioning all three first and the ones mentioning only one later.
    """
    patterns = _patterns(query)
    score = " + ".join(f"({_haystack(columns)} LIKE ? ESCAPE '\\')" for _ in patterns) or "0"
    sql = f"SELECT * FROM (SELECT *, {score} AS score FROM {table}) WHERE score > 0 ORDER BY score DESC, {tie_break}"
    return f"{sql} LIMIT ?", [*patterns, limit]


def best_first(groups: Iterable[Iterable[tuple[int, _T]]], limit: int) -> list[_T]:
    """Merge scored hits from several tables, best first; ties keep the order the groups were given in."""
    merged = [pair for group in groups for pair in group]
    merged.sort(key=lambda pair: -pair[0])
    return [hit for _, hit in merged[:limit]]


def _patterns(query: str) -> list[str]:
    words = dict.fromkeys(word.lower() for word in query.split())
    return [f"%{_escape_like(word)}%" for word in words]


def _haystack(columns: Sequence[str]) -> str:
    return "(" + " || ' ' || ".join(f"coalesce({column}, '')" for column in columns) + ")"


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
