"""Homes installed side by side from threads of one process all come out whole and runnable."""

from __future__ import annotations

import subprocess
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench import installs

pytestmark = pytest.mark.processes

METADATA = "Metadata-Version: 2.1\nName: tiny\nVersion: 1.0\n"
WHEEL = "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def tiny_wheel(folder: Path) -> Path:
    """A one-module wheel, so installing it needs no registry."""
    path = folder / "tiny-1.0-py3-none-any.whl"
    files = {"tiny.py": "ANSWER = 42\n", "tiny-1.0.dist-info/METADATA": METADATA, "tiny-1.0.dist-info/WHEEL": WHEEL}
    record = "".join(f"{name},,\n" for name in [*files, "tiny-1.0.dist-info/RECORD"])
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in {**files, "tiny-1.0.dist-info/RECORD": record}.items():
            wheel.writestr(name, text)
    return path


def test_venvs_created_at_once_from_several_threads_all_run_their_package(tmp_path: Path) -> None:
    spec = str(tiny_wheel(tmp_path))
    homes = [tmp_path / f"home-{n}" for n in range(3)]
    with ThreadPoolExecutor(max_workers=len(homes)) as pool:
        installed = list(pool.map(lambda home: installs.install(home, (spec,), "python", 120), homes))
    assert installed == homes
    for home in homes:
        command = [str(home / "bin" / "python"), "-c", "import tiny; print(tiny.ANSWER)"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
        assert done.stdout.strip() == "42"
        assert (home / ".installed").read_text() == spec
