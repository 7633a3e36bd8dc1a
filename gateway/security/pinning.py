"""Tool pinning: a changed tool is withheld until an operator approves it.

With ``security.pinning.file`` set, the gateway records a fingerprint of each tool's definition (name, title,
description, input and output schemas, annotations) the first time it sees the tool. When a backend later lists
a pinned tool with a different definition, the tool is left out of every list and refused when called, and the
difference is logged, until ``mcp-gateway tools --approve`` pins the new definition. A running gateway notices
the approval by itself (it re-reads the file when it changes); an approval through the admin API also tells the
connected clients that the tool list changed, and the other replicas, which pin the same definition (``adopt``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp import types

from gateway.catalogue.naming import canonical_name

logger = logging.getLogger(__name__)
PINNED_FIELDS = {"name", "title", "description", "input_schema", "output_schema", "annotations"}


def definition(tool: types.Tool) -> dict[str, Any]:
    return tool.model_dump(mode="json", by_alias=True, include=PINNED_FIELDS, exclude_none=True)


def fingerprint(tool: types.Tool) -> str:
    return hashlib.sha256(json.dumps(definition(tool), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Pins:
    """The pin file, and the fingerprints the backends list now."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._pins: dict[str, dict[str, Any]] = {}
        self._stamp: tuple[int, int] | None = None
        self._current: dict[str, tuple[str, dict[str, Any]]] = {}
        self._reported: dict[tuple[str, str], datetime] = {}  # (name, fingerprint) withheld, and since when
        self._reload()

    @property
    def enabled(self) -> bool:
        return self._path is not None

    def observe(self, prefix: str, tools: Sequence[types.Tool]) -> None:
        """A backend's fresh listing: pin tools seen for the first time, report changed ones."""
        if self._path is None:
            return
        self._reload()
        fresh = []
        for tool in tools:
            name = canonical_name(prefix, tool.name)
            self._current[name] = (fingerprint(tool), definition(tool))
            if name not in self._pins:
                fresh.append(name)
        if fresh:
            self._pin(fresh)
        for name in (canonical_name(prefix, t.name) for t in tools):
            if self.withheld(name):
                self._report(name)

    def withheld(self, name: str) -> bool:
        """A pinned tool whose current definition differs from its pin."""
        if self._path is None or name not in self._current:
            return False
        pinned = self._pins.get(name)
        return pinned is not None and pinned["fingerprint"] != self._current[name][0]

    def changed(self) -> list[str]:
        self._reload()
        return sorted(name for name in self._current if self.withheld(name))

    def pending(self) -> list[tuple[str, str, datetime]]:
        """Each withheld tool: its name, the fingerprint it has now, and since when it is withheld."""
        found = []
        for name in self.changed():
            seen = self._current[name][0]
            found.append((name, seen, self._reported.setdefault((name, seen), datetime.now(UTC))))
        return found

    def approve(self, names: Iterable[str] | None = None) -> list[str]:
        """Pin the current definition of the named tools (every changed tool when ``None``)."""
        chosen = self.changed() if names is None else [n for n in names if n in self._current]
        self._pin(chosen)
        return chosen

    def fingerprints(self) -> dict[str, str]:
        """Every pinned tool's fingerprint, by canonical name."""
        return {name: pin["fingerprint"] for name, pin in self._pins.items()}

    def adopt(self, fingerprints: dict[str, Any]) -> list[str]:
        """Pin the withheld tools whose current definition has the fingerprint given (approved elsewhere)."""
        chosen = [n for n in self.changed() if fingerprints.get(n) == self._current[n][0]]
        if chosen:
            self._pin(chosen)
        return chosen

    def _pin(self, names: Sequence[str]) -> None:
        assert self._path is not None
        for name in names:
            seen, shape = self._current[name]
            self._pins[name] = {"fingerprint": seen, "definition": shape}
        temporary = self._path.with_name(self._path.name + ".tmp")
        temporary.write_text(json.dumps({"tools": self._pins}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temporary, self._path)
        self._stamp = _stamp(self._path)

    def refresh(self) -> None:
        """Pick up approvals another process wrote (one ``stat`` when nothing changed)."""
        self._reload()

    def _reload(self) -> None:
        if self._path is None:
            return
        stamp = _stamp(self._path)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        if stamp is None:
            self._pins = {}
            return
        try:
            self._pins = dict(json.loads(self._path.read_text(encoding="utf-8"))["tools"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.error("cannot read the pin file %s (%s); keeping the pins read before", self._path, exc)

    def _report(self, name: str) -> None:
        current_print, current = self._current[name]
        if (name, current_print) in self._reported:
            return
        self._reported[(name, current_print)] = datetime.now(UTC)
        old = json.dumps(self._pins[name]["definition"], indent=2, sort_keys=True).splitlines()
        new = json.dumps(current, indent=2, sort_keys=True).splitlines()
        diff = "\n".join(difflib.unified_diff(old, new, "pinned", "now", lineterm=""))
        logger.warning(
            "tool %s changed since it was pinned; withheld until approved (mcp-gateway tools --approve %s):\n%s",
            name,
            name,
            diff,
        )


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_mtime_ns, info.st_size
