"""The lanes stay honest: a test that starts a process fails unless it carries the ``processes`` mark."""

from __future__ import annotations

import pytest

from tests.support.procs import ROOT

pytestmark = pytest.mark.processes

TESTS = """
import subprocess
import sys

import pytest


def test_in_process():
    assert sum([1, 2]) == 3


def test_starts_a_process_unmarked():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


@pytest.mark.processes
def test_starts_a_process_marked():
    subprocess.run([sys.executable, "-c", "pass"], check=True)
"""


def test_only_an_unmarked_test_that_starts_a_process_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeini("[pytest]\nmarkers = processes: starts processes\n")
    pytester.makeconftest('pytest_plugins = ["tests.support.lanes"]')
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=3, errors=1)
    unmarked = "*ERROR at teardown of test_starts_a_process_unmarked*"
    result.stdout.fnmatch_lines([unmarked, "started a process without the `processes` mark*"])
