"""``mcp-gateway backends list|add|remove|reconnect``: a running gateway's backends, through its admin API.

Like ``status``, it asks the gateway over HTTP (``--url``, and ``--token`` when the gateway takes credentials) and
prints what the gateway answers: a table of the backends, or one line saying what happened. A refusal prints the
message of the API's error body on one line and exits 1; a gateway that cannot be reached exits 3.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gateway.cli.status import EXIT_UNREACHABLE

EXIT_OK = 0
EXIT_REFUSED = 1
API = "/admin/api"
COLUMNS = ("BACKEND", "STATE", "BREAKER", "TOOLS", "CALLS", "ERRORS", "P50 MS", "P95 MS", "REASON")


class Refused(Exception):
    """The API answered with an error; the message is its error body's."""


def run(args: argparse.Namespace, url: str) -> int:
    """Carry out ``args.action`` against the gateway at ``url``; the exit status."""
    api = Api(url, args.token, args.timeout)

    def act() -> None:
        if args.action == "list":
            print(render(api.request("GET", "/backends")["backends"]))
        elif args.action == "add":
            added = api.request("POST", "/backends", definition(args))
            print(f"added {added.get('name', '?')}")
        elif args.action == "remove":
            print(f"removed {api.request('DELETE', _backend(args.name))['removed']}")
        else:
            print(f"reconnecting {api.request('POST', _backend(args.name) + '/reconnect')['backend']}")

    return answered(act, url)


def answered(act: Callable[[], None], url: str) -> int:
    """Run one admin API exchange; a refusal or an unreachable gateway becomes its line and exit status."""
    try:
        act()
    except Refused as exc:
        print(f"mcp-gateway: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (OSError, ValueError) as exc:
        print(f"mcp-gateway: cannot reach the admin API at {url}: {_reason(exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    return EXIT_OK


def definition(args: argparse.Namespace) -> dict[str, Any]:
    """One backend definition, as an entry of ``backends:``: from a YAML or JSON file, or from the flags."""
    if args.file is not None:
        return read_definition(args.file, "backend")
    fields = {"name": args.name, "prefix": args.prefix, "transport": args.transport, "url": args.backend_url}
    if args.command_line:
        try:
            command, *arguments = shlex.split(args.command_line)
        except ValueError:
            raise Refused(f"--command: cannot split {args.command_line!r} into a command and its arguments") from None
        fields |= {"command": command, "args": arguments}
    return {key: value for key, value in fields.items() if value is not None}


def read_definition(path: Path, kind: str) -> dict[str, Any]:
    """One definition (a mapping) from a YAML or JSON file."""
    try:
        found = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise Refused(f"cannot read {path}: {exc}") from None
    if not isinstance(found, dict):
        raise Refused(f"{path} does not hold one {kind} definition (a mapping)")
    return found


def render(backends: list[dict[str, Any]]) -> str:
    return table([COLUMNS, *(_row(backend) for backend in backends)])


def table(rows: list[tuple[str, ...]]) -> str:
    """Rows in aligned columns, the last one left ragged (it holds free text)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _row(backend: dict[str, Any]) -> tuple[str, ...]:
    calls = backend.get("calls") or {}
    return (
        str(backend.get("name", "?")),
        str(backend.get("state", "?")),
        str(backend.get("breaker", "?")),
        str(backend.get("tools", 0)),
        str(calls.get("count", 0)),
        str(calls.get("errors", 0)),
        _ms(calls.get("p50_ms")),
        _ms(calls.get("p95_ms")),
        str(backend.get("error") or ""),
    )


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _backend(name: str) -> str:
    return "/backends/" + urllib.parse.quote(name, safe="")


class Api:
    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self._base = url.rstrip("/") + API
        self._token = token
        self._timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON answer; ``Refused`` with the error body's message for an error status."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self._base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise Refused(_refusal(exc)) from None
        if not isinstance(answer, dict):
            raise ValueError("the answer is not a JSON object")
        return answer


def _refusal(exc: urllib.error.HTTPError) -> str:
    """The API's error message (and the field at fault), else the HTTP status."""
    try:
        error = json.loads(exc.read())["error"]
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        return f"the gateway answered HTTP {exc.code}"
    field = error.get("field")
    return f"{message} (field: {field})" if field else message


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc)
