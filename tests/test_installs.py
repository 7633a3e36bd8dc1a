"""Homes installed side by side from threads of one process all come out whole and runnable."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from uv import find_uv_bin

from bench import installs
from tests.support.procs import ROOT

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


def test_threads_installing_at_once_in_a_fresh_interpreter_all_find_uv() -> None:
    """Python fills sysconfig's variables on first use, unsafely from several threads: a fresh interpreter whose
    first installs start together must still find uv from each (a fork of an interpreter that has read sysconfig
    would not show the race, so this runs a new one)."""
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from bench import installs\n"
        "with ThreadPoolExecutor(8) as pool:\n"
        "    print(sorted(set(pool.map(lambda _: installs._uv(), range(8)))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr([find_uv_bin()])
