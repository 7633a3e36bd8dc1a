"""``mcp-gateway status``: a running gateway's ``/readyz``, as a table an operator reads or as JSON.

It asks the gateway rather than connecting to the backends itself, so it shows what clients see now: each
backend's state, its circuit breaker, its tool count and, when it is not ready, why (and which tools' own breakers
are not closed).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

EXIT_READY = 0
EXIT_DEGRADED = 1
EXIT_UNREACHABLE = 3
COLUMNS = ("BACKEND", "STATE", "BREAKER", "TOOLS", "PROTOCOL", "REASON")


def print_status(url: str, as_json: bool, timeout: float) -> int:
    """Print the gateway's status; 0 when every backend is ready, 1 when degraded, 3 when it cannot be asked."""
    try:
        report = fetch(url.rstrip("/") + "/readyz", timeout)
    except (OSError, ValueError) as exc:
        print(f"mcp-gateway: cannot read the status of {url}: {_reason(exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(json.dumps(report, indent=2) if as_json else render(report))
    return EXIT_READY if report.get("status") == "ready" else EXIT_DEGRADED


def fetch(url: str, timeout: float) -> dict[str, Any]:
    """GET ``/readyz``: it answers 503 with the same document while degraded."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            raise
        body = exc.read()
    report = json.loads(body)
    if not isinstance(report, dict) or not isinstance(report.get("backends"), list):
        raise ValueError("the answer is not a gateway status document")
    return report


def render(report: dict[str, Any]) -> str:
    rows = [COLUMNS] + [_row(backend) for backend in report["backends"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    lines = [f"gateway: {report.get('status', 'unknown')}"]
    for row in rows:
        lines.append("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]))
    lines += [f"conflict: {conflict}" for conflict in report.get("conflicts", [])]
    if (store := report.get("store")) is not None:
        lines.append(f"store: {store.get('state')}" + (f" ({store['error']})" if store.get("error") else ""))
    return "\n".join(line.rstrip() for line in lines)


def _row(backend: dict[str, Any]) -> tuple[str, ...]:
    reason = backend.get("error", "")
    if backend.get("stderr"):
        reason += f" (stderr: {backend['stderr'][-1]})"
    if calls := backend.get("call_breakers"):
        reason = " ".join([reason, "breakers:", ", ".join(f"{key} {state}" for key, state in calls.items())]).strip()
    return (
        str(backend.get("name", "?")),
        str(backend.get("state", "?")),
        str(backend.get("breaker", "?")),
        str(backend.get("tools", 0)),
        str(backend.get("protocol", "-")),
        reason,
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    return str(exc)
