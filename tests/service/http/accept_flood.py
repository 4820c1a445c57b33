"""A server that has run out of file descriptors, on asyncio's event loop, for
test_connections.py: `python -m tests.service.accept_flood PORT SECONDS`.

It serves a trivial app through the service's connection layer with the event-loop log
limit installed, then opens files until none is left, prints "exhausted", and keeps serving
(accept failing) for SECONDS before it exits. asyncio logs every failed accept with a
traceback; the test counts what reaches the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import sys
from typing import Any

import uvicorn

from service.http.connections import uvicorn_options
from service.http.log_limits import limit_event_loop_errors
from service.settings import Settings


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def main() -> None:
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
    logging.basicConfig(level=logging.INFO)
    limit_event_loop_errors()
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    options = uvicorn_options(Settings(max_connections=1000))
    config = uvicorn.Config(app, loop="asyncio", lifespan="off", log_level="info", **options)
    server = uvicorn.Server(config)
    held: list[int] = []

    async def exhaust_then_stop() -> None:
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        print("exhausted", flush=True)
        await asyncio.sleep(seconds)
        for fd in held:
            os.close(fd)
        server.should_exit = True

    async def serve() -> None:
        task = asyncio.create_task(exhaust_then_stop())
        await server.serve(sockets=[sock])
        await task

    asyncio.run(serve())


if __name__ == "__main__":
    main()
