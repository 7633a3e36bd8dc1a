"""What the command line's child processes share: dying with their parent, and their exit said in words."""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: the child gets SIGTERM if its parent dies without stopping it (SIGKILL); a no-op elsewhere. Run
    between fork and exec (``preexec_fn``)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def exit_status(status: int) -> str:
    """A child's exit as ``Popen`` reports it, in words: ``exited with status 1``, ``was killed by SIGKILL``."""
    if status >= 0:
        return f"exited with status {status}"
    try:
        return f"was killed by {signal.Signals(-status).name}"
    except ValueError:
        return f"was killed by signal {-status}"
