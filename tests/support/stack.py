"""The whole stack on real sockets: the three sample backends and a gateway, as subprocesses on free ports."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import yaml

from tests.support.procs import Processes, free_port, http_get, wait_until

BACKENDS = {"ops": "ops", "hr": "hr", "finance": "fin"}


class Stack:
    """Starts, restarts and addresses the backends and the gateway; ``Processes`` reaps them all."""

    def __init__(self, root: Path, procs: Processes) -> None:
        self.root = root
        self.procs = procs
        self.ports = {name: free_port() for name in BACKENDS}
        self.gateway_port = free_port()
        self.backends: dict[str, subprocess.Popen[bytes]] = {}
        self.gateway: subprocess.Popen[bytes] | None = None
        self.config_path = root / "gateway.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config()))

    def config(self) -> dict[str, object]:
        backends = [
            {"name": name, "prefix": prefix, "url": self.backend_url(name)} for name, prefix in BACKENDS.items()
        ]
        return {"backends": backends, "health_interval": 0.5, "reconnect_min": 0.1, "reconnect_max": 1.0}

    def backend_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}/mcp"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}/mcp"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start_backend(self, name: str) -> None:
        port, db = str(self.ports[name]), str(self.root / f"{name}.sqlite3")
        args = ("-m", f"backends.{name}", "--port", port, "--db", db, "--log-level", "warning")
        self.backends[name] = self.procs.start(*args)

    def stop_backend(self, name: str) -> None:
        self.procs.stop(self.backends.pop(name))

    def stop_backend_hard(self, name: str) -> None:
        self.procs.stop(self.backends.pop(name), signal.SIGKILL)

    def start(self) -> Stack:
        for name in BACKENDS:
            self.start_backend(name)
        args = ("-m", "gateway", "serve", "--config", str(self.config_path), "--port", str(self.gateway_port))
        self.gateway = self.procs.start(*args, "--log-level", "warning")
        self.wait_ready()
        return self

    def wait_ready(self) -> dict[str, object]:
        def ready() -> dict[str, object] | None:
            try:
                status, body = http_get(f"{self.base}/readyz")
            except OSError:
                return None
            return body if status == 200 else None

        result: dict[str, object] = wait_until(ready, what="the gateway to report every backend ready")
        return result

    def backend_state(self, name: str) -> str | None:
        try:
            _, body = http_get(f"{self.base}/readyz")
        except OSError:
            return None
        return next((b["state"] for b in body["backends"] if b["name"] == name), None)
