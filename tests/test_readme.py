"""The README's commands work as printed: its curl lines against a live stack, its config example, its CLI table."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from gateway.cli.main import _parser
from gateway.settings import load_config
from tests.support.procs import ROOT
from tests.support.stack import Stack

README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def run_bash(script: str, cwd: Path) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_2025_curl_lines_run_the_handshake_list_and_call(stack: Stack, tmp_path: Path) -> None:
    script = blocks(section("Talk to it with curl"), "sh")[0].replace(":8000/", f":{stack.gateway_port}/")
    out = run_bash(script, tmp_path)
    assert '"protocolVersion":"2025-11-25"' in out
    assert '"name":"ops/lookup_inventory"' in out and '"name":"fin/search"' in out
    assert '"id":3,"result"' in out and "SSD-1TB-NVME" in out and '"isError":false' in out


def test_the_2026_curl_lines_list_and_call_without_a_session(stack: Stack, tmp_path: Path) -> None:
    script = blocks(section("Talk to it with curl"), "sh")[1].replace(":8000/", f":{stack.gateway_port}/")
    out = run_bash(script, tmp_path)
    assert '"name":"hr/get_employee"' in out
    assert '"id":2,"result"' in out and "E1002" in out and '"isError":false' in out
    assert "Mcp-Session-Id" not in out


def test_the_config_example_is_a_valid_config(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(blocks(section("Configuration"), "yaml")[0])
    config = load_config(path, environ={"OPS_TOKEN": "t", "SESSION_KEY": "k" * 32})
    assert [b.name for b in config.backends] == ["ops", "legacy", "files"]
    assert config.backends[0].headers == {"Authorization": "Bearer t"}
    assert config.backends[2].env == {"LOG_LEVEL": "info"}


@pytest.mark.parametrize("json_block", blocks(section("Claude Desktop"), "json"))
def test_the_claude_desktop_entries_are_valid_mcp_servers_files(json_block: str, tmp_path: Path) -> None:
    path = tmp_path / "claude_desktop_config.json"
    path.write_text(json_block)
    config = load_config(path)
    assert [b.name for b in config.backends] == ["gateway"]


def test_every_command_in_the_cli_table_parses() -> None:
    commands = re.findall(r"^\| `mcp-gateway ([^`]*)` \|", section("Command line"), flags=re.M)
    named = {command.split()[0] for command in commands}
    assert named == {"serve", "stdio", "demo", "tools", "status", "backends", "servers", "audit"}
    for command in commands:
        words = re.sub(r"[\[\]]", "", command).replace("URL", "http://127.0.0.1:8000")
        words = words.replace("H", "127.0.0.1").replace("P", "8000").split()
        args = _parser().parse_args(words)
        assert args.command == words[0]


def test_the_compose_command_names_the_compose_file() -> None:
    command = blocks(section("Docker Compose"), "sh")[0]
    assert "docker-compose.multi.yml" in command
    assert (ROOT / "docker-compose.multi.yml").exists()
    assert yaml.safe_load((ROOT / "docker-compose.multi.yml").read_text())["services"]


def test_the_compose_section_names_the_compose_version_the_file_needs() -> None:
    needs = re.search(r"Needs Docker Compose ([0-9.]+) or later", (ROOT / "docker-compose.multi.yml").read_text())
    assert needs, "the compose file should say which Docker Compose it needs"
    assert f"Docker Compose {needs.group(1)} or later" in section("Docker Compose")


def test_the_security_example_is_a_valid_config(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(blocks(section("Security"), "yaml")[0])
    config = load_config(path, environ={"ALICE_KEY": "a-key-of-sixteen-chars"})
    assert config.security.auth.enabled and config.security.policy.rules


def test_the_composition_sections_link_to_headings_of_the_docs_page() -> None:
    page = (ROOT / "docs" / "composition.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.*)$", page, re.M)}
    linked = re.findall(r"\(docs/composition\.md#([^)]+)\)", section("Configuration"))
    assert {"composite-tools", "virtual-servers", "tool-search"} <= set(linked) <= anchors
    assert all(f"`{name}:`" in section("Configuration") for name in ("composites", "servers", "search"))
