"""A ranked full-text index over one endpoint's tools, for the search meta tool.

SQLite FTS5 in an in-memory database, ranked by BM25 over four columns, weighted: a tool's name (its words too, so
``get_incident`` and ``getIncident`` match ``incident``), its title, its description, and its arguments' names and
descriptions. Words are stemmed (``tickets`` finds ``ticket``). An index is built for one generation of one name
style's list, with one ``executemany``, and thrown away when the generation moves.

A query is never FTS5 syntax: it is cut to its first ``MAX_QUERY_CHARS`` characters and split into at most
``MAX_TERMS`` words of letters and digits (English function words left out), and each word is quoted, so nothing
a caller writes (quotes, ``*``, ``NEAR``, column filters, control characters) reaches the query parser as anything
but a word. The words are OR'ed: a tool matching more of them, and rarer ones, ranks higher. The cost of a query
is the number of tools its words match; the most common words of a query (those BM25 weighs least) are left out
once the words kept already match ``MATCH_BUDGET`` tools, so a query of common words answers as fast as one of
rare words.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from mcp import types

MAX_QUERY_CHARS = 4096
MAX_TERMS = 16
MAX_TERM_CHARS = 64
# Characters of each column indexed per tool: a backend's very long description costs build time, not more hits.
MAX_FIELD_CHARS = 8192
# Tools the kept words of one query may match together (the rarest word is always kept).
MATCH_BUDGET = 2000
# BM25 weights of the columns: name, title, description, arguments.
WEIGHTS = (10.0, 5.0, 2.0, 1.0)

# Words a request to a model is full of and a tool's description rarely (so BM25 would weigh them highly).
_FUNCTION_WORDS = """a about an and any are as at be by can could do does for from how i in into is it its me my of on
or our please should some that the their them these this those to want was we what when which who will with would you
your"""
STOPWORDS = frozenset(_FUNCTION_WORDS.split())

_WORD = re.compile(r"[^\W_]+")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|[^\W\d_A-Za-z]+")
_TOKENIZE = "tokenize='porter unicode61'"
_SCHEMA = (
    f"CREATE VIRTUAL TABLE tools USING fts5(name, title, description, arguments, {_TOKENIZE})",
    f"INSERT INTO tools(tools, rank) VALUES ('rank', 'bm25({', '.join(map(str, WEIGHTS))})')",
    "CREATE VIRTUAL TABLE vocabulary USING fts5vocab(tools, 'row')",
    # A query's words, tokenized as the index's words are (stemmed), to read how many tools each one matches.
    f"CREATE VIRTUAL TABLE probe USING fts5(word, {_TOKENIZE})",
    "CREATE VIRTUAL TABLE probe_terms USING fts5vocab(probe, 'instance')",
)
_INSERT = "INSERT INTO tools(rowid, name, title, description, arguments) VALUES (?, ?, ?, ?, ?)"
_RANKED = "SELECT rowid, rank FROM tools WHERE tools MATCH ? ORDER BY rank"
_PROBE = "INSERT INTO probe(rowid, word) VALUES (?, ?)"


@dataclass(frozen=True)
class Hit:
    """A tool found, and its BM25 score (higher is better)."""

    tool: types.Tool
    score: float


def terms(query: str) -> list[str]:
    """A query's words, lower-cased, each once, in order, within the bounds, English function words left out
    (unless there is nothing else); the only part of a query the index sees."""
    found: dict[str, None] = {}
    common: dict[str, None] = {}
    for match in _WORD.finditer(query[:MAX_QUERY_CHARS]):
        word = match.group().lower()[:MAX_TERM_CHARS]
        (common if word in STOPWORDS else found).setdefault(word)
        if len(found) == MAX_TERMS:
            break
    return list(found) or list(common)[:MAX_TERMS]


def name_words(name: str) -> str:
    """A tool name as words: ``ops/getIncident`` -> ``ops getIncident get Incident``. The tokenizer splits at
    ``_``, ``/`` and ``-`` itself, so a name without capitals is its own words."""
    if not any(c.isupper() for c in name):
        return name
    words: list[str] = []
    for chunk in _WORD.findall(name):
        parts = _CAMEL.findall(chunk)
        words += [chunk, *parts] if len(parts) > 1 else [chunk]
    return " ".join(words)


class ToolIndex:
    """The tools of one list (one style, one generation), searchable."""

    def __init__(self, tools: Sequence[types.Tool], generation: int) -> None:
        self.generation = generation
        self._tools = list(tools)
        self._by_name = {tool.name: tool for tool in self._tools}
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._db.executemany(_INSERT, _rows(self._tools))

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, name: str) -> types.Tool | None:
        return self._by_name.get(name)

    def search(self, query: str, limit: int, allowed: Callable[[str], bool]) -> list[Hit]:
        """The best ``limit`` tools for ``query`` among those ``allowed`` lets through, best first."""
        kept = self._within_budget(terms(query))
        if not kept:
            return []
        hits: list[Hit] = []
        with closing(self._db.execute(_RANKED, (_match(kept),))) as rows:
            for rowid, rank in rows:
                tool = self._tools[rowid]
                if allowed(tool.name):
                    hits.append(Hit(tool, round(-rank, 4)))
                    if len(hits) == limit:
                        break
        return hits

    def close(self) -> None:
        self._db.close()

    def _within_budget(self, words: list[str]) -> list[str]:
        """The words worth matching: those that match something, rarest first, while together they match at most
        ``MATCH_BUDGET`` tools (the rarest always, unless it is one BM25 gives no weight: found in more than half
        of the tools, and in more than the budget)."""
        counts = self._counts(words)
        counted = sorted((count, word) for word, count in counts.items() if count)
        kept: list[str] = []
        matched = 0
        for count, word in counted:
            if count > MATCH_BUDGET and count * 2 > len(self._tools):
                break
            if kept and matched + count > MATCH_BUDGET:
                break
            kept.append(word)
            matched += count
        return kept

    def _counts(self, words: list[str]) -> dict[str, int]:
        """How many tools each word matches, from the index's vocabulary (a word the tokenizer splits matches at
        most as many as its rarest part)."""
        self._db.execute("DELETE FROM probe")
        self._db.executemany(_PROBE, enumerate(words))
        stems: dict[int, set[str]] = {}
        for position, term in self._db.execute("SELECT doc, term FROM probe_terms"):
            stems.setdefault(position, set()).add(term)
        wanted = sorted(set().union(*stems.values()))
        marks = ", ".join("?" * len(wanted))
        docs = dict(self._db.execute(f"SELECT term, doc FROM vocabulary WHERE term IN ({marks})", wanted))
        return {words[position]: min(docs.get(term, 0) for term in found) for position, found in stems.items()}


def _match(words: Iterable[str]) -> str:
    """An FTS5 query of quoted words, OR'ed; a word holds letters and digits only, so it cannot close its quotes."""
    return " OR ".join(f'"{word}"' for word in words)


def _rows(tools: Sequence[types.Tool]) -> Iterator[tuple[int, str, str, str, str]]:
    for rowid, tool in enumerate(tools):
        title = tool.title or (tool.annotations.title if tool.annotations else None) or ""
        description = (tool.description or "")[:MAX_FIELD_CHARS]
        name, arguments = name_words(tool.name), _arguments(tool.input_schema)
        yield (
            rowid,
            _encodable(name),
            _encodable(title[:MAX_FIELD_CHARS]),
            _encodable(description),
            _encodable(arguments),
        )


def _encodable(text: str) -> str:
    """The text with what UTF-8 cannot hold (a lone surrogate from a backend's JSON escapes) replaced."""
    return text if text.isascii() else text.encode("utf-8", "replace").decode()


def _arguments(schema: dict[str, Any]) -> str:
    """The names (as words) and descriptions of a tool's top-level arguments."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return ""
    parts: list[str] = []
    for name, spec in properties.items():
        parts.append(name_words(str(name)))
        if isinstance(spec, dict) and isinstance(spec.get("description"), str):
            parts.append(spec["description"])
    return " ".join(parts)[:MAX_FIELD_CHARS]
