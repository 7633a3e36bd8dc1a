"""`python -m backends.hr`: serve the hr backend (streamable HTTP on port 8002 by default)."""

from backends._cli import run
from backends.hr.server import build_server

if __name__ == "__main__":
    run("hr", build_server, default_port=8002)
