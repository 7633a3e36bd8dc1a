"""`python -m backends.ops`: serve the ops backend (streamable HTTP on port 8001 by default)."""

from backends._cli import run
from backends.ops.server import build_server

if __name__ == "__main__":
    run("ops", build_server, default_port=8001)
