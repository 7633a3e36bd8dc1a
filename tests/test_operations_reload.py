"""Hot reload of a served config file, in a real ``mcp-gateway serve`` process: an edit applies what changed and
leaves the unchanged backends' processes alone; SIGHUP reloads too; an invalid edit is refused in one log line
naming the field, and the running configuration goes on serving."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.support.inproc import READER_INFO
from tests.support.procs import ROOT, Processes, free_port, http_get, listening, wait_until

pytestmark = pytest.mark.processes


def stdio_toy(name: str) -> dict[str, Any]:
    args = ["-m", "tests.support.toy_server", "--stdio", "--name", name]
    return {"name": name, "transport": "stdio", "command": sys.executable, "args": args, "cwd": str(ROOT),
            "connect_timeout": 30}  # fmt: skip


def write(path: Path, backends: list[dict[str, Any]], state: Path, **sections: Any) -> None:
    """Save as an editor does: a new file renamed over the old one."""
    fresh = path.with_suffix(".new")
    fresh.write_text(json.dumps({"backends": backends, "state_dir": str(state), **sections}))
    os.replace(fresh, path)


class Served:
    def __init__(self, processes: Processes, tmp_path: Path, backends: list[dict[str, Any]] | None) -> None:
        """``backends``: the config file's (``None``: the test wrote ``gateway.json`` itself)."""
        self.config, self.state, self.log = tmp_path / "gateway.json", tmp_path / "state", tmp_path / "gateway.log"
        if backends is not None:
            write(self.config, backends, self.state)
        self.port = free_port()
        with self.log.open("wb") as log:
            self.proc = processes.start(
                "-m", "gateway", "serve", "--config", str(self.config), "--port", str(self.port), stderr=log
            )
        wait_until(lambda: listening(self.port) and self.status()[0] == 200, timeout=60, what="the gateway ready")

    def status(self) -> tuple[int, Any]:
        return http_get(f"http://127.0.0.1:{self.port}/readyz")

    def states(self) -> dict[str, str]:
        return {b["name"]: b["state"] for b in self.status()[1]["backends"]}

    def servers(self) -> list[str]:
        return [server["name"] for server in http_get(f"http://127.0.0.1:{self.port}/admin/api/servers")[1]["servers"]]

    def lines(self, text: str) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if text in line]

    def call(self, tool: str, arguments: dict[str, Any] | None = None, path: str = "/mcp") -> str:
        async def call() -> str:
            with anyio.fail_after(30):
                async with Client(f"http://127.0.0.1:{self.port}{path}", client_info=READER_INFO) as client:
                    result = await client.call_tool(tool, arguments or {})
            return str(result.content[0].text)  # type: ignore[union-attr]

        return anyio.run(call)


@pytest.fixture
def served(processes: Processes, tmp_path: Path) -> Served:
    return Served(processes, tmp_path, [stdio_toy("keep")])


def test_an_added_backend_appears_and_the_unchanged_one_keeps_its_process(served: Served) -> None:
    pid = served.call("keep/recall").rsplit("@", 1)[1]
    write(served.config, [stdio_toy("keep"), stdio_toy("extra")], served.state)
    wait_until(lambda: served.states().get("extra") == "ready", timeout=60, what="the added backend ready")
    assert served.call("extra/recall").rsplit("@", 1)[1] not in ("", pid)
    assert served.call("keep/recall").rsplit("@", 1)[1] == pid
    write(served.config, [stdio_toy("keep")], served.state)
    wait_until(lambda: "extra" not in served.states(), timeout=30, what="the removed backend gone")
    assert served.call("keep/recall").rsplit("@", 1)[1] == pid


def test_an_invalid_edit_is_refused_in_one_line_naming_the_field_and_sighup_reloads(served: Served) -> None:
    broken = {"name": "bad", "url": "http://127.0.0.1:9/mcp", "call_timeout": -1}
    write(served.config, [stdio_toy("keep"), broken], served.state)
    wait_until(lambda: served.lines("refused"), timeout=30, what="the refusal")
    os.kill(served.proc.pid, signal.SIGHUP)
    wait_until(lambda: served.lines("(SIGHUP) refused"), timeout=30, what="the refusal on SIGHUP")
    refusals = served.lines("refused")
    assert len(refusals) == 2 and all("backends[1].call_timeout" in line for line in refusals)
    assert served.states() == {"keep": "ready"}
    assert served.call("keep/echo", {"text": "still here"}) == "still here"
    assert served.proc.poll() is None


def test_a_setting_that_needs_a_restart_is_named_once(served: Served) -> None:
    fresh = served.config.with_suffix(".new")
    fresh.write_text(json.dumps({"backends": [stdio_toy("keep")], "state_dir": str(served.state),
                                 "list_page_size": 10}))  # fmt: skip
    os.replace(fresh, served.config)
    wait_until(lambda: served.lines("list_page_size"), timeout=30, what="the restart notice")
    assert len(served.lines("list_page_size")) == 1
    assert served.proc.poll() is None


def test_sighup_reloads_a_file_the_watch_cannot_see_change(processes: Processes, tmp_path: Path) -> None:
    """A config reached through a symlink that is pointed elsewhere (as a Kubernetes ConfigMap is updated)."""
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    write(first, [stdio_toy("keep")], tmp_path / "state")
    write(second, [stdio_toy("keep"), stdio_toy("extra")], tmp_path / "state")
    (tmp_path / "gateway.json").symlink_to(first)
    served = Served(processes, tmp_path, None)
    os.symlink(second, tmp_path / "link")
    os.replace(tmp_path / "link", served.config)
    os.kill(served.proc.pid, signal.SIGHUP)
    wait_until(lambda: served.states().get("extra") == "ready", timeout=60, what="the backend added on SIGHUP")
    assert served.states() == {"keep": "ready", "extra": "ready"}
    assert len(served.lines("config reloaded")) == 1


def test_an_edit_of_servers_and_composites_applies_and_one_the_listings_refuse_is_logged(served: Served) -> None:
    composite = {"name": "twice", "steps": {"a": {"tool": "keep/echo", "arguments": {"text": "composed"}}},
                 "result": {"said": {"$ref": "steps.a"}}}  # fmt: skip
    servers = {"team": {"tools": ["keep/echo"], "composites": ["twice"]}}
    write(served.config, [stdio_toy("keep")], served.state, servers=servers, composites=[composite])
    wait_until(lambda: served.servers() == ["team"], timeout=30, what="the server added by the edit")
    assert served.call("keep/echo", {"text": "through team"}, path="/servers/team/mcp") == "through team"
    assert "composed" in served.call("twice", path="/servers/team/mcp")
    unknown = {"team": {"tools": ["keep/*"], "overrides": {"keep/nope": {"title": "Nope"}}}}
    write(served.config, [stdio_toy("keep")], served.state, servers=unknown)
    wait_until(lambda: served.lines("left as they were"), timeout=30, what="the refusal")
    assert "servers.team.overrides.keep/nope" in served.lines("left as they were")[0]
    assert served.call("keep/echo", {"text": "still"}, path="/servers/team/mcp") == "still"
    write(served.config, [stdio_toy("keep")], served.state)
    wait_until(lambda: served.servers() == [], timeout=30, what="the server removed by the edit")
    assert served.proc.poll() is None
