"""`python -m backends.finance`: serve the finance backend (streamable HTTP on port 8003 by default)."""

from backends._cli import run
from backends.finance.server import build_server

if __name__ == "__main__":
    run("finance", build_server, default_port=8003)
