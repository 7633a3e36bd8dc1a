"""``mcp-gateway backends``: list and reconnect against a gateway serving its admin API on loopback; add and
remove checked by the requests they send, to a recording server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import anyio
import anyio.to_thread
import pytest

from gateway.cli.main import main
from gateway.operations.app import build_operated_app
from tests.support.inproc import running_gateway, serving_app
from tests.support.toy_server import build

pytestmark = pytest.mark.anyio
ADMIN_KEY = "admin-key-0123456789abcdef"
KEYS = {"auth": {"api_keys": [{"principal": "root", "key": ADMIN_KEY, "roles": ["admin"]}]}}


def cli(*argv: str) -> int:
    """Run ``mcp-gateway`` in this process; its exit status."""
    with pytest.raises(SystemExit) as ended:
        main(list(argv))
    return int(ended.value.code or 0)


async def test_list_shows_each_backend_with_its_calls_and_reconnect_reopens_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with (
        running_gateway({"toy": build()}, security=KEYS, reconnect_min=30, reconnect_max=60) as gw,
        serving_app(build_operated_app(gw), gw.config) as port,
    ):
        url = f"http://127.0.0.1:{port}"
        await gw.router.call_tool("toy/echo", {"text": "x"})
        listed = await anyio.to_thread.run_sync(cli, "backends", "list", "--url", url, "--token", ADMIN_KEY)
        table = capsys.readouterr().out
        before = gw.upstreams["toy"].client
        again = await anyio.to_thread.run_sync(cli, "backends", "reconnect", "toy", "--url", url, "--token", ADMIN_KEY)
        reconnected = capsys.readouterr().out
        with anyio.fail_after(5):
            await gw.upstreams["toy"].ready.wait()
        after = gw.upstreams["toy"].client
        refused = await anyio.to_thread.run_sync(cli, "backends", "list", "--url", url)
        unknown = await anyio.to_thread.run_sync(
            cli, "backends", "reconnect", "nope", "--url", url, "--token", ADMIN_KEY
        )
        errors = capsys.readouterr().err.splitlines()
    header, row = table.splitlines()
    assert listed == 0 and header.split() == [
        "BACKEND",
        "STATE",
        "BREAKER",
        "TOOLS",
        "CALLS",
        "ERRORS",
        "P50",
        "MS",
        "P95",
        "MS",
        "REASON",
    ]
    assert row.split()[:6] == ["toy", "ready", "closed", str(len(gw.upstreams["toy"].tools)), "1", "0"]
    assert (again, reconnected) == (0, "reconnecting toy\n")
    assert after is not None and after is not before
    assert (refused, unknown) == (1, 1)
    assert errors == [
        "mcp-gateway: Authentication required: send 'Authorization: Bearer <token>'",
        "mcp-gateway: No backend is named 'nope'",
    ]


class Recorder(BaseHTTPRequestHandler):
    """Answers as the admin API's change endpoints would, and records each request."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.seen.append(
            {"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        if self.command == "DELETE":
            status, answer = 200, {"removed": self.path.rsplit("/", 1)[-1]}
        elif body.get("name") == "taken":
            status, answer = 409, {"error": {"code": "backend_exists", "message": "A backend named 'taken' exists"}}
        elif body.get("url") == "ftp://x":
            status, answer = 422, {"error": {"code": "invalid", "message": "url: not an http URL", "field": "url"}}
        else:
            status, answer = 201, {"name": body["name"]}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    Recorder.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", Recorder.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_add_sends_the_definition_of_a_file_or_of_the_flags(
    recorder: tuple[str, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, seen = recorder
    spec = tmp_path / "crm.yaml"
    spec.write_text("name: crm\nurl: http://127.0.0.1:9000/mcp\nheaders: {X-Team: sales}\n")
    from_file = cli("backends", "add", str(spec), "--url", url, "--token", "t0ken")
    stdio = ["--name", "local", "--prefix", "lo", "--transport", "stdio", "--command", "python -m srv"]
    from_flags = cli("backends", "add", *stdio, "--url", url)
    out = capsys.readouterr().out
    assert (from_file, from_flags) == (0, 0) and out == "added crm\nadded local\n"
    assert seen[0] == {
        "method": "POST",
        "path": "/admin/api/backends",
        "auth": "Bearer t0ken",
        "body": {"name": "crm", "url": "http://127.0.0.1:9000/mcp", "headers": {"X-Team": "sales"}},
    }
    assert seen[1]["body"] == {
        "name": "local",
        "prefix": "lo",
        "transport": "stdio",
        "command": "python",
        "args": ["-m", "srv"],
    }
    assert seen[1]["auth"] is None


def test_add_and_remove_print_the_api_error_on_one_line_and_exit_1(
    recorder: tuple[str, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, seen = recorder
    taken = cli("backends", "add", "--name", "taken", "--backend-url", "http://127.0.0.1:1/mcp", "--url", url)
    invalid = cli("backends", "add", "--name", "bad", "--backend-url", "ftp://x", "--url", url)
    (tmp_path / "list.yaml").write_text("- name: a\n")
    not_one = cli("backends", "add", str(tmp_path / "list.yaml"), "--url", url)
    removed = cli("backends", "remove", "crm", "--url", url)
    captured = capsys.readouterr()
    assert (taken, invalid, not_one, removed) == (1, 1, 1, 0)
    assert captured.err.splitlines() == [
        "mcp-gateway: A backend named 'taken' exists",
        "mcp-gateway: url: not an http URL (field: url)",
        f"mcp-gateway: {tmp_path / 'list.yaml'} does not hold one backend definition (a mapping)",
    ]
    assert captured.out == "removed crm\n"
    assert [(r["method"], r["path"]) for r in seen] == [
        ("POST", "/admin/api/backends"),
        ("POST", "/admin/api/backends"),
        ("DELETE", "/admin/api/backends/crm"),
    ]
