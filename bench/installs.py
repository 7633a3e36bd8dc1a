"""Registry packages installed into homes of their own: a venv per PyPI package, an npm prefix per npm package.

The benchmark's peers and the test suite's reference servers are installed this way, so their own SDK versions
never meet the gateway's. A marker file names what a home holds; a home that holds anything else is made anew.

PyPI packages go in with uv (pinned in the ``dev`` and ``bench`` extras): a venv from ``uv venv`` and ``uv pip
install`` into it take a fraction of the CPU that ``venv`` and pip take (about 40 s of CPU for the test suite's
reference packages with pip, which the test run waited for). uv links the venv's interpreter rather than copying
it, and several homes may be installed at once from threads of one process: a copy written by this process could
be held open for writing by a fork in another thread, and running it would fail with "Text file busy". Nor does uv
compile what it installs: Python compiles the modules a program imports when it first does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

# sysconfig fills its variables on first use, which is not safe from two threads at once (Python 3.11): finding uv
# reads them, so the threads installing at once take turns.
_UV_LOCK = threading.Lock()


class InstallError(RuntimeError):
    """A package could not be installed; the message says why."""


def install(home: Path, specs: tuple[str, ...], language: str, timeout: float) -> Path:
    """``specs`` (``name==version`` for ``python``, ``name@version`` for npm) installed together in ``home``, once."""
    marker = home / ".installed"
    wanted = " ".join(specs)
    if marker.exists() and marker.read_text().strip() == wanted:
        return home
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    deadline = time.monotonic() + timeout
    if language == "python":
        uv = _uv()
        _run([uv, "venv", "--quiet", "--python", sys.executable, str(home)], wanted, timeout, deadline)
        target = ["--python", str(home / "bin" / "python")]
        _run([uv, "pip", "install", "--quiet", *target, *specs], wanted, timeout, deadline)
    else:
        npm = shutil.which("npm")
        if npm is None:
            raise InstallError(f"installing {wanted} needs npm, which is not on PATH")
        command = [npm, "install", "--prefix", str(home), "--no-audit", "--no-fund", "--silent", *specs]
        _run(command, wanted, timeout, deadline)
    marker.write_text(wanted)
    return home


def _uv() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:
        raise InstallError("installing a PyPI package needs uv: pip install 'mcp-gateway[dev]'") from None
    with _UV_LOCK:
        return find_uv_bin()


def _run(command: list[str], spec: str, timeout: float, deadline: float) -> None:
    """One step of an install, within what is left of the install's ``timeout``."""
    try:
        left = max(deadline - time.monotonic(), 0.0)
        done = subprocess.run(command, capture_output=True, text=True, timeout=left, check=False)
    except subprocess.TimeoutExpired:
        raise InstallError(f"installing {spec} took longer than {timeout:g} s") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if "WARN" not in line]
        raise InstallError(f"installing {spec} failed: {' '.join(lines[-3:])[:400]}")
