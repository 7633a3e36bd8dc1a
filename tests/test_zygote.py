"""The harness's fork server: a `python -m` child forked from the zygote behaves like a freshly started one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.stdio import get_default_environment

from tests.support.procs import ROOT, Processes, alive, children, wait_until
from tests.support.zygote import ZygotePopen, install

pytestmark = pytest.mark.processes

PROBE = """
import atexit
import json
import os
import signal
import subprocess
import sys


def describe():
    return {
        "preloaded": "pydantic" in sys.modules,
        "parent": os.getppid(),
        "leader": os.getpgid(0) == os.getpid() == os.getsid(0),
        "name": __name__,
        "spec": __spec__.name,
        "argv": sys.argv,
        "orig_argv": sys.orig_argv,
        "path": sys.path,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "flags": list(sys.flags),
        "signals": {int(sig): repr(signal.getsignal(sig)) for sig in signal.valid_signals()},
        "blocked": sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "stdio": [
            (s.fileno(), s.line_buffering, s.write_through, type(s.buffer).__name__, s.encoding, s.errors)
            for s in (sys.stdin, sys.stdout, sys.stderr)
        ],
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd"))[:4],
        "bytecode": sys.dont_write_bytecode,
    }


mode = sys.argv[1]
atexit.register(print, "atexit ran", flush=True)
if mode == "describe":
    print(json.dumps(describe()))
elif mode == "echo":
    sys.stdout.write(sys.stdin.read().upper())
    print("to stderr", file=sys.stderr)
elif mode == "exit":
    sys.exit(int(sys.argv[2]))
elif mode == "message":
    sys.exit("a message")
elif mode == "raise":
    raise ValueError("boom")
elif mode == "wait":
    # Ctrl-C raises KeyboardInterrupt here even in a suite started with SIGINT ignored (a background job of a
    # shell without job control), as a program that handles it sets up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print(helper.pid, flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def probe(tmp_path: Path) -> dict[str, str]:
    """The environment under which `-m zprobe` finds the probe module (through PYTHONPATH, as the harness does)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "zprobe.py").write_text(textwrap.dedent(PROBE))
    return {"PYTHONPATH": str(lib), "ZYGOTE_PROBE": "yes"}


def run(processes: Processes, env: dict[str, str], *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    proc = processes.start(
        "-m", "zprobe", *args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = proc.communicate(stdin, timeout=30)
    return proc.returncode, out.decode(), err.decode()


def describe(processes: Processes, env: dict[str, str]) -> dict[str, Any]:
    code, out, _ = run(processes, env, "describe", "x y")
    assert code == 0
    described: dict[str, Any] = json.loads(out.splitlines()[0])
    described["env"].pop("GATEWAY_TEST_ZYGOTE", None)
    return described


def test_a_forked_child_looks_like_a_fresh_interpreter(
    processes: Processes, probe: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_TEST_ZYGOTE", "1")  # compared even where a developer turned the zygote off
    forked = describe(processes, probe)
    monkeypatch.setenv("GATEWAY_TEST_ZYGOTE", "0")
    fresh = describe(processes, probe)
    assert forked.pop("preloaded") and not fresh.pop("preloaded")
    assert forked == fresh
    assert forked["parent"] == os.getpid()
    assert forked["leader"]
    assert forked["argv"] == [str(Path(probe["PYTHONPATH"]) / "zprobe.py"), "describe", "x y"]
    assert forked["path"][:2] == [str(ROOT), probe["PYTHONPATH"]]
    assert forked["cwd"] == str(ROOT)
    assert forked["env"]["ZYGOTE_PROBE"] == "yes"
    assert forked["fds"] == [0, 1, 2, 3]  # 3 is the listing's own descriptor


def test_a_start_with_its_own_buffering_and_bytecode_settings_forks_and_gets_them(
    processes: Processes, probe: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK starts a stdio server with only a few variables of the environment: without PYTHONUNBUFFERED and
    PYTHONDONTWRITEBYTECODE, whatever the zygote had. The child applies them as a fresh interpreter would."""
    flipped = {name: "" if os.environ.get(name) else "1" for name in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")}
    monkeypatch.setenv("GATEWAY_TEST_ZYGOTE", "1")
    forked = describe(processes, {**probe, **flipped})
    monkeypatch.setenv("GATEWAY_TEST_ZYGOTE", "0")
    fresh = describe(processes, {**probe, **flipped})
    assert forked.pop("preloaded") and not fresh.pop("preloaded")
    forked.pop("flags"), fresh.pop("flags")  # sys.flags stay the zygote's: read-only once an interpreter runs
    assert forked == fresh
    assert forked["bytecode"] == bool(flipped["PYTHONDONTWRITEBYTECODE"])
    assert forked["stdio"][1][2] == bool(flipped["PYTHONUNBUFFERED"])  # stdout writes through when unbuffered


def test_a_stdio_server_started_as_the_sdk_starts_one_forks_once_installed(
    probe: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an in-process gateway's stdio client does: asyncio's subprocess (``Popen`` underneath), a session of
    its own, and only the SDK's few variables of the environment."""
    monkeypatch.setenv("GATEWAY_TEST_ZYGOTE", "1")
    monkeypatch.setattr(subprocess, "Popen", subprocess.Popen)  # put back after the test
    install()
    assert subprocess.Popen is ZygotePopen
    env = {**get_default_environment(), **probe}

    async def start() -> Any:
        command = [sys.executable, "-m", "zprobe", "describe"]
        return await anyio.run_process(command, env=env, cwd=ROOT, start_new_session=True)

    done = anyio.run(start)
    described = json.loads(done.stdout.decode().splitlines()[0])
    assert described["preloaded"] and described["parent"] == os.getpid()
    assert described["env"] == env


@pytest.mark.parametrize(
    ("args", "code", "stderr"),
    [
        (("exit", "0"), 0, ""),
        (("exit", "3"), 3, ""),
        (("message",), 1, "a message\n"),
        (("raise",), 1, "ValueError: boom\n"),
    ],
)
def test_exit_status_and_stderr_are_an_interpreters(
    processes: Processes, probe: dict[str, str], args: tuple[str, ...], code: int, stderr: str
) -> None:
    returned, out, err = run(processes, probe, *args)
    assert (returned, out) == (code, "atexit ran\n")
    assert err.endswith(stderr)


def test_a_missing_module_is_reported_like_python_m(processes: Processes, probe: dict[str, str]) -> None:
    proc = processes.start("-m", "no_such_module_here", env=probe, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.decode().endswith(": No module named no_such_module_here\n")


def test_stdin_stdout_and_stderr_pipes(processes: Processes, probe: dict[str, str]) -> None:
    assert run(processes, probe, "echo", stdin=b"hello\n") == (0, "HELLO\natexit ran\n", "to stderr\n")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_signal_to_the_group_ends_the_child_and_its_own_children(
    processes: Processes, probe: dict[str, str], sig: int
) -> None:
    proc = processes.start("-m", "zprobe", "wait", env=probe, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    helper = int(proc.stdout.readline())
    assert proc.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.1)
    assert processes.stop(proc, sig) == -sig
    assert proc.poll() == -sig
    wait_until(lambda: not alive(helper), timeout=10, what="the child's own child to end")


def test_wait_and_poll_see_a_normal_exit(processes: Processes, probe: dict[str, str]) -> None:
    proc = processes.start("-m", "zprobe", "wait", env=probe, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdout.readline()
    assert proc.poll() is None
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    assert proc.poll() == 0


def test_a_child_never_waited_for_stays_ours_until_stop_all(probe: dict[str, str]) -> None:
    processes = Processes()
    try:
        proc = processes.start("-m", "zprobe", "exit", "5", env=probe, stdout=subprocess.DEVNULL)
        wait_until(lambda: proc.pid in children(os.getpid()) and not alive(proc.pid), what="the child to exit")
    finally:
        processes.stop_all()
    assert proc.returncode == 5
    assert proc.pid not in children(os.getpid())


@pytest.mark.parametrize(
    ("args", "env", "switch"),
    [
        (("-c", "import sys; print('pydantic' in sys.modules)"), {}, "1"),
        (("-I", "-c", "import sys; print('pydantic' in sys.modules)"), {}, "1"),
        (("-m", "zprobe", "describe"), {}, "0"),
        (("-m", "zprobe", "describe"), {"OTEL_SERVICE_NAME": "other"}, "1"),
        (("-m", "zprobe", "describe"), {"PYTHONWARNINGS": "default::ImportWarning"}, "1"),
    ],
)
def test_other_starts_fall_back_to_a_fresh_interpreter(
    processes: Processes,
    probe: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    env: dict[str, str],
    switch: str,
) -> None:
    monkeypatch.setenv("GATEWAY_TEST_ZYGOTE", switch)
    proc = processes.start(*args, env={**probe, **env}, stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    first = out.decode().splitlines()[0]
    assert first == "False" or json.loads(first)["preloaded"] is False
