"""Reference servers and clients nobody on the team wrote, through the gateway and directly, compared.

Servers (pinned and installed by ``tests.support.interop``): ``mcp-server-time`` and ``mcp-server-git`` from PyPI,
``server-everything``, ``server-memory`` and ``server-filesystem`` from npm. One gateway fronts them all: the
Python ones and memory/filesystem over stdio; server-everything four ways, over stdio with a shared link
(``every``), over stdio with a link per client session (``everypc``), over streamable HTTP (``everyhttp``) and over
legacy SSE (``everysse``), the HTTP ones started beside the gateway. Each interaction is made directly with the
server, then through the gateway, and the two compared. The Python servers speak both eras, so both are tried
directly; the npm servers (TypeScript SDK 1.x) speak only 2025-11-25, so directly only that, while the gateway is
tried from clients of both eras. docs/compatibility.md is the table of what this finds.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters, types

from tests.support import interop
from tests.support.procs import ROOT, Processes, free_port, http_get, listening, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.interop]
MODES = ["legacy", "2026-07-28"]
TIMEZONE = "Europe/Paris"  # mcp-server-time's --local-timezone in tests.support.interop


@dataclass
class Interop:
    gateway: str
    direct: dict[str, Any]  # backend name -> a StdioServerParameters or a URL the test connects to directly
    eras: dict[str, list[str]] = field(default_factory=dict)  # backend name -> eras the server speaks directly
    folder: Path = Path()
    repo: Path = Path()
    tmp: Path = Path()


def _git(repo: Path, *args: str) -> None:
    ident = ["-c", "user.name=Interop", "-c", "user.email=interop@example.invalid", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", *ident, *args], cwd=repo, check=True, capture_output=True, timeout=30)


def _stdio(command: tuple[str, list[str]], env: dict[str, str] | None = None) -> StdioServerParameters:
    program, args = command
    return StdioServerParameters(command=program, args=args, env=env)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Interop]:
    interop.install_all()
    tmp = tmp_path_factory.mktemp("interop")
    repo = tmp / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "tracked.txt").write_text("first\n")
    _git(repo, "add", "tracked.txt")
    _git(repo, "commit", "-q", "-m", "First commit")
    (repo / "tracked.txt").write_text("first\nsecond\n")
    (repo / "untracked.txt").write_text("new\n")
    folder = tmp / "files"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello from a file\n")
    (folder / "sub").mkdir()
    procs = Processes()
    try:
        node, everything = interop.everything_command("streamableHttp")
        http_port, sse_port = free_port(), free_port()
        quiet = {"stdout": subprocess.DEVNULL}
        procs.start_program(node, *everything, env={"PORT": str(http_port)}, **quiet)  # type: ignore[arg-type]
        node, everything_sse = interop.everything_command("sse")
        procs.start_program(node, *everything_sse, env={"PORT": str(sse_port)}, **quiet)  # type: ignore[arg-type]
        wait_until(lambda: listening(http_port) and listening(sse_port), what="server-everything over HTTP")
        http_url, sse_url = f"http://127.0.0.1:{http_port}/mcp", f"http://127.0.0.1:{sse_port}/sse"
        memory_env = {"MEMORY_FILE_PATH": str(tmp / "gateway-memory.jsonl")}
        backends = [
            interop.stdio_backend("time", interop.time_command()),
            interop.stdio_backend("git", interop.git_command(repo)),
            interop.stdio_backend("memory", interop.memory_command(), env=memory_env),
            interop.stdio_backend("files", interop.filesystem_command(folder)),
            interop.stdio_backend("every", interop.everything_command()),
            interop.stdio_backend("everypc", interop.everything_command(), session="per_client"),
            {"name": "everyhttp", "url": http_url, "connect_timeout": 30},
            {"name": "everysse", "transport": "sse", "url": sse_url, "connect_timeout": 30},
        ]
        (tmp / "gateway.json").write_text(json.dumps({"backends": backends, "start_timeout": 60}))
        port = free_port()
        config = str(tmp / "gateway.json")
        with (tmp / "gateway.log").open("wb") as log:
            procs.start("-m", "gateway", "serve", "--config", config, "--port", str(port), stderr=log)
        ready = f"http://127.0.0.1:{port}/readyz"
        wait_until(lambda: listening(port) and http_get(ready)[0] == 200, timeout=90, what="the gateway's backends")
        direct: dict[str, Any] = {
            "time": _stdio(interop.time_command()),
            "git": _stdio(interop.git_command(repo)),
            "memory": _stdio(interop.memory_command(), {"MEMORY_FILE_PATH": str(tmp / "direct-memory.jsonl")}),
            "files": _stdio(interop.filesystem_command(folder)),
            # server-everything's own answers do not depend on its transport; its HTTP instance answers fastest.
            "every": http_url,
            "everypc": http_url,
            "everyhttp": http_url,
            "everysse": http_url,
        }
        eras = {name: (MODES if name in ("time", "git") else ["legacy"]) for name in direct}
        yield Interop(f"http://127.0.0.1:{port}/mcp", direct, eras, folder, repo, tmp)
    finally:
        procs.stop_all()


# -- helpers ---------------------------------------------------------------------------------------------------


async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content.text  # type: ignore[union-attr]
    return types.CreateMessageResult(role="assistant", model="m1", content=types.TextContent(type="text", text=asked))


async def elicitation(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada", "check": True, "color": "red"})


async def roots(context: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///srv/work", name="work")])


CALLBACKS: dict[str, Any] = {"sampling_callback": sampling, "elicitation_callback": elicitation}


def client(target: Any, mode: str, **kwargs: Any) -> Client:
    """A client that declares what the gateway's own backend links declare (sampling, elicitation, roots)."""
    return Client(target, mode=mode, **{"list_roots_callback": roots, **CALLBACKS, **kwargs})  # type: ignore[arg-type]


def dump(item: Any) -> dict[str, Any]:
    """As the client saw it, less the 2026 server stamp (the gateway's own, by design, not the backend's)."""
    seen = dict(item.model_dump(by_alias=True, mode="json", exclude_none=True))
    meta = {k: v for k, v in seen.pop("_meta", {}).items() if k != "io.modelcontextprotocol/serverInfo"}
    return {**seen, "_meta": meta} if meta else seen


def unprefixed(items: list[dict[str, Any]], prefix: str, key: str = "name") -> list[dict[str, Any]]:
    """The gateway's items of one backend, with the backend's own names."""
    mine = [item for item in items if str(item[key]).startswith(prefix)]
    return [{**item, key: str(item[key])[len(prefix) :]} for item in mine]


def text(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    return "\n".join(str(getattr(block, "text", "")) for block in result.content)


def links(world: Interop, backend: str, mode: str) -> list[tuple[Any, str]]:
    """(target, name prefix): the server directly, in the era it speaks, then the gateway in ``mode``, which gives
    this SDK client (``clientInfo`` ``mcp``, the default) the strict names."""
    direct_mode = mode if mode in world.eras[backend] else "legacy"
    return [(world.direct[backend], "", direct_mode), (world.gateway, f"{backend}__", mode)]  # type: ignore[list-item]


# -- every server: tools listed and called -----------------------------------------------------------------------

LISTED = ["time", "git", "memory", "files", "every", "everypc", "everyhttp", "everysse"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", LISTED)
async def test_tools_through_the_gateway_are_the_servers_own_under_its_prefix(
    world: Interop, backend: str, mode: str
) -> None:
    listed = []
    for target, prefix, era in links(world, backend, mode):
        async with client(target, era) as session:
            tools = [dump(tool) for tool in (await session.list_tools()).tools]
        if era != mode:
            # A 2025 tool's task support (``execution``) has no place in the 2026 schema; the SDK drops it.
            tools = [{key: value for key, value in tool.items() if key != "execution"} for tool in tools]
        listed.append(sorted(unprefixed(tools, prefix) if prefix else tools, key=lambda tool: tool["name"]))
    assert listed[0], backend
    assert listed[1] == listed[0]


async def calls(world: Interop, backend: str, mode: str, *steps: tuple[str, dict[str, Any]]) -> list[list[Any]]:
    """The same tool calls directly and through the gateway: for each side, each call's result as the client saw it."""
    seen = []
    # server-filesystem serves the roots a client declares instead of its folder; this one serves its folder.
    no_roots = {"list_roots_callback": None} if backend == "files" else {}
    for target, prefix, era in links(world, backend, mode):
        async with client(target, era, **no_roots) as session:
            results = [await session.call_tool(f"{prefix}{tool}", arguments) for tool, arguments in steps]
        seen.append([dump(result) for result in results])
    return seen


@pytest.mark.parametrize("mode", MODES)
async def test_time_answers_the_same_through_the_gateway(world: Interop, mode: str) -> None:
    now = {"timezone": "America/New_York"}
    convert = {"source_timezone": TIMEZONE, "time": "16:30", "target_timezone": "Asia/Tokyo"}
    direct, gateway = await calls(world, "time", mode, ("get_current_time", now), ("convert_time", convert))
    # The clock moves between the two calls: compare everything but the time itself.
    for result in (direct[0], gateway[0]):
        assert set(result["structuredContent"]) == {"timezone", "datetime", "day_of_week", "is_dst"}
        assert result["structuredContent"]["timezone"] == "America/New_York"
        for key in ("datetime", "day_of_week"):
            result["structuredContent"].pop(key)
        result.pop("content")
    assert gateway == direct
    assert direct[1]["structuredContent"]["source"]["timezone"] == TIMEZONE


@pytest.mark.parametrize("mode", MODES)
async def test_git_reads_the_same_repository_through_the_gateway(world: Interop, mode: str) -> None:
    repo = {"repo_path": str(world.repo)}
    direct, gateway = await calls(world, "git", mode, ("git_status", repo), ("git_diff_unstaged", repo))
    assert gateway == direct
    status, diff = (str(result["content"][0]["text"]) for result in direct)
    assert "untracked.txt" in status and "tracked.txt" in status
    assert "+second" in diff


@pytest.mark.parametrize("mode", MODES)
async def test_memory_keeps_the_same_graph_through_the_gateway(world: Interop, mode: str) -> None:
    name = f"Ada-{mode}"  # each run adds its own entity, so the graphs on both sides grow alike
    entity = {"entities": [{"name": name, "entityType": "person", "observations": ["writes programs"]}]}
    direct, gateway = await calls(
        world,
        "memory",
        mode,
        ("create_entities", entity),
        ("search_nodes", {"query": name}),
        ("open_nodes", {"names": [name]}),
    )
    assert gateway == direct
    assert direct[0]["structuredContent"]["entities"][0]["name"] == name


@pytest.mark.parametrize("mode", MODES)
async def test_filesystem_reads_the_same_folder_through_the_gateway(world: Interop, mode: str) -> None:
    folder = str(world.folder)
    direct, gateway = await calls(
        world,
        "files",
        mode,
        ("list_directory", {"path": folder}),
        ("read_text_file", {"path": f"{folder}/notes.txt"}),
        ("list_allowed_directories", {}),
    )
    assert gateway == direct
    assert "[FILE] notes.txt" in direct[0]["content"][0]["text"]
    assert direct[1]["content"][0]["text"] == "hello from a file\n"


EVERYTHING = ["every", "everypc", "everyhttp", "everysse"]
# A per-client link gives each stateless 2026 request a process of its own; one era keeps the suite quick.
FEATURES = [
    pytest.param(backend, mode, id=f"{backend}-{mode}")
    for backend in EVERYTHING
    for mode in MODES
    if not (backend == "everypc" and mode != "legacy")
]


@pytest.mark.parametrize(("backend", "mode"), FEATURES)
async def test_everything_plain_tools_answer_the_same_through_the_gateway(
    world: Interop, backend: str, mode: str
) -> None:
    direct, gateway = await calls(
        world,
        backend,
        mode,
        ("echo", {"message": "hi there"}),
        ("get-sum", {"a": 2, "b": 40}),
        ("get-structured-content", {"location": "New York"}),
        ("get-annotated-message", {"messageType": "success", "includeImage": True}),
        ("get-tiny-image", {}),
    )
    assert gateway == direct
    assert direct[0]["content"][0]["text"] == "Echo: hi there"


# -- server-everything: the protocol's other features -------------------------------------------------------------


@pytest.mark.parametrize(("backend", "mode"), FEATURES)
async def test_everything_progress_reaches_the_caller(world: Interop, backend: str, mode: str) -> None:
    seen = []
    for target, prefix, era in links(world, backend, mode):
        updates: list[tuple[float, float | None, str | None]] = []

        async def progress(value: float, total: float | None, message: str | None) -> None:
            updates.append((value, total, message))  # noqa: B023 - consumed before the next iteration

        async with client(target, era) as session:
            arguments = {"duration": 0.3, "steps": 3}
            result = await session.call_tool(
                f"{prefix}trigger-long-running-operation", arguments, progress_callback=progress
            )
        assert "Steps: 3" in text(result)
        seen.append(updates)
    assert seen[0] == [(1, 3, None), (2, 3, None), (3, 3, None)]
    assert seen[1] == seen[0]


@pytest.mark.parametrize("backend", ["everypc", "everyhttp"])
async def test_everything_sampling_and_elicitation_reach_a_2025_caller(world: Interop, backend: str) -> None:
    answers = []
    for target, prefix, era in links(world, backend, "legacy"):
        async with client(target, era) as session:
            sampled = await session.call_tool(f"{prefix}trigger-sampling-request", {"prompt": "hello", "maxTokens": 5})
            elicited = await session.call_tool(f"{prefix}trigger-elicitation-request", {})
        answers.append([dump(sampled), dump(elicited)])
    assert "Resource trigger-sampling-request context: hello" in answers[0][0]["content"][0]["text"]
    assert "Ada" in json.dumps(answers[0][1])
    assert answers[1] == answers[0]


@pytest.mark.parametrize("mode", MODES)
async def test_everything_sampling_on_a_shared_stdio_link_is_refused_with_advice(world: Interop, mode: str) -> None:
    async with client(world.gateway, mode) as session:
        result = await session.call_tool("every/trigger-sampling-request", {"prompt": "hello"})
    assert result.is_error
    assert text_of(result) == (
        "MCP error -32600: this backend's link is shared by every client, so its requests cannot be routed to one; "
        "configure the backend with session: per_client"
    )


@pytest.mark.parametrize("backend", ["everypc", "everyhttp"])
async def test_everything_sampling_and_elicitation_reach_a_2026_caller_in_rounds(world: Interop, backend: str) -> None:
    """A 2025 backend pushes its request on the call's stream; a 2026 caller takes no requests mid-call, so the
    gateway answers it with ``input_required`` and carries its retry's answers back (see ``gateway.routing.bridge``)."""
    answers = []
    for target, prefix, era in (*links(world, backend, "legacy")[:1], (world.gateway, f"{backend}__", "2026-07-28")):
        async with client(target, era) as session:
            sampled = await session.call_tool(f"{prefix}trigger-sampling-request", {"prompt": "hello", "maxTokens": 5})
            elicited = await session.call_tool(f"{prefix}trigger-elicitation-request", {})
        answers.append([dump(sampled), dump(elicited)])
    assert "Resource trigger-sampling-request context: hello" in answers[0][0]["content"][0]["text"]
    assert answers[1] == answers[0]


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(str(getattr(block, "text", "")) for block in result.content)


@pytest.mark.parametrize(("backend", "mode"), FEATURES)
async def test_everything_resources_are_listed_rewritten_and_readable(world: Interop, backend: str, mode: str) -> None:
    seen = []
    for target, prefix, era in links(world, backend, mode):
        scheme = f"{backend}+" if prefix else ""
        async with client(target, era) as session:
            listed = [dump(r) for r in (await session.list_resources()).resources]
            templates = [dump(t) for t in (await session.list_resource_templates()).resource_templates]
            mine = sorted(unprefixed(listed, scheme, "uri"), key=lambda r: r["uri"])
            read = [
                dump(await session.read_resource(f"{scheme}{uri}"))
                for uri in (mine[0]["uri"], "demo://resource/dynamic/text/3")
            ]
        seen.append((mine, sorted(unprefixed(templates, scheme, "uriTemplate"), key=lambda t: t["name"]), read))
    assert seen[0][0] and seen[0][1]
    assert seen[1][:2] == seen[0][:2]
    for read in seen[1][2]:
        assert all(content["uri"].startswith(f"{backend}+demo://") for content in read["contents"])
    strip = [[{**c, "uri": c["uri"].removeprefix(f"{backend}+")} for c in r["contents"]] for r in seen[1][2]]
    assert unclocked(strip) == unclocked([r["contents"] for r in seen[0][2]])


def unclocked(value: Any) -> Any:
    """Dynamic resources say when they were made; the two reads are seconds apart."""
    return json.loads(re.sub(r"\d{1,2}:\d{2}:\d{2}( [AP]M)?", "<time>", json.dumps(value)))


@pytest.mark.parametrize(("backend", "mode"), FEATURES)
async def test_everything_prompts_are_listed_and_answer_the_same(world: Interop, backend: str, mode: str) -> None:
    seen = []
    for target, prefix, era in links(world, backend, mode):
        async with client(target, era) as session:
            listed = [dump(p) for p in (await session.list_prompts()).prompts]
            simple = dump(await session.get_prompt(f"{prefix}simple-prompt"))
            args = dump(await session.get_prompt(f"{prefix}args-prompt", {"city": "Paris", "state": "TX"}))
        seen.append((sorted(unprefixed(listed, prefix) if prefix else listed, key=lambda p: p["name"]), simple, args))
    assert seen[0][0]
    assert seen[1] == seen[0]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", ["every", "everyhttp", "everysse"])
async def test_everything_resource_updates_reach_the_subscriber(world: Interop, backend: str, mode: str) -> None:
    """server-everything sends an update of each resource its session subscribed to when that session switches its
    simulated updates on. Through the gateway the subscription is the gateway's (one per resource, on the link), a
    2026 client's included; the update reaches the client that subscribed, under the prefixed URI."""
    async with client(world.direct[backend], "legacy") as session:
        direct_uri = str((await session.list_resources()).resources[0].uri)
    heard = []
    for target, prefix, era in links(world, backend, mode):
        uri = f"{backend}+{direct_uri}" if prefix else direct_uri
        updates: list[str] = []
        arrived = anyio.Event()

        async def handle(message: Any) -> None:
            if isinstance(message, types.ResourceUpdatedNotification):
                updates.append(str(message.params.uri))  # noqa: B023
                arrived.set()  # noqa: B023

        async with client(target, era, message_handler=handle) as session, AsyncExitStack() as stack:
            if era == "legacy":
                await session.subscribe_resource(uri)
            else:
                await stack.enter_async_context(session.listen(resource_subscriptions=[uri]))
            await session.call_tool(f"{prefix}toggle-subscriber-updates", {})
            try:
                with anyio.fail_after(10):
                    await arrived.wait()
            finally:
                await session.call_tool(f"{prefix}toggle-subscriber-updates", {})
        heard.append(updates[0])
    assert heard == [direct_uri, f"{backend}+{direct_uri}"]


@pytest.mark.parametrize("backend", EVERYTHING)
async def test_everything_session_log_messages_cross_the_gateway_only_on_a_session_of_the_clients_own(
    world: Interop, backend: str
) -> None:
    """server-everything logs to the session, not to a request (no related request id). Its first message is sent
    as the toggle runs, so by the end of the calls it has arrived directly. On a link every client shares it
    belongs to no client, so it reaches none through the gateway; on the client's own session (``everypc``) it
    goes to that client's call if that call is still in flight."""
    seen = []
    for target, prefix, era in links(world, backend, "legacy"):
        entries: list[Any] = []

        async def log(params: types.LoggingMessageNotificationParams) -> None:
            # Over HTTP the direct server names its session in the message; over stdio there is none.
            entries.append((params.level, str(params.data).split(" - SessionId")[0]))  # noqa: B023

        async with client(target, era, logging_callback=log) as session:
            await session.call_tool(f"{prefix}toggle-simulated-logging", {})
            await session.call_tool(f"{prefix}echo", {"message": "x"})
            await session.call_tool(f"{prefix}toggle-simulated-logging", {})
        seen.append(entries)
    # The levels are random, so the simulated messages are told by their shape ("Debug-level message", and the
    # server's own "Alert level-message"); a direct session may also hear the server's other messages.
    simulated = [[text for level, text in entries if text.startswith(level.capitalize())] for entries in seen]
    assert simulated[0], seen
    if backend == "everypc":
        # Only a message that arrives while the toggle's call is still in flight can cross, and whether the server
        # writes its first message before or after the call's result is up to its event loop.
        assert simulated[1] == [text for _, text in seen[1]]
    else:
        assert seen[1] == []


# -- the official TypeScript SDK client ------------------------------------------------------------------------


def ts_client(url: str, prefix: str) -> dict[str, Any]:
    script = ROOT / "tests" / "support" / "ts_client.mjs"
    argv = [interop.node(), str(script), str(interop.ts_sdk_modules()), url, prefix]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_typescript_sdk_client_works_through_the_gateway_as_it_does_directly(world: Interop) -> None:
    direct = ts_client(str(world.direct["everyhttp"]), "")
    gateway = ts_client(world.gateway, "everyhttp__")
    assert direct["protocolVersion"] == gateway["protocolVersion"] == "2025-11-25"
    assert gateway["server"]["name"] == "mcp-gateway"
    # server-everything lists the tools a client's capabilities allow; the gateway's link declares more than this
    # client (elicitation, roots), so through the gateway it sees those tools too.
    assert {f"everyhttp__{name}" for name in direct["tools"]} < set(gateway["tools"])
    # The gateway's SDK writes the default ``isError: false`` that the backend leaves out.
    assert gateway["echo"] == {**direct["echo"], "isError": False}
    assert direct["echo"] == {"content": [{"type": "text", "text": "Echo: from ts"}]}
    assert "ts saw: Resource trigger-sampling-request context: hi" in gateway["sampled"]["content"][0]["text"]
    assert gateway["sampled"] == {**direct["sampled"], "isError": False}
    (content,) = gateway["resource"]["contents"]
    assert content["uri"].startswith("everyhttp+demo://resource/static/")
    assert {**content, "uri": content["uri"].removeprefix("everyhttp+")} == direct["resource"]["contents"][0]
    assert gateway["prompt"] == direct["prompt"]
