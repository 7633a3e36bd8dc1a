"""The load generator: raw JSON-RPC over HTTP/1.1 keep-alive, one connection per virtual client, loopback only.

A 2025-era virtual client does one handshake (``initialize``, then ``notifications/initialized``) and repeats its
request in that session; a 2026-era one sends stateless requests carrying the version in a header and in
``_meta``. Answers may be plain JSON or an SSE stream; both are parsed. A run is closed-loop (each client sends its
next request when the last one is answered) or paced to a total rate, and always bounded by a request count and
a duration. Latency is taken per request; the generator's own CPU time over the measured window is reported so
it can be checked that it does not dominate the machine.

    python -m bench.loadgen --url http://127.0.0.1:8000/mcp --era 2025 --tool echo -c 8 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

ERA_2025 = "2025"
ERA_2026 = "2026"
VERSION_2025 = "2025-11-25"
VERSION_2026 = "2026-07-28"
_READ_LIMIT = 4 * 1024 * 1024  # large reads without flow-control round trips (1 MB results)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
CLIENT_INFO = {"name": "bench-loadgen", "version": "1.0"}
_META_2026 = {
    "io.modelcontextprotocol/protocolVersion": VERSION_2026,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
}


class RpcError(Exception):
    """The server answered with an HTTP error, a JSON-RPC error or something unreadable."""


@dataclass(frozen=True)
class Endpoint:
    """An MCP endpoint on this machine."""

    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme != "http" or host not in LOOPBACK or parts.port is None:
            raise ValueError(f"the load generator only targets http://<loopback>:<port>/..., not {url!r}")
        return cls(host, parts.port, parts.path or "/")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    """One HTTP/1.1 keep-alive connection; reopened transparently when the server closes it."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._host_header = f"{endpoint.host}:{endpoint.port}"

    async def request(self, method: str, headers: dict[str, str], body: bytes = b"") -> Response:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self._endpoint.host, self._endpoint.port, limit=_READ_LIMIT
            )
        assert self._reader is not None and self._writer is not None
        lines = [f"{method} {self._endpoint.path} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        try:
            response = await _read_response(self._reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            raise
        if response.headers.get("connection", "").lower() == "close":
            await self.close()
        return response

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _read_response(reader: asyncio.StreamReader) -> Response:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            chunks.append((await reader.readexactly(size + 2))[:-2])
        body = b"".join(chunks)
    else:
        body = b""
    return Response(status, headers, body)


def messages(response: Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages in a response body: one JSON document, or the ``data`` of each SSE event."""
    content_type = response.headers.get("content-type", "")
    if not response.body:
        return []
    if content_type.startswith("text/event-stream"):
        return [json.loads(data) for data in _sse_data(response.body)]
    loaded = json.loads(response.body)
    return loaded if isinstance(loaded, list) else [loaded]


def _sse_data(body: bytes) -> list[bytes]:
    """The ``data`` of each event in an SSE body, without copying the (possibly 1 MB) body more than once."""
    events: list[bytes] = []
    current: list[bytes] = []
    pos, size = 0, len(body)
    while pos <= size:
        end = body.find(b"\n", pos)
        end = size if end < 0 else end
        line = body[pos:end]
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            if current and any(part.strip() for part in current):
                events.append(b"\n".join(current))
            current = []
        elif line.startswith(b"data:"):
            current.append(line[6:] if line.startswith(b"data: ") else line[5:])
        pos = end + 1
    if current and any(part.strip() for part in current):
        events.append(b"\n".join(current))
    return events


class McpClient:
    """One virtual MCP client of either era on its own connection."""

    def __init__(self, endpoint: Endpoint, era: str) -> None:
        if era not in (ERA_2025, ERA_2026):
            raise ValueError(f"era must be {ERA_2025} or {ERA_2026}")
        self.era = era
        self.connection = Connection(endpoint)
        self.session_id: str | None = None
        self.version = VERSION_2025 if era == ERA_2025 else VERSION_2026
        self._next_id = 0

    def _headers(self, method: str, name: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.era == ERA_2026:
            headers["MCP-Protocol-Version"] = VERSION_2026
            headers["Mcp-Method"] = method
            if name is not None:
                headers["Mcp-Name"] = name
        elif self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
            headers["MCP-Protocol-Version"] = self.version
        return headers

    async def open(self) -> None:
        """The 2025 handshake (nothing to do at 2026)."""
        if self.era == ERA_2026:
            return
        params = {"protocolVersion": VERSION_2025, "capabilities": {}, "clientInfo": CLIENT_INFO}
        response = await self._post("initialize", params, None)
        self.session_id = response.headers.get("mcp-session-id")
        result = _answer(response, 0)
        self.version = str(result.get("protocolVersion", VERSION_2025))
        note = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
        ack = await self.connection.request("POST", self._headers("notifications/initialized", None), note)
        if ack.status >= 300:
            raise RpcError(f"notifications/initialized: HTTP {ack.status}")

    async def call(self, method: str, params: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        """Send one request and return its result."""
        self._next_id += 1
        return _answer(await self._post(method, params, name), self._next_id)

    async def call_timed(self, method: str, params: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """``call``, and the seconds until the whole answer was in (this client's own JSON decoding excluded)."""
        self._next_id += 1
        started = time.perf_counter()
        response = await self._post(method, params, None)
        received = time.perf_counter() - started
        return _answer(response, self._next_id), received

    async def call_tool(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.call("tools/call", {"name": tool, "arguments": arguments}, tool)
        if result.get("isError"):
            raise RpcError(f"tool error: {str(result.get('content'))[:200]}")
        return result

    async def _post(self, method: str, params: dict[str, Any], name: str | None) -> Response:
        if self.era == ERA_2026:
            params = {**params, "_meta": _META_2026}
        body = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        return await self.connection.request("POST", self._headers(method, name), json.dumps(body).encode())

    async def close(self) -> None:
        """End the 2025 session (bounded) and the connection."""
        if self.session_id is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.connection.request("DELETE", self._headers("", None)), 2.0)
            self.session_id = None
        await self.connection.close()


def _answer(response: Response, request_id: int) -> dict[str, Any]:
    if response.status != 200:
        raise RpcError(f"HTTP {response.status}: {response.body[:200]!r}")
    for message in messages(response):
        if message.get("id") == request_id:
            if "error" in message:
                raise RpcError(f"JSON-RPC error {message['error']}")
            result: dict[str, Any] = message.get("result", {})
            return result
    raise RpcError(f"no answer to request {request_id} in {response.body[:200]!r}")


@dataclass
class Load:
    """What to send, how hard, and for how long."""

    url: str
    era: str
    method: str = "tools/call"
    tool: str = "echo"
    arguments: dict[str, Any] = field(default_factory=lambda: {"text": "hello"})
    concurrency: int = 1
    duration: float = 5.0
    max_requests: int = 1_000_000
    warmup: float = 0.5
    timeout: float = 30.0
    rate: float | None = None  # total requests per second across clients; None = as fast as answered


@dataclass
class LoadResult:
    """One measured window."""

    completed: int
    errors: int
    elapsed: float
    latencies: list[float]
    loadgen_cpu: float
    probes: tuple[Any, Any] = (None, None)
    error_samples: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0


class _Window:
    """The measured window: opened after the warm-up, closed by time or by count."""

    def __init__(self, load: Load, probe: Callable[[], Any]) -> None:
        self.load = load
        self.probe = probe
        self.measuring = False
        self.stopped = asyncio.Event()
        self.latencies: list[float] = []
        self.errors = 0
        self.error_samples: list[str] = []
        self.start = self.end = 0.0
        self.cpu_start = self.cpu_end = 0.0
        self.probe_start: Any = None
        self.probe_end: Any = None

    def open(self) -> None:
        self.probe_start = self.probe()
        self.cpu_start = time.process_time()
        self.start = time.perf_counter()
        self.measuring = True

    def close(self) -> None:
        if not self.measuring:
            return
        self.end = time.perf_counter()
        self.cpu_end = time.process_time()
        self.probe_end = self.probe()
        self.measuring = False
        self.stopped.set()

    def record(self, latency: float | None, error: str | None = None) -> None:
        if not self.measuring:
            return
        if error is not None:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(error)
        else:
            assert latency is not None
            self.latencies.append(latency)
        if len(self.latencies) + self.errors >= self.load.max_requests:
            self.close()


async def run_load(load: Load, probe: Callable[[], Any] = lambda: None) -> LoadResult:
    """Open the clients, warm up, measure one window, and close everything; every wait is bounded.

    ``probe`` is called when the window opens and when it closes (the caller samples server CPU there).
    """
    endpoint = Endpoint.parse(load.url)
    clients = [McpClient(endpoint, load.era) for _ in range(load.concurrency)]
    window = _Window(load, probe)
    try:
        # Handshakes are not measured; a peer that starts a process per session needs time for 32 of them.
        handshakes = load.timeout + 2.0 * load.concurrency
        await asyncio.wait_for(asyncio.gather(*(c.open() for c in clients)), handshakes)
        tasks = [asyncio.create_task(_drive(c, load, window, i)) for i, c in enumerate(clients)]
        await asyncio.sleep(load.warmup)
        window.open()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(window.stopped.wait(), load.duration)
        window.close()
        _, pending = await asyncio.wait(tasks, timeout=load.timeout + 1)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return LoadResult(
        completed=len(window.latencies),
        errors=window.errors,
        elapsed=window.end - window.start,
        latencies=window.latencies,
        loadgen_cpu=window.cpu_end - window.cpu_start,
        probes=(window.probe_start, window.probe_end),
        error_samples=window.error_samples,
    )


async def _drive(client: McpClient, load: Load, window: _Window, index: int) -> None:
    interval = load.concurrency / load.rate if load.rate else 0.0
    next_at = time.perf_counter() + interval * index / max(load.concurrency, 1)
    while not window.stopped.is_set():
        if interval:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at = max(next_at + interval, time.perf_counter() - interval)
            if window.stopped.is_set():
                return
        started = time.perf_counter()
        try:
            if load.method == "tools/call":
                await asyncio.wait_for(client.call_tool(load.tool, load.arguments), load.timeout)
            else:
                await asyncio.wait_for(client.call(load.method, {}), load.timeout)
        except (RpcError, OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            window.record(None, f"{type(exc).__name__}: {exc}"[:300])
            await client.connection.close()
            continue
        window.record(time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Drive an MCP endpoint on loopback and print what it sustained.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--era", choices=[ERA_2025, ERA_2026], default=ERA_2025)
    parser.add_argument("--method", default="tools/call")
    parser.add_argument("--tool", default="echo")
    parser.add_argument("--arguments", default='{"text": "hello"}', help="JSON object")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-n", "--max-requests", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rate", type=float, default=None)
    args = parser.parse_args(argv)
    load = Load(
        url=args.url,
        era=args.era,
        method=args.method,
        tool=args.tool,
        arguments=json.loads(args.arguments),
        concurrency=args.concurrency,
        duration=args.duration,
        max_requests=args.max_requests,
        warmup=args.warmup,
        rate=args.rate,
    )
    result = asyncio.run(run_load(load))
    ms = [v * 1000 for v in result.latencies]
    summary = {
        "requests": result.completed,
        "errors": result.errors,
        "req_per_s": round(result.throughput, 1),
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "loadgen_cpu_ms_per_req": round(1000 * result.loadgen_cpu / max(result.completed, 1), 3),
        "error_samples": result.error_samples,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
