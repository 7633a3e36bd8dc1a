"""The sockets a command listens on, bound before anything starts.

A port in use is found at once and said in one line, not as a traceback once the backends are connected. Binding
(rather than trying the port and letting go) also keeps it: what answers there later is the process that was handed
the socket, never another one that took the port in between.
"""

from __future__ import annotations

import errno
import socket

from gateway.errors import PortUnavailable


def bind(host: str, port: int, flag: str, owner: str = "") -> socket.socket:
    """A TCP socket bound to ``host``:``port``, not yet listening; ``flag`` is the option that picks another port
    and ``owner`` says whose port it is."""
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    whose = f" ({owner})" if owner else ""
    try:
        # As uvicorn binds: a port whose last connections linger in TIME_WAIT is free to serve again.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            problem = f"port {port} on {host}{whose} is in use; stop the other process or pass {flag}"
        else:
            problem = f"cannot listen on {host}:{port}{whose}: {exc.strerror or exc}"
        raise PortUnavailable(problem) from None
    return sock
