"""``mcp-gateway servers list|add|remove``: a running gateway's virtual servers, through its admin API.

As ``mcp-gateway backends`` does: ``--url`` and ``--token`` to reach the admin API, a table or one line of what
happened, a refusal's message on one line and exit 1 (with the place in the config it names), exit 3 when the
gateway cannot be reached. ``add`` puts a server (adds it, or replaces its definition): the file holds what the
config file has under ``servers.<name>``.
"""

from __future__ import annotations

import argparse
import urllib.parse
from typing import Any

from gateway.cli.backends import Api, answered, read_definition, table

COLUMNS = ("SERVER", "PATH", "SOURCE", "SESSIONS", "TOOLS", "DESCRIPTION")


def run(args: argparse.Namespace, url: str) -> int:
    """Carry out ``args.action`` against the gateway at ``url``; the exit status."""
    api = Api(url, args.token, args.timeout)

    def act() -> None:
        if args.action == "list":
            print(render(api.request("GET", "/servers")["servers"]))
        elif args.action == "add":
            put = api.request("PUT", _server(args.name), read_definition(args.file, "server"))
            print(f"serving {put.get('name', '?')} at {put.get('path', '?')}")
        else:
            print(f"removed {api.request('DELETE', _server(args.name))['removed']}")

    return answered(act, url)


def render(servers: list[dict[str, Any]]) -> str:
    return table([COLUMNS, *(_row(server) for server in servers)])


def _row(server: dict[str, Any]) -> tuple[str, ...]:
    return (
        str(server.get("name", "?")),
        str(server.get("path", "?")),
        str(server.get("source", "?")),
        str(server.get("sessions", "-")),
        str(server.get("tools", "-")),
        str((server.get("config") or {}).get("description") or ""),
    )


def _server(name: str) -> str:
    return "/servers/" + urllib.parse.quote(name, safe="")
