"""What a command imports: the commands that only ask a running gateway, or read a file, start without the
libraries that serve; and the serving modules leave what only a configuration asks for until it does
(``watchfiles`` is not one of those: uvicorn imports it for its own reloader)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import ROOT, free_port

pytestmark = pytest.mark.processes
SERVING = (
    "mcp",
    "starlette",
    "sse_starlette",
    "uvicorn",
    "opentelemetry",
    "prometheus_client",
    "jsonschema",
    "redis",
    "watchfiles",
)
# Runs one command in this interpreter, then prints which of the given packages it imported.
RUN_COMMAND = """
import json, sys
from gateway.cli.main import main
packages = json.loads(sys.argv[1])
try:
    main(sys.argv[2:])
except SystemExit:
    pass
print(json.dumps(sorted(name for name in packages if name in sys.modules)))
"""
IMPORT_SERVING = """
import json, sys
import gateway.cli.demo, gateway.cli.running, gateway.cli.workers
prefixes = json.loads(sys.argv[1])
print(json.dumps(sorted({p for p in prefixes for name in sys.modules if name == p or name.startswith(p + ".")})))
"""


def imported(script: str, packages: tuple[str, ...], *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(packages), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: list[str] = json.loads(done.stdout.splitlines()[-1])
    return found


def light_commands(tmp_path: Path) -> list[list[str]]:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: each command fails fast, having imported all it needs
    return [
        ["--help"],
        ["status", "--url", url, "--timeout", "5"],
        ["backends", "list", "--url", url, "--timeout", "5"],
        ["servers", "list", "--url", url, "--timeout", "5"],
        ["audit", "verify", str(tmp_path / "audit.log"), "--no-anchor"],
    ]


def test_the_commands_that_ask_a_running_gateway_import_nothing_that_serves(tmp_path: Path) -> None:
    for command in light_commands(tmp_path):
        assert imported(RUN_COMMAND, SERVING, *command) == [], command


def test_serving_imports_tracing_exporters_redis_and_jwt_only_when_configured() -> None:
    optional = ("opentelemetry.sdk", "opentelemetry.exporter", "redis", "jwt")
    assert imported(IMPORT_SERVING, optional) == []
