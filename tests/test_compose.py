"""docker-compose.multi.yml without a Docker engine: every command, port, healthcheck and setting in it is checked
against the real programs, then the same four commands run here as subprocesses on free local ports, and an MCP
client talks to the gateway in front of the three backends.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from mcp import Client

from backends import _cli as backend_cli
from gateway.cli import main as gateway_cli
from gateway.config import BackendConfig, GatewayConfig, Transport
from gateway.core import Gateway
from gateway.settings import Settings, load_config
from tests.support.inproc import READER_INFO, Unreachable, http

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.multi.yml"
DOCKERFILE = ROOT / "Dockerfile"
GATEWAY = "gateway"
# Service name -> the tool prefix the gateway should expose for it.
BACKENDS = {"ops": "ops", "hr": "hr", "finance": "fin"}
LOCAL = "127.0.0.1"
START_DEADLINE = 25.0
POLL_INTERVAL = 0.1
STOP_TIMEOUT = 10.0


# -- reading the compose file -----------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _service(name: str) -> dict[str, Any]:
    service = _compose()["services"][name]
    assert isinstance(service, dict)
    return service


def _command(name: str) -> list[str]:
    command = _service(name)["command"]
    assert isinstance(command, list), f"{name}: command should be a list (exec form), got {command!r}"
    assert all(isinstance(part, str) for part in command), f"{name}: every command item should be a string"
    return command


def _option(command: list[str], flag: str) -> str:
    assert command.count(flag) == 1, f"expected {flag} exactly once in {command}"
    return command[command.index(flag) + 1]


def _with_options(command: list[str], **values: str) -> list[str]:
    """``command`` with the value after each ``--flag`` replaced (``db=...`` replaces the value of ``--db``)."""
    out = list(command)
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        assert out.count(flag) == 1, f"expected {flag} exactly once in {command}"
        out[out.index(flag) + 1] = value
    return out


def _published(name: str) -> list[tuple[str, int, int]]:
    """``(host_ip, host_port, container_port)`` for each short-form ``ports`` entry."""
    out = []
    for entry in _service(name).get("ports", []):
        match = re.fullmatch(r"(\d+\.\d+\.\d+\.\d+):(\d+):(\d+)", str(entry))
        assert match, f"{name}: expected HOST_IP:HOST_PORT:CONTAINER_PORT, got {entry!r}"
        out.append((match.group(1), int(match.group(2)), int(match.group(3))))
    return out


def _environment(name: str) -> dict[str, str]:
    env = _service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _healthcheck_code(name: str) -> str:
    test = _service(name)["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"] and len(test) == 4, f"{name}: expected [CMD, python, -c, CODE]"
    code = test[3]
    assert isinstance(code, str)
    return code


def _healthcheck_url(name: str) -> str:
    found = re.findall(r"""['"](https?://[^'"]+)['"]""", _healthcheck_code(name))
    assert len(found) == 1, f"{name}: expected one URL in the healthcheck, found {found}"
    return str(found[0])


def _healthcheck_address(name: str) -> tuple[str, int]:
    found = re.findall(r"""\(\s*['"]([^'"]+)['"]\s*,\s*(\d+)\s*\)""", _healthcheck_code(name))
    assert len(found) == 1, f"{name}: expected one (host, port) address in the healthcheck, found {found}"
    return found[0][0], int(found[0][1])


def _gateway_config(name: str = GATEWAY) -> tuple[str, str]:
    """Where a gateway's config is mounted, and its content as the container sees it."""
    compose = _compose()
    mounts = _service(name).get("configs", [])
    assert len(mounts) == 1, f"{name} should mount exactly one config"
    mount = mounts[0]
    source = compose["configs"][mount["source"]]
    content = source["content"]
    # Compose interpolates ${VAR} in the file, content included; `$$` is how a literal `$` reaches the container.
    assert "$" not in content.replace("$$", ""), "an unescaped $ in the config content would be expanded by Compose"
    return str(mount["target"]), content.replace("$$", "$")


# -- the compose file against the programs it runs ----------------------------------------------------------------


def _default_services() -> dict[str, Any]:
    """The services `docker compose up` starts: those of no profile."""
    return {name: s for name, s in _compose()["services"].items() if not s.get("profiles")}


def test_every_service_runs_the_one_image_built_here() -> None:
    services = _default_services()
    assert set(services) == {GATEWAY, *BACKENDS}
    images = {s["image"] for s in services.values()}
    assert len(images) == 1, f"expected one image for every service, got {images}"
    assert all(s["build"] == "." for s in services.values())

    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    exposed = {int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", dockerfile, re.M) for p in line.split()}
    for name in services:
        for _, _, container_port in _published(name):
            assert container_port in exposed, f"{name}: port {container_port} is published but not EXPOSEd"
    cmd = re.findall(r"^CMD\s+(\[.*\])\s*$", dockerfile, re.M)
    assert [json.loads(c) for c in cmd] == [_command(GATEWAY)], "the image's default command should be the gateway's"


def test_gateway_command_environment_and_config_are_what_the_gateway_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = _command(GATEWAY)
    assert command[0] == "mcp-gateway"
    args = gateway_cli._parser().parse_args(command[1:])
    assert args.command == "serve"
    assert args.host == "0.0.0.0", "inside a container the gateway must listen beyond loopback to be published"
    assert _published(GATEWAY) == [(LOCAL, args.port, args.port)]
    assert _healthcheck_url(GATEWAY) == f"http://{LOCAL}:{args.port}/healthz"

    # Every variable set is one Settings reads, and reading it gives the mounted config.
    prefix = Settings.model_config.get("env_prefix", "")
    known = {f"{prefix}{field}".upper() for field in Settings.model_fields}
    env = _environment(GATEWAY)
    assert set(env) <= known, f"variables the gateway does not read: {sorted(set(env) - known)}"
    for key in [k for k in os.environ if k.startswith(prefix)]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    target, content = _gateway_config()
    assert (args.config or Settings().config) == Path(target)

    path = tmp_path / "config.yaml"
    path.write_text(content, encoding="utf-8")
    config = load_config(path, environ=env)
    by_name = {b.name: b for b in config.backends}
    assert set(by_name) == set(BACKENDS)
    for name, prefix_ in BACKENDS.items():
        backend = by_name[name]
        assert backend.exposed_prefix == prefix_
        assert backend.transport is Transport.STREAMABLE_HTTP
        url = urlsplit(backend.url or "")
        assert (url.hostname, url.port, url.path) == (name, int(_option(_command(name), "--port")), "/mcp")

    depends = _service(GATEWAY)["depends_on"]
    assert {k: v["condition"] for k, v in depends.items()} == dict.fromkeys(BACKENDS, "service_healthy")


def _loaded_gateway_config(tmp_path: Path) -> GatewayConfig:
    path = tmp_path / "config.yaml"
    path.write_text(_gateway_config()[1], encoding="utf-8")
    return load_config(path, environ=_environment(GATEWAY))


def test_the_gateway_admits_its_service_name_reaches_only_defined_services_and_every_service_is_checked(
    tmp_path: Path,
) -> None:
    config = _loaded_gateway_config(tmp_path)
    hosts = config.security.http.allowed_hosts
    assert {GATEWAY, f"{GATEWAY}:*"} <= set(hosts), "other containers name the gateway by its service name"
    assert {"127.0.0.1:*", "localhost:*", "[::1]:*"} <= set(hosts), "the host reaches it on the published loopback"
    services = set(_compose()["services"])
    for backend in config.backends:
        assert urlsplit(backend.url or "").hostname in services, f"{backend.name}: {backend.url} is no service here"
    for name in services:
        assert _service(name)["healthcheck"]["test"], f"{name}: no healthcheck"


@pytest.mark.anyio
async def test_a_request_naming_the_gateway_by_its_service_name_is_served(tmp_path: Path) -> None:
    async def unreachable(config: BackendConfig, *_: Any) -> Any:
        raise Unreachable(f"cannot reach {config.name}")

    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    accept = {"Accept": "application/json, text/event-stream"}
    async with Gateway(_loaded_gateway_config(tmp_path), unreachable) as gateway, http(gateway) as session:
        answers = {}
        for host in ("gateway:8000", "127.0.0.1:8000", "elsewhere.example:8000"):
            answer = await session.post("/mcp", json=initialize, headers={**accept, "Host": host})
            answers[host] = answer.status_code
    assert answers == {"gateway:8000": 200, "127.0.0.1:8000": 200, "elsewhere.example:8000": 421}


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_backend_command_ports_volume_and_healthcheck_agree(name: str) -> None:
    command = _command(name)
    assert command[:3] == ["python", "-m", f"backends.{name}"]
    port = int(_option(command, "--port"))
    args = backend_cli._parser(name, port).parse_args(command[3:])
    assert args.transport == "streamable_http"
    assert args.host == "0.0.0.0", "inside a container a backend must listen beyond loopback for the gateway"
    assert args.port == port
    assert _published(name) == [(LOCAL, port, port)]
    assert _healthcheck_address(name) == (LOCAL, port)

    # The database lives on a named volume declared at the top level, not in the container's layer.
    volumes = {}
    for entry in _service(name)["volumes"]:
        source, target = str(entry).split(":")[:2]
        volumes[target] = source
    assert args.db is not None and args.db.is_absolute()
    mount = next((t for t in volumes if args.db.is_relative_to(t)), None)
    assert mount is not None, f"{name}: --db {args.db} is on no volume ({volumes})"
    assert volumes[mount] in (_compose().get("volumes") or {}), f"{name}: volume {volumes[mount]} is not declared"

    # The only variable a backend reads is its database path, and --db already sets that.
    assert set(_environment(name)) <= {f"{name.upper()}_DB"}


# -- the `scale` profile: nginx, three replicas, Redis -----------------------------------------------------------

SCALE = "scale"
REPLICAS = ["gateway-1", "gateway-2", "gateway-3"]
LOAD_BALANCER = "lb"
REDIS = "redis"
REDIS_PORT = 6379
NGINX_SITE = ROOT / "deploy" / "nginx" / "mcp-gateway.conf"


def _depends(name: str) -> dict[str, str]:
    return {k: v["condition"] for k, v in _service(name)["depends_on"].items()}


def test_the_scale_profile_adds_redis_three_replicas_and_a_load_balancer() -> None:
    profiled = {name: tuple(s["profiles"]) for name, s in _compose()["services"].items() if s.get("profiles")}
    assert profiled == dict.fromkeys([REDIS, *REPLICAS, LOAD_BALANCER], (SCALE,))
    assert _service(REDIS)["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "--port" not in _service(REDIS)["command"], "the replicas expect Redis on its default port"


@pytest.mark.parametrize("name", REPLICAS)
def test_each_replica_is_the_gateway_with_the_shared_redis_behind_the_load_balancer(name: str, tmp_path: Path) -> None:
    gateway, replica = _service(GATEWAY), _service(name)
    assert (replica["image"], replica["build"]) == (gateway["image"], gateway["build"])
    assert _command(name) == _command(GATEWAY)
    assert _environment(name) == _environment(GATEWAY)
    assert _healthcheck_url(name) == _healthcheck_url(GATEWAY)
    assert not _published(name), "clients reach the replicas through the load balancer only"
    assert _depends(name) == dict.fromkeys([*BACKENDS, REDIS], "service_healthy")

    target, content = _gateway_config(name)
    assert target == _gateway_config()[0]
    path = tmp_path / "replica.yaml"
    path.write_text(content, encoding="utf-8")
    config = load_config(path, environ=_environment(name))
    assert config.backends == _loaded_gateway_config(tmp_path).backends
    store = urlsplit(config.security.limits.store.get_secret_value())
    assert (store.scheme, store.hostname, store.port) == ("redis", REDIS, REDIS_PORT)
    http = config.security.http
    assert {LOAD_BALANCER, f"{LOAD_BALANCER}:*"} <= set(http.allowed_hosts), "nginx passes the client's Host through"
    assert http.max_connections_per_client == 0, "every connection comes from nginx's address"


def test_the_load_balancer_runs_the_tested_nginx_site_over_the_three_replicas() -> None:
    compose, lb = _compose(), _service(LOAD_BALANCER)
    [mount] = lb["configs"]
    assert mount["target"] == "/etc/nginx/conf.d/default.conf"
    assert (ROOT / compose["configs"][mount["source"]]["file"]).resolve() == NGINX_SITE

    site = NGINX_SITE.read_text(encoding="utf-8")
    upstream = re.search(r"upstream mcp_gateways \{(.*?)\}", site, re.S)
    assert upstream, "no upstream mcp_gateways in the nginx site"
    servers = re.findall(r"^\s*server (\S+):(\d+) ", upstream.group(1), re.M)
    assert servers == [(name, _option(_command(name), "--port")) for name in REPLICAS]
    assert re.findall(r"proxy_pass http://(\S+);", site) == ["mcp_gateways"] * 3
    [listen] = re.findall(r"^\s*listen (\d+);", site, re.M)
    assert _published(LOAD_BALANCER) == [(LOCAL, int(listen), int(listen))]
    test = lb["healthcheck"]["test"]
    assert test[-1] == f"http://{LOCAL}:{listen}/healthz", test
    assert _depends(LOAD_BALANCER) == dict.fromkeys(REPLICAS, "service_healthy")


# -- the same commands, run here ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCAL, 0))
        return int(sock.getsockname()[1])


@dataclass
class _Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return f"--- {self.name} (exit {self.proc.poll()}) ---\n" + "\n".join(text.splitlines()[-lines:])


@dataclass
class Stack:
    url: str
    ports: dict[str, int]
    ready: dict[str, Any]
    processes: list[_Process]


def _start(name: str, command: list[str], tmp: Path, env: dict[str, str]) -> _Process:
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    return _Process(name, proc, log)


def _stop(process: _Process) -> None:
    proc = process.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def _check_alive(processes: list[_Process]) -> None:
    dead = [p for p in processes if p.proc.poll() is not None]
    if dead:
        pytest.fail("exited early:\n" + "\n".join(p.tail() for p in dead))


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOCAL, port), timeout=1):
            return True
    except OSError:
        return False


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()
    except OSError:
        return 0, b""


def _wait_for(what: str, ok: Any, processes: list[_Process], deadline: float) -> None:
    while not ok():
        _check_alive(processes)
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n" + "\n".join(p.tail() for p in processes))
        time.sleep(POLL_INTERVAL)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("compose")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    ports = {name: _free_port() for name in [*BACKENDS, GATEWAY]}
    processes: list[_Process] = []
    try:
        for name in BACKENDS:
            command = _command(name)
            command = _with_options(command, host=LOCAL, port=str(ports[name]), db=str(tmp / f"{name}.sqlite3"))
            command = [sys.executable, *command[1:]]
            processes.append(_start(name, command, tmp, {**base_env, **_environment(name)}))
        deadline = time.monotonic() + START_DEADLINE
        for name in BACKENDS:
            _wait_for(f"{name} to listen", lambda n=name: _accepts(ports[n]), processes, deadline)

        # The config as the container gets it, with each service's address swapped for its local one.
        target, content = _gateway_config()
        for name in BACKENDS:
            address = f"{name}:{_option(_command(name), '--port')}"
            assert address in content, f"the gateway config does not mention {address}"
            content = content.replace(address, f"{LOCAL}:{ports[name]}")
        config = tmp / "gateway.yaml"
        config.write_text(content, encoding="utf-8")
        env = {**base_env, **_environment(GATEWAY)}
        assert env["GATEWAY_CONFIG"] == target
        env["GATEWAY_CONFIG"] = str(config)
        command = _with_options(_command(GATEWAY), host=LOCAL, port=str(ports[GATEWAY]))
        command = [sys.executable, "-m", "gateway", *command[1:]]
        processes.insert(0, _start(GATEWAY, command, tmp, env))

        base = f"http://{LOCAL}:{ports[GATEWAY]}"
        _wait_for("/readyz to answer 200", lambda: _get(f"{base}/readyz")[0] == 200, processes, deadline)
        status, body = _get(f"{base}/readyz")
        assert status == 200, body
        yield Stack(f"{base}/mcp", ports, json.loads(body), processes)
    finally:
        # Gateway first, so it does not spend its shutdown reconnecting to backends that are already gone.
        for process in processes:
            _stop(process)


def _run_healthcheck(name: str, port: int) -> subprocess.CompletedProcess[bytes]:
    """The service's healthcheck code against ``port``, with the standard library only (-I -S: no site-packages)."""
    code = _healthcheck_code(name)
    container_port = _option(_command(name), "--port")
    assert code.count(container_port) == 1, f"{name}: the healthcheck should name port {container_port} once"
    code = code.replace(container_port, str(port))
    return subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, timeout=15, check=False)


def test_readyz_lists_every_backend_ready_with_tools(stack: Stack) -> None:
    assert stack.ready["status"] == "ready"
    backends = {b["name"]: b for b in stack.ready["backends"]}
    assert set(backends) == set(BACKENDS)
    for name, prefix in BACKENDS.items():
        assert backends[name]["state"] == "ready", backends[name]
        assert backends[name]["prefix"] == prefix
        assert backends[name]["tools"] > 0, backends[name]


def test_healthchecks_pass_on_the_running_services_and_fail_on_a_closed_port(stack: Stack) -> None:
    closed = _free_port()
    for name in [GATEWAY, *BACKENDS]:
        up = _run_healthcheck(name, stack.ports[name])
        assert up.returncode == 0, f"{name}: {shlex.join(up.args)}\n{up.stderr.decode(errors='replace')}"
        down = _run_healthcheck(name, closed)
        assert down.returncode != 0, f"{name}: the healthcheck passes with nothing listening"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_mcp_client_sees_every_backend_through_the_gateway(stack: Stack) -> None:
    async with Client(stack.url, client_info=READER_INFO) as client:
        names: list[str] = []
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor)
            names += [tool.name for tool in page.tools]
            cursor = page.next_cursor
            if not cursor:
                break
        for prefix in BACKENDS.values():
            assert any(n.startswith(f"{prefix}/") for n in names), f"no {prefix}/ tools in {names}"
        assert all(n.split("/", 1)[0] in BACKENDS.values() for n in names), names

        result = await client.call_tool("ops/lookup_inventory", {"sku": "SRV-R740-01"})
        assert not result.is_error, result
        assert result.structured_content is not None, result
        assert result.structured_content["count"] > 0, result.structured_content
