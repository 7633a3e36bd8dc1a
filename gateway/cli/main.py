"""``mcp-gateway``: serve over HTTP, serve over stdio, run the demo stack, print the catalogue, ask a running
gateway for its status or change its backends and virtual servers, or verify an audit log.

Flags win over ``GATEWAY_*`` environment variables, which win over defaults. A configuration problem prints one
message naming the file, the field and the problem, and exits with status 2; so does listening beyond loopback
without authentication, unless ``--allow-unauthenticated`` says that is intended. Configured secrets are redacted
from everything the process logs or prints.

What serves is imported by the commands that serve (``_run``, ``_log_format``): ``status``, ``backends``,
``servers`` and ``audit verify`` only speak HTTP or read a file, and start without the MCP SDK, Starlette, uvicorn or
the telemetry libraries.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import anyio
from pydantic import ValidationError

from gateway import __version__
from gateway.catalogue.naming import Style
from gateway.cli import backends, servers
from gateway.cli.listeners import bind
from gateway.cli.status import print_status
from gateway.config import GatewayConfig, LoggingConfig, TracingConfig
from gateway.errors import AuditLogError, ConfigError, PortUnavailable, StartupError
from gateway.security.audit_chain import Anchor, anchor_beside, read_anchor
from gateway.security.audit_key import AuditKey, beside, read_key
from gateway.security.audit_verify import verify
from gateway.security.redaction import Redactor, hide_session_ids
from gateway.settings import Settings, describe_errors, load_config, tracing_from

EXIT_START = 1
EXIT_CONFIG = 2
logger = logging.getLogger("gateway.cli")


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command == "audit":
        raise SystemExit(_verify(args))
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"mcp-gateway: invalid environment\n{describe_errors(exc, 'environment', 'GATEWAY_')}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    if args.command == "status":
        url = args.url or f"http://{_local(settings.host)}:{settings.port}"
        sys.exit(print_status(url, args.json, args.timeout))
    if args.command in ("backends", "servers"):
        command = backends if args.command == "backends" else servers
        sys.exit(command.run(args, args.url or f"http://{_local(settings.host)}:{settings.port}"))
    logging.basicConfig(
        level=(args.log_level or settings.log_level).upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per backend request drowns everything else
    hide_session_ids()
    try:
        config = _with_tracing(_config(args, settings), tracing_from(os.environ))
    except ConfigError as exc:
        print(f"mcp-gateway: invalid configuration\n{exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    redactor = Redactor(config.secret_values())
    config = _log_format(args, settings, config, redactor)
    _check_exposure(args, settings, config)
    try:
        with redactor.logging():
            sys.exit(_run(args, settings, config, argv))
    except PortUnavailable as exc:
        print(f"mcp-gateway: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    except Exception as exc:
        found = _startup_error(exc)
        if found is None:
            raise
        if isinstance(found, ConfigError):
            print(f"mcp-gateway: invalid configuration\n{redactor.text(str(found))}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG) from None
        print(f"mcp-gateway: {redactor.text(str(found))}", file=sys.stderr)
        raise SystemExit(EXIT_START) from None


def _log_format(
    args: argparse.Namespace, settings: Settings, config: GatewayConfig, redactor: Redactor
) -> GatewayConfig:
    """The log format the flag, the environment or the file asks for, ``auto`` settled by whether stderr is a
    terminal; JSON lines from here on when it is ``json``."""
    from gateway.telemetry.access_log import use_json

    chosen = args.log_format or settings.log_format or config.logging.format
    if chosen == "auto":
        chosen = "human" if sys.stderr.isatty() else "json"
    if chosen == "json":
        use_json(redactor.value)
    return config.model_copy(update={"logging": LoggingConfig(format=chosen)})


def _check_exposure(args: argparse.Namespace, settings: Settings, config: GatewayConfig) -> None:
    """Beyond loopback the gateway needs an authentication method, or an explicit, loudly logged opt-out."""
    host = args.host or settings.host
    if args.command not in ("serve", "demo") or config.security.auth.enabled or _loopback(host):
        return
    if not (args.allow_unauthenticated or settings.allow_unauthenticated):
        print(
            f"mcp-gateway: refusing to listen on {host} without authentication: configure security.auth "
            "(api_keys or jwt), listen on 127.0.0.1, or pass --allow-unauthenticated",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_CONFIG)
    logger.warning(
        "AUTHENTICATION IS OFF on %s (--allow-unauthenticated): anyone who can reach this port can call every "
        "tool the policy allows",
        host,
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _verify(args: argparse.Namespace) -> int:
    """``mcp-gateway audit verify FILE``: 0 when intact, 1 naming the first broken line, 2 without a usable key or
    file."""
    path: Path = args.file
    try:
        key = _audit_key(args)
    except AuditLogError as exc:
        print(f"mcp-gateway: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    anchor, anchor_problem = _anchor(args, key)
    try:
        with path.open("rb") as handle:
            verdict = verify(handle, key, anchor)
    except OSError as exc:
        print(f"mcp-gateway: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONFIG
    if anchor is None and anchor_problem is None and verdict.lines and not args.no_anchor:
        anchor_problem = f"no anchor at {args.anchor or anchor_beside(path)} (--no-anchor checks a copy without one)"
    problem = verdict.problem or anchor_problem
    if problem is not None:
        print(f"{path}: TAMPERED: {problem} ({verdict.lines} lines verified before it)", file=sys.stderr)
        return 1
    notes = [f"{verdict.unanchored} after the last checkpoint"] if verdict.unanchored else []
    notes += ["the end was not checked against an anchor"] if args.no_anchor else []
    print(f"{path}: intact, {verdict.lines} lines" + (f" ({'; '.join(notes)})" if notes else ""))
    return 0


def _anchor(args: argparse.Namespace, key: AuditKey) -> tuple[Anchor | None, str | None]:
    """The log's anchor (``None``: there is none), or what is wrong with it (reported if every line verifies)."""
    if args.no_anchor:
        return None, None
    path: Path = args.anchor or anchor_beside(args.file)
    try:
        return read_anchor(path, key), None
    except AuditLogError as exc:
        return None, str(exc)


def _audit_key(args: argparse.Namespace) -> AuditKey:
    """The key ``audit verify`` was given: a file, an environment variable, or the file beside the log."""
    if args.key_env:
        secret = os.environ.get(args.key_env)
        if not secret:
            raise AuditLogError(f"the environment variable {args.key_env} is not set")
        return AuditKey.derive(secret.strip())
    path: Path = args.key_file or beside(args.file)
    if args.key_file is None and not path.exists():
        raise AuditLogError(f"no audit key: {path} does not exist; give --key-file or --key-env")
    return read_key(path)


def _run(args: argparse.Namespace, settings: Settings, config: GatewayConfig, argv: list[str]) -> int:
    from gateway.cli.demo import SAMPLE_BACKENDS, run_demo
    from gateway.cli.running import approve_tools, print_catalog, serve_http, serve_stdio
    from gateway.cli.workers import refusal, serve_workers
    from gateway.operations.reload import ConfigFile

    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    if args.command == "serve":
        workers = args.workers or settings.workers
        if args.worker_fd is None and (problem := refusal(workers, config)):
            print(f"mcp-gateway: {problem}", file=sys.stderr)
            return EXIT_CONFIG
        # A worker serves on the socket its parent bound; the parent of several workers only watches them.
        listener = bind(host, port, "--port") if args.worker_fd is None else socket.socket(fileno=args.worker_fd)
        if args.worker_fd is None and workers > 1:
            serve_workers(workers, listener, argv, config)
            return 0
        path = args.config or settings.config
        source = None if path is None else ConfigFile(path, partial(_config, args, settings))
        # uvloop: the fastest event loop uvicorn supports; anyio creates the loop, so it is chosen here.
        anyio.run(serve_http, config, listener, host, None, source, backend_options={"use_uvloop": True})
    elif args.command == "stdio":
        anyio.run(serve_stdio, config)
    elif args.command == "demo":
        listener = bind(host, port, "--port")
        backends = {
            name: bind(_local(host), getattr(args, f"{name}_port"), f"--{name}-port", f"the {name} backend")
            for name in SAMPLE_BACKENDS
        }
        run_demo(listener, host, backends, Path(args.data_dir), config, args.config or settings.config)
    elif args.approve is not None:
        return anyio.run(approve_tools, config, args.approve)
    else:
        return anyio.run(print_catalog, config, Style(args.style), args.json)
    return 0


def _local(host: str) -> str:
    """Where a gateway listening on ``host`` can be asked from this machine."""
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host


def _startup_error(exc: BaseException) -> StartupError | ConfigError | None:
    """The ``StartupError`` (or the ``ConfigError`` found once the backends listed) behind ``exc``, which task
    groups may have wrapped."""
    if isinstance(exc, StartupError | ConfigError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        return next((found for e in exc.exceptions if (found := _startup_error(e))), None)
    return None


def _config(args: argparse.Namespace, settings: Settings) -> GatewayConfig:
    """The configuration the flags, the environment and the file make (read again on each reload)."""
    path = args.config or settings.config
    if args.command == "demo" and path is None:
        ports = (args.ops_port, args.hr_port, args.finance_port)
        hosts = _local(args.host or "127.0.0.1")
        config = load_config(None, style=args.name_style or settings.name_style, ports=ports, host=hosts)
    else:
        config = load_config(path, style=args.name_style or settings.name_style)
    json_response = args.json_response if args.json_response is not None else settings.json_response
    return config if json_response is None else config.model_copy(update={"json_response": json_response})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-gateway", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"mcp-gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="serve the gateway over streamable HTTP at /mcp")
    stdio = commands.add_parser("stdio", help="serve the gateway on stdin/stdout (for Claude Desktop and IDEs)")
    demo = commands.add_parser("demo", help="start the three sample backends and the gateway on localhost")
    tools = commands.add_parser("tools", help="connect to every backend and print the aggregated catalogue")
    audit_ = commands.add_parser("audit", help="check an audit log: 'audit verify FILE'")
    audit_.add_argument("action", choices=["verify"], help="verify every line's MAC, the chain and the anchor")
    audit_.add_argument("file", type=Path, help="the audit log (JSON lines)")
    keys = audit_.add_mutually_exclusive_group()
    keys.add_argument("--key-file", type=Path, help="the file holding the audit key (default: FILE.key)")
    keys.add_argument("--key-env", metavar="NAME", help="the environment variable holding the audit key")
    anchors = audit_.add_mutually_exclusive_group()
    anchors.add_argument("--anchor", type=Path, help="the log's anchor (default: FILE.anchor)")
    anchors.add_argument("--no-anchor", action="store_true", help="verify without the anchor: an end cut off passes")
    for sub in (serve, stdio, demo, tools):
        sub.add_argument("--config", type=Path, help="YAML config, or an mcpServers JSON file (env GATEWAY_CONFIG)")
        sub.add_argument("--name-style", choices=["auto", "canonical", "strict"], help="force one naming style")
        sub.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default: info")
        sub.add_argument(
            "--log-format",
            choices=["human", "json", "auto"],
            help="json: one JSON object a line and an access line per request; auto: json unless stderr is a terminal "
            "(default human, env GATEWAY_LOG_FORMAT)",
        )
    for sub in (serve, demo):
        sub.add_argument("--host", help="address to listen on (default 127.0.0.1, env GATEWAY_HOST)")
        sub.add_argument("--port", type=int, help="port to listen on (default 8000, env GATEWAY_PORT)")
        sub.add_argument(
            "--json-response",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="answer 2025-era requests with JSON rather than SSE (env GATEWAY_JSON_RESPONSE)",
        )
        sub.add_argument(
            "--allow-unauthenticated",
            action="store_true",
            help="listen beyond loopback with no authentication configured (env GATEWAY_ALLOW_UNAUTHENTICATED)",
        )
    serve.add_argument(
        "--workers",
        type=_positive,
        help="processes serving the port (default 1, env GATEWAY_WORKERS); more than one needs cluster.store",
    )
    serve.add_argument("--worker-fd", type=int, help=argparse.SUPPRESS)  # a worker's socket, from its parent
    for sub in (stdio, tools):
        sub.set_defaults(host=None, port=None, json_response=None, allow_unauthenticated=False)
    for sub in (serve, stdio, demo):
        sub.set_defaults(approve=None)
    demo.add_argument("--ops-port", type=int, default=8001, help="port of the ops backend (default 8001)")
    demo.add_argument("--hr-port", type=int, default=8002, help="port of the hr backend (default 8002)")
    demo.add_argument("--finance-port", type=int, default=8003, help="port of the finance backend (default 8003)")
    demo.add_argument("--data-dir", default=".data", help="where the backends keep their SQLite files")
    tools.add_argument("--style", choices=[s.value for s in Style], default="canonical", help="names to show")
    tools.add_argument("--json", action="store_true", help="print JSON instead of a table")
    tools.add_argument(
        "--approve",
        nargs="*",
        metavar="NAME",
        help="pin the current definition of the named changed tools (all of them when no name is given)",
    )
    status = commands.add_parser("status", help="show a running gateway's backends, their state and breakers")
    status.add_argument("--url", help="the gateway's base URL (default http://GATEWAY_HOST:GATEWAY_PORT)")
    status.add_argument("--json", action="store_true", help="print the status document as JSON")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer (default 5)")
    _backends_parser(commands)
    _servers_parser(commands)
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of processes, at least 1: {text}")
    return int(text)


def _backends_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("backends", help="list, add, remove or reconnect a running gateway's backends")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="each backend's state, breaker, tools and call statistics")
    add = actions.add_parser("add", help="add a backend: a YAML or JSON file with one definition, or flags")
    remove = actions.add_parser("remove", help="remove a backend once its calls in flight are done")
    reconnect = actions.add_parser("reconnect", help="drop a backend's connection and open a new one at once")
    for sub in (listing, add, remove, reconnect):
        sub.add_argument("--url", help="the gateway's base URL (default http://GATEWAY_HOST:GATEWAY_PORT)")
        sub.add_argument("--token", help="a bearer token of a principal with the admin role")
        sub.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for an answer (default 10)")
    for sub in (remove, reconnect):
        sub.add_argument("name", help="the backend's name")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", type=Path, help="a YAML or JSON file holding one backend definition")
    source.add_argument("--name", help="the backend's name (with the flags below, instead of a file)")
    add.add_argument("--prefix", help="the prefix of its names (default: its name)")
    add.add_argument("--transport", choices=["streamable_http", "sse", "stdio"], help="default streamable_http")
    add.add_argument("--backend-url", help="the backend's URL (streamable_http, sse)")
    add.add_argument("--command", dest="command_line", help="the command line, as a shell would split it (stdio)")


def _servers_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("servers", help="list, add or remove a running gateway's virtual servers")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="each virtual server's path, sessions and tools")
    add = actions.add_parser("add", help="add a virtual server, or replace one's definition, from a YAML or JSON file")
    remove = actions.add_parser("remove", help="remove a virtual server: its sessions end")
    for sub in (listing, add, remove):
        sub.add_argument("--url", help="the gateway's base URL (default http://GATEWAY_HOST:GATEWAY_PORT)")
        sub.add_argument("--token", help="a bearer token of a principal with the admin role")
        sub.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for an answer (default 10)")
    for sub in (add, remove):
        sub.add_argument("name", help="the server's name (its path is /servers/NAME/mcp)")
    add.add_argument("file", type=Path, help="a YAML or JSON file: what the config file has under servers.NAME")


if __name__ == "__main__":
    main()


def _with_tracing(config: GatewayConfig, tracing: TracingConfig) -> GatewayConfig:
    """Traces are configured by the standard ``OTEL_*`` variables alone."""
    return config.model_copy(update={"telemetry": config.telemetry.model_copy(update={"tracing": tracing})})
