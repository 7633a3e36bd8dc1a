"""Registry packages installed into homes of their own: a venv per PyPI package, an npm prefix per npm package.

The benchmark's peers and the test suite's reference servers are installed this way, so their own SDK versions
never meet the gateway's. A marker file names what a home holds; a home that holds anything else is made anew.

Several homes may be installed at once from threads of one process. A venv therefore links its interpreter rather
than copying it: a copy is written by this process, and a fork in another thread while it is open for writing keeps
a descriptor to it, so running the new interpreter fails with "Text file busy". A venv gets no pip of its own
either: this interpreter's pip installs into it (``pip --python``), which saves seconds of CPU per home. Nor does
pip compile every module it writes (``--no-compile``): Python compiles those a program imports when it first does,
a fraction of a package as large as ``openai``, and the install's CPU is what the test run waits for.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path


class InstallError(RuntimeError):
    """A package could not be installed; the message says why."""


def install(home: Path, spec: str, language: str, timeout: float) -> Path:
    """``spec`` (``name==version`` for ``python``, ``name@version`` for npm) installed in ``home``, once."""
    marker = home / ".installed"
    if marker.exists() and marker.read_text().strip() == spec:
        return home
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    if language == "python":
        venv.create(home, symlinks=True)
        quiet = ["--quiet", "--disable-pip-version-check", "--no-input", "--no-compile"]
        command = [sys.executable, "-m", "pip", "--python", str(home / "bin" / "python"), "install", *quiet, spec]
    else:
        npm = shutil.which("npm")
        if npm is None:
            raise InstallError(f"installing {spec} needs npm, which is not on PATH")
        command = [npm, "install", "--prefix", str(home), "--no-audit", "--no-fund", "--silent", spec]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise InstallError(f"installing {spec} took longer than {timeout:g} s") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if "WARN" not in line]
        raise InstallError(f"installing {spec} failed: {' '.join(lines[-3:])[:400]}")
    marker.write_text(spec)
    return home
