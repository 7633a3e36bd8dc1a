"""docs/composition.md as printed: every curl line of the page against a running ``mcp-gateway demo``, each answer's
key facts checked, so the page stays true of the demo it describes."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import ROOT, Processes, free_port, wait_until

pytestmark = pytest.mark.processes
PAGE = (ROOT / "docs" / "composition.md").read_text(encoding="utf-8")
SH_BLOCKS = re.findall(r"```sh\n(.*?)```", PAGE, flags=re.S)
PORT_FLAGS = ("--port", "--ops-port", "--hr-port", "--finance-port")


class Demo:
    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """``mcp-gateway demo`` on free ports, as a person would start it, once for the module."""
    root = tmp_path_factory.mktemp("demo")
    ports = {flag: free_port() for flag in PORT_FLAGS}
    log = root / "demo.log"
    procs = Processes()
    try:
        with log.open("wb") as sink:
            args = [arg for flag, port in ports.items() for arg in (flag, str(port))]
            proc = procs.start("-m", "gateway", "demo", *args, "--data-dir", str(root / "data"), stderr=sink)
        wait_until(lambda: "Ctrl-C stops" in log.read_text() or proc.poll() is not None, what="the demo banner")
        assert proc.poll() is None, log.read_text()
        yield Demo(ports["--port"], log)
    finally:
        procs.stop_all()


def run_block(demo: Demo, block: str, tmp_path: Path) -> list[dict[str, Any]]:
    """One sh block of the page as printed (only the port changed), and the JSON-RPC messages it got back."""
    script = block.replace(":8000/", f":{demo.port}/")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return messages(done.stdout)


def messages(out: str) -> list[dict[str, Any]]:
    """The answers of one or more curl calls printed back to back: JSON bodies, or SSE ``data:`` lines."""
    events = [line[5:].strip() for line in out.splitlines() if line.startswith("data:")]
    if events:
        return [json.loads(event) for event in events if event]
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(out.rstrip()):
        message, at = decoder.raw_decode(out, at)
        found.append(message)
        while at < len(out) and out[at].isspace():
            at += 1
    return found


def structured(message: dict[str, Any]) -> Any:
    result = message["result"]
    assert result["isError"] is False, result
    assert json.loads(result["content"][0]["text"]) == result["structuredContent"]
    return result["structuredContent"]


def tool_names(message: dict[str, Any]) -> list[str]:
    return [tool["name"] for tool in message["result"]["tools"]]


def the_composite_on_mcp(answers: list[dict[str, Any]]) -> None:
    (answer,) = answers
    report = structured(answer)
    assert report["incident_count"] == 3 == len(report["incidents"])
    assert report["incidents"][0]["title"] == "Latency spikes on AMS-1 core switch"
    assert {ticket["status"] for ticket in report["incidents"]} == {"open"}
    assert report["on_call"]["name"] == "Mei Chen" and report["on_call"]["department"] == "Engineering"
    assert report["escalate_to"] == {"name": "Lars Jensen", "email": "lars.jensen@example.com"}
    assert report["budget"]["quarter"] == "2026-Q2" and report["budget"]["remaining"] == 43460.0


def the_oncall_list(answers: list[dict[str, Any]]) -> None:
    (answer,) = answers
    assert tool_names(answer) == [
        "approved_leave",
        "fin/calculate_budget",
        "hr/get_employee",
        "incident_full_report",
        "ops/list_tickets",
        "ops/lookup_inventory",
        "ops/search",
    ]
    renamed = answer["result"]["tools"][0]
    assert renamed["title"] == "Approved leave"
    assert set(renamed["inputSchema"]["properties"]) == {"employee_id"}


def the_renamed_call(answers: list[dict[str, Any]]) -> None:
    (answer,) = answers
    leave = structured(answer)
    assert leave["count"] == 4 == len(leave["requests"])
    assert {request["status"] for request in leave["requests"]} == {"approved"}


def the_refusals(answers: list[dict[str, Any]]) -> None:
    fixed, old_name = answers
    assert fixed["error"] == {
        "code": -32602,
        "message": "Invalid arguments for 'approved_leave' at $.status: this server fixes it; leave it out",
        "data": {"tool": "approved_leave", "path": "$.status"},
    }
    assert old_name["error"]["code"] == -32602
    assert old_name["error"]["message"] == "Unknown tool: 'hr/list_leave_requests'"


def the_lazy_list(answers: list[dict[str, Any]]) -> None:
    (answer,) = answers
    assert tool_names(answer) == ["call_tool", "describe_tool", "search_tools"]


def search_describe_call(answers: list[dict[str, Any]]) -> None:
    found, described, called = answers
    hits = structured(found)["tools"]
    assert [hit["name"] for hit in hits] == ["hr/approve_leave", "hr/request_leave"]
    assert hits[0]["score"] > hits[1]["score"] > 0
    definition = structured(described)
    assert definition["name"] == "hr/approve_leave"
    assert set(definition["inputSchema"]["properties"]) == {"request_id", "approver_id"}
    assert "outputSchema" in definition
    employee = structured(called)
    assert employee["id"] == "E1007" and employee["name"] == "Mei Chen"


def managed_at_runtime(answers: list[dict[str, Any]]) -> None:
    added, shown, lazy, restored, removed = answers
    assert added == shown
    assert added["path"] == "/servers/desk/mcp" and added["source"] == "runtime" and added["tools"] == 3
    assert lazy == {"source": "runtime", "config": {"enabled": True, "lazy": True}}
    assert restored["source"] == "config"
    assert removed == {"removed": "desk"}


CHECKS: list[Callable[[list[dict[str, Any]]], None]] = [
    the_composite_on_mcp,
    the_oncall_list,
    the_renamed_call,
    the_refusals,
    the_lazy_list,
    search_describe_call,
    managed_at_runtime,
]


def test_every_curl_block_of_the_page_is_checked() -> None:
    assert len(SH_BLOCKS) == len(CHECKS)
    assert all("curl " in block for block in SH_BLOCKS)


@pytest.mark.parametrize(
    ("block", "check"), list(zip(SH_BLOCKS, CHECKS, strict=False)), ids=[c.__name__ for c in CHECKS]
)
def test_a_curl_block_answers_what_the_page_says(
    demo: Demo, block: str, check: Callable[[list[dict[str, Any]]], None], tmp_path: Path
) -> None:
    check(run_block(demo, block, tmp_path))


def test_the_banner_names_each_virtual_servers_url(demo: Demo) -> None:
    banner = demo.log.read_text()
    base = f"http://127.0.0.1:{demo.port}"
    assert f"MCP endpoint: {base}/mcp\n" in banner
    assert f"Virtual server oncall: {base}/servers/oncall/mcp\n" in banner
    assert f"Virtual server lazy: {base}/servers/lazy/mcp\n" in banner
