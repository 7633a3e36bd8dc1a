"""Three gateway replicas behind a real nginx, sharing one real Redis, in front of the toy backend.

nginx runs the deployed configuration (``deploy/nginx/mcp-gateway.conf``) with its upstream servers, its port and
its log folder swapped for local ones, as the current user with its pid, logs and temporary files in the cluster's
folder. Every process is started through ``Processes`` and reaped with it.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.procs import ROOT, Processes, free_port, http_get, listening, wait_until

NGINX_CONF = ROOT / "deploy" / "nginx" / "mcp-gateway.conf"
REPLICAS = 3
BACKEND = "toy"


SESSION_KEY = "cluster-test-session-key-0123456789abcdef"


def shared_state(redis_url: str) -> dict[str, Any]:
    """The replicas' config sections that point them at the shared Redis: the cluster's store (2025 sessions, the
    bus) with the key that seals session ids, and the rate-limit budget."""
    return {
        "cluster": {"store": redis_url, "session_keys": [SESSION_KEY]},
        "security": {"limits": {"store": redis_url}},
    }


def nginx_config(port: int, upstreams: list[int], folder: Path) -> str:
    """The deployed nginx configuration, run here: one worker, the replicas on ``upstreams``, files in ``folder``."""
    site = NGINX_CONF.read_text(encoding="utf-8")
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in upstreams)
    site, swapped = re.subn(r"(?m)^\s*server gateway-\d+:8000 .*;\n", "", site)
    assert swapped == REPLICAS, "the deployed nginx config should name three replicas"
    site = site.replace("upstream mcp_gateways {\n", "upstream mcp_gateways {\n" + servers)
    site = site.replace("listen 8080;", f"listen 127.0.0.1:{port};").replace("/var/log/nginx/", f"{folder}/")
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    temps = "\n".join(
        f"    {kind}_temp_path {folder}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"daemon off;\nuser {user} {group};\nworker_processes 1;\npid {folder}/nginx.pid;\n"
        f"error_log {folder}/error.log warn;\nevents {{ worker_connections 512; }}\n"
        f"http {{\n{temps}\n{site}\n}}\n"
    )


class Cluster:
    """The toy backend, Redis, three ``mcp-gateway serve`` replicas and nginx; ``url`` is nginx's ``/mcp``."""

    def __init__(self, root: Path, procs: Processes, redis_url: str) -> None:
        self.root = root
        self.procs = procs
        self.redis_url = redis_url
        self.journal = root / "journal.txt"
        self.backend_port = free_port()
        self.ports = [free_port() for _ in range(REPLICAS)]
        self.replicas: list[subprocess.Popen[bytes] | None] = [None] * REPLICAS
        self.lb_port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}/mcp"

    def replica_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}/mcp"

    def start(self) -> Cluster:
        self.journal.touch()
        args = ("--port", str(self.backend_port), "--journal", str(self.journal))
        self.procs.start("-m", "tests.support.toy_server", *args)
        wait_until(lambda: listening(self.backend_port), what="the toy backend to listen")
        config = self.root / "gateway.json"
        config.write_text(json.dumps(self.config()))
        for index in range(REPLICAS):
            self.start_replica(index, config)
        for index in range(REPLICAS):
            self.wait_ready(index)
        self.start_nginx()
        return self

    def config(self) -> dict[str, Any]:
        backend = {"name": BACKEND, "url": f"http://127.0.0.1:{self.backend_port}/mcp", "protocol": "2026-07-28"}
        return {"backends": [backend], "reconnect_min": 0.05, "shutdown_grace": 30, **shared_state(self.redis_url)}

    def start_replica(self, index: int, config: Path) -> None:
        state = self.root / f"state-{index}"
        state.mkdir(exist_ok=True)
        args = ("serve", "--config", str(config), "--port", str(self.ports[index]), "--log-level", "warning")
        self.replicas[index] = self.procs.start("-m", "gateway", *args, env={"XDG_STATE_HOME": str(state)})

    def wait_ready(self, index: int) -> None:
        ready = f"http://127.0.0.1:{self.ports[index]}/readyz"
        wait_until(lambda: listening(self.ports[index]) and http_get(ready)[0] == 200, timeout=60, what=ready)

    def start_nginx(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        assert os.access(binary, os.X_OK), "nginx is not installed; `make test` installs it"
        folder = self.root / "nginx"
        folder.mkdir()
        conf = folder / "nginx.conf"
        conf.write_text(nginx_config(self.lb_port, self.ports, folder))
        errors = folder / "startup.log"
        with errors.open("wb") as out:
            proc = self.procs.start_program(binary, "-p", str(folder), "-c", str(conf), "-e", str(errors), stderr=out)

        def up() -> bool:
            assert proc.poll() is None, f"nginx exited: {errors.read_text()}"
            return listening(self.lb_port)

        wait_until(up, what="nginx to listen")

    def signal(self, index: int, sig: int) -> subprocess.Popen[bytes]:
        """Send ``sig`` to one replica (SIGKILL: at once, no drain; SIGTERM: drain, then exit)."""
        proc = self.replicas[index]
        assert proc is not None and proc.poll() is None, f"replica {index} is not running"
        os.kill(proc.pid, sig)
        return proc

    def kill(self, index: int) -> None:
        self.signal(index, signal.SIGKILL).wait(timeout=10)

    def served(self, requests: int = 0, since: int = 0) -> list[list[int]]:
        """For each request nginx logged after the first ``since``, in order, the replicas it tried (by index; the
        last one answered), once ``requests`` more are logged (nginx logs a request just after its client has the
        answer)."""
        log = self.root / "nginx" / "mcp-gateway.log"

        def lines() -> list[str]:
            return log.read_text(encoding="utf-8").splitlines()

        wait_until(lambda: len(lines()) >= since + requests, what=f"nginx to log {since + requests} requests")
        by_port = {port: index for index, port in enumerate(self.ports)}
        tried = []
        for line in lines()[since:]:
            upstream = re.search(r"upstream=(\S+(?:, \S+)*)", line)
            ports = re.findall(r"127\.0\.0\.1:(\d+)", upstream.group(1)) if upstream else []
            tried.append([by_port[int(p)] for p in ports])
        return tried

    def served_by(self, requests: int = 0, since: int = 0) -> Counter[int]:
        """How many of those requests each replica answered."""
        return Counter(replicas[-1] for replicas in self.served(requests, since) if replicas)
