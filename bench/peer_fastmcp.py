"""A FastMCP proxy in front of one backend, run inside the FastMCP peer's own environment (imports FastMCP only).

``--reuse`` hands FastMCP one connected client, so every call goes over one backend session; without it FastMCP
does what it does by default, a new backend session for each request.

    python bench/peer_fastmcp.py --backend http://127.0.0.1:9001/mcp --port 9201 [--reuse]
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from fastmcp import Client
from fastmcp.server import create_proxy


async def serve(backend: str, port: int, reuse: bool) -> None:
    if reuse:
        async with Client(backend) as client:
            proxy = create_proxy(client, name="fastmcp-proxy")
            await proxy.run_http_async(show_banner=False, host="127.0.0.1", port=port, log_level="warning")
    else:
        proxy = create_proxy(backend, name="fastmcp-proxy")
        await proxy.run_http_async(show_banner=False, host="127.0.0.1", port=port, log_level="warning")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reuse", action="store_true", help="one backend session shared by every call")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args.backend, args.port, args.reuse))


if __name__ == "__main__":
    main()
