"""A fork server for the processes the tests start: `python -m <module>` without paying for the imports each time.

Every gateway and backend a test starts spends about a second of CPU importing the SDK, pydantic and the web stack
before it does anything. One zygote per test process imports those once and forks a child per start. The child is
made to look like a fresh `python -m`: its own session, its stdio, cwd, environment, ``sys.path``, ``sys.argv`` and
signal dispositions; the zygote double-forks so that the test process (a child subreaper) becomes its parent, and
the harness drives it through an ordinary ``subprocess.Popen``.

Only the third-party modules are preloaded: the project's own modules, and prometheus_client, keep their state per
process. The SDK imports opentelemetry, which reads ``OTEL_*`` at import, so a start whose ``OTEL_*`` or ``PYTHON*``
variables differ from the zygote's (but for the few a child applies itself, ``EMULATED``) falls back to a plain
``Popen``, like any start that is not `-m` of this Python. ``install()`` makes every ``Popen`` of a test process one
of these, so the stdio backends of the gateways the tests run in process fork too. What a gateway started as a
process starts is as in production: uvicorn runs it on uvloop, whose subprocesses are libuv's, not ``Popen``; and
the demo's backends and ``serve --workers`` are given descriptors and a ``preexec_fn``, and tests read their command
lines and environments in /proc, which a fork would keep from the zygote.
``GATEWAY_TEST_ZYGOTE=0`` turns the zygote off.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib
import io
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import types
from typing import Any, TextIO

PRELOAD = ("mcp", "mcp.server", "mcp.client", "mcp_types", "pydantic", "starlette", "uvicorn", "httpx2", "anyio")
# What a gateway start imports besides: schema validation, YAML, settings, uvicorn's parser, rate limits, SQLite.
PRELOAD_EXTRA = (
    "sse_starlette",
    "jsonschema",
    "referencing",
    "yaml",
    "pydantic_settings",
    "httptools",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.lifespan.on",
    "pyrate_limiter",
    "sqlite3",
)
REPLY_TIMEOUT = 60.0
PR_SET_CHILD_SUBREAPER = 36
MAX_MESSAGE = 1 << 20
# Startup variables a child applies as it starts, so that a start with an environment of its own (the SDK passes a
# stdio server only a few variables) still forks: the search path, stdio's buffering and writing bytecode.
EMULATED = frozenset({"PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})


def enabled() -> bool:
    return os.environ.get("GATEWAY_TEST_ZYGOTE", "1") != "0"


def _startup_env(env: dict[str, str]) -> dict[str, str]:
    """The variables a fresh interpreter reads before it runs anything (or, for opentelemetry, at import), less
    those a child applies itself (``EMULATED``)."""
    return {k: v for k, v in env.items() if k.startswith(("PYTHON", "OTEL_")) and k not in EMULATED}


class Zygote:
    """The test process's end: starts the zygote lazily, asks it for children, stops it at exit."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.env = _startup_env(env)
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.sock.settimeout(REPLY_TIMEOUT)
        atexit.register(self.close)

    def serves(self, env: dict[str, str]) -> bool:
        return _startup_env(env) == self.env

    def spawn(self, request: dict[str, Any], fds: list[int]) -> int:
        """The pid of a new child, already reparented to this process."""
        with self.lock:
            _subreaper(True)
            try:
                socket.send_fds(self.sock, [json.dumps(request).encode()], fds)
                reply = self.sock.recv(MAX_MESSAGE)
            finally:
                _subreaper(False)
        if not reply:
            raise OSError(f"the zygote exited (status {self.proc.poll()})")
        answer = json.loads(reply)
        if "error" in answer:
            raise OSError(answer["error"])
        return int(answer["pid"])

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


_zygote: tuple[int, Zygote] | None = None
_zygote_lock = threading.Lock()


def zygote() -> Zygote:
    """This process's zygote, started on first use (a forked test process gets its own)."""
    global _zygote
    with _zygote_lock:
        if _zygote is None or _zygote[0] != os.getpid():
            _zygote = (os.getpid(), Zygote())
        return _zygote[1]


def install() -> None:
    """Make every start of this process a ``ZygotePopen``, so that what an in-process gateway starts (its stdio
    backends) forks too when it is `python -m` of this Python. The ``Popen`` call is the gateway's own; only how the
    OS makes the process differs."""
    if enabled():
        subprocess.Popen = ZygotePopen  # type: ignore[misc]


def _subreaper(on: bool) -> None:
    """Orphans of this process come to it, not to init, while ``on``: the zygote's grandchildren become ours."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _module_args(args: list[Any]) -> list[str] | None:
    """``[module, *args]`` when ``args`` is `-m <module> ...` of this very Python, else None."""
    if len(args) < 3 or os.fsdecode(args[0]) != sys.executable or args[1] != "-m":
        return None
    if not all(isinstance(arg, str) for arg in args) or args[2].startswith("-"):
        return None
    return [str(arg) for arg in args[2:]]


class ZygotePopen(subprocess.Popen[bytes]):
    """A Popen whose `python -m` child comes from the zygote; any other start is the ordinary fork and exec."""

    def _execute_child(
        self,
        args: Any,
        executable: Any,
        preexec_fn: Any,
        close_fds: bool,
        pass_fds: Any,
        cwd: Any,
        env: Any,
        startupinfo: Any,
        creationflags: int,
        shell: bool,
        p2cread: int,
        p2cwrite: int,
        c2pread: int,
        c2pwrite: int,
        errread: int,
        errwrite: int,
        restore_signals: bool,
        gid: Any,
        gids: Any,
        uid: Any,
        umask: int,
        start_new_session: bool,
        process_group: int,
    ) -> None:
        module_args = None if isinstance(args, (str, bytes, os.PathLike)) else _module_args(list(args))
        full_env = dict(os.environ if env is None else env)
        plain = (
            executable is None
            and not shell
            and preexec_fn is None
            and close_fds
            and not pass_fds
            and restore_signals
            and start_new_session
            and process_group == -1
            and gid is None
            and gids is None
            and uid is None
            and umask < 0
        )
        if not (enabled() and plain and module_args is not None and zygote().serves(full_env)):
            super()._execute_child(  # type: ignore[misc]
                args, executable, preexec_fn, close_fds, pass_fds, cwd, env, startupinfo, creationflags, shell,
                p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite, restore_signals,
                gid, gids, uid, umask, start_new_session, process_group,
            )  # fmt: skip
            return
        sys.audit("subprocess.Popen", sys.executable, args, cwd, env)
        fds = [p2cread if p2cread != -1 else 0, c2pwrite if c2pwrite != -1 else 1, errwrite if errwrite != -1 else 2]
        request = {"argv": module_args, "cwd": os.fspath(cwd or os.getcwd()), "env": full_env}
        self.pid = zygote().spawn(request, fds)
        self._child_created = True
        self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)  # type: ignore[attr-defined]


# The zygote's side, run as `python zygote.py FD`: nothing below imports the project.


def _serve(fd: int) -> None:
    """Fork a child per request until the test process closes its end."""
    base_path = sys.path[1:]
    dispositions = {int(sig): signal.getsignal(sig) for sig in signal.valid_signals() if _settable(sig)}
    for name in PRELOAD + PRELOAD_EXTRA:
        __import__(name)
    assert threading.active_count() == 1, "the zygote must stay single-threaded to fork"
    sock = socket.socket(fileno=fd)
    while True:
        message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 3)
        if not message:
            return
        reply: dict[str, Any]
        try:
            reply = {"pid": _fork(json.loads(message), fds, base_path, dispositions)}
        except OSError as exc:
            reply = {"error": f"zygote: {exc}"}
        finally:
            for received in fds:
                os.close(received)
        sock.send(json.dumps(reply).encode())


def _settable(sig: int) -> bool:
    return sig not in (signal.SIGKILL, signal.SIGSTOP) and signal.getsignal(sig) is not None


def _fork(request: dict[str, Any], fds: list[int], base_path: list[str], dispositions: dict[int, Any]) -> int:
    """Double-fork: the intermediate exits at once, so the grandchild is reparented to the (subreaper) test process."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:
        try:
            gate, gate_held = os.pipe()
            pid = os.fork()
            if pid == 0:
                for fd in (read_end, write_end, gate_held):
                    os.close(fd)
                os.read(gate, 1)  # EOF once the intermediate has exited: the test process is the parent from here on
                _become(request, fds, base_path, dispositions)
            os.write(write_end, str(pid).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        os.waitpid(intermediate, 0)
        written = os.read(read_end, 64)
    finally:
        os.close(read_end)
    if not written:
        raise OSError("fork failed")
    return int(written)


def _become(request: dict[str, Any], fds: list[int], base_path: list[str], dispositions: dict[int, Any]) -> None:
    """Turn this fork into what `python -m MODULE ARGS` would be, run the module, and exit like an interpreter."""
    code = 1
    try:
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in _open_fds():
            if fd > 2:
                _close(fd)
        cwd = request["cwd"]
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(request["env"])
        pythonpath = request["env"].get("PYTHONPATH")  # empty counts as unset, as for the interpreter
        entries = [os.path.abspath(entry) for entry in pythonpath.split(os.pathsep)] if pythonpath else []
        sys.path[:] = [os.getcwd(), *entries, *base_path]
        sys.path_importer_cache.clear()
        importlib.invalidate_caches()
        sys.dont_write_bytecode = bool(request["env"].get("PYTHONDONTWRITEBYTECODE"))
        for sig, handler in dispositions.items():
            signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for fd, name in enumerate(("stdin", "stdout", "stderr")):
            stream = _stdio(fd, "r" if fd == 0 else "w", bool(request["env"].get("PYTHONUNBUFFERED")))
            setattr(sys, name, stream)
            setattr(sys, f"__{name}__", stream)
        module, *args = request["argv"]
        sys.argv = ["-m", *args]
        sys.orig_argv = [sys.executable, "-m", module, *args]
        sys.modules["__main__"] = types.ModuleType("__main__")
        code = _run(module)
    finally:
        os._exit(code)


def _run(module: str) -> int:
    """What `python -m` does with the module, its exit status and the interpreter's shutdown."""
    interrupted = False
    try:
        runpy._run_module_as_main(module)  # type: ignore[attr-defined]
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        interrupted = True
        sys.excepthook(*sys.exc_info())
        code = 1
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream.closed:
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    print(value, file=sys.stderr)
    return 1


def _open_fds() -> list[int]:
    return [int(name) for name in os.listdir("/proc/self/fd")]


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):  # the listing's own descriptor, closed already
        os.close(fd)


def _stdio(fd: int, mode: str, unbuffered: bool) -> TextIO:
    """A standard stream as a fresh interpreter makes it: buffered unless the start's PYTHONUNBUFFERED says not,
    then line-buffered on a terminal, and stderr always."""
    template = sys.__stderr__ if fd == 2 else sys.__stdout__
    assert template is not None
    buffered = mode == "r" or not unbuffered
    raw = io.FileIO(fd, mode, closefd=False)
    buffer: Any = raw
    if buffered:
        buffer = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
    return io.TextIOWrapper(
        buffer,
        encoding=template.encoding,
        errors="backslashreplace" if fd == 2 else template.errors,
        newline="\n",
        line_buffering=not unbuffered and (fd == 2 or raw.isatty()),
        write_through=unbuffered,
    )


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
