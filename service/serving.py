"""Running one app under uvicorn: the connection layer, the drain on SIGTERM, the exit status.

`gan-serve` with one process calls `run` itself; with several, each worker does
(`service.workers.worker`), on its own socket of the one port.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import threading
import time
from collections.abc import Generator, Sequence
from types import FrameType

import uvicorn
from fastapi import FastAPI

from service.http import connections, log_limits
from service.settings import Settings
from service.state import ServiceState

log = logging.getLogger("service")

# After the drain, how long uvicorn may take to finish writing responses and close.
_RESPONSE_GRACE_S = 5
# Signals that drain the service: a terminal's hang-up (SIGHUP) too, which would otherwise end
# the process at once with requests in flight.
DRAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM drains the service before shutting down."""

    def __init__(self, config: uvicorn.Config, state: ServiceState) -> None:
        super().__init__(config)
        self.state = state
        self._draining = False
        self._tasks: set[asyncio.Task[None]] = set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """uvicorn's signals (SIGINT, SIGTERM), and SIGHUP the same way."""
        if threading.current_thread() is not threading.main_thread():  # signals: main only
            with super().capture_signals():
                yield
            return
        previous = signal.signal(signal.SIGHUP, self.handle_exit)
        try:
            with super().capture_signals():
                yield
        finally:
            signal.signal(signal.SIGHUP, previous)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Ctrl-C (SIGINT) and SIGHUP drain like SIGTERM; a second signal of any stops now,
        # unless the drain is over and shutdown under way already (a double Ctrl-C): then
        # forcing it would only cut the lifespan's close short and log a traceback.
        if self._draining and self.should_exit:
            return
        if sig not in DRAIN_SIGNALS or self._draining:
            super().handle_exit(sig, frame)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not serving yet
            super().handle_exit(sig, frame)
            return
        # Not recorded as a captured signal, so uvicorn does not re-raise it: exit status 0.
        self._draining = True
        loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        task = asyncio.get_running_loop().create_task(self._drain_then_exit())
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _drain_then_exit(self) -> None:
        timeout_s = self.state.settings.drain_timeout_s
        deadline = time.monotonic() + timeout_s
        await self.state.drain(timeout_s)
        # The state's drain ends when the last answer is handed to uvicorn; a slow reader's
        # bytes may still wait in its connection's write buffer, lost if the process exits.
        if isinstance(self.config.http, type):
            left = max(0.0, deadline - time.monotonic())
            waiting, unsent = await connections.wait_sent(self.config.http, left)
            if waiting:
                log.warning(
                    "drain timed out with %d answers not sent in full (%d bytes unsent)",
                    waiting,
                    unsent,
                )
            else:
                log.info("every answer sent: its last byte is with the kernel")
        self.should_exit = True


def run(app: FastAPI, settings: Settings, sockets: Sequence[socket.socket] | None = None) -> int:
    """Serve `app` until SIGTERM (drained) or a second Ctrl-C; the exit status. `sockets`:
    listening sockets to serve on instead of binding settings.host:port."""
    # What is alive now (modules, the app) lives as long as the process: frozen, it is out of
    # the cyclic collector's reach, and a full collection while serving no longer walks it
    # with the GIL held (docs/benchmarks.md, "The event loop's share").
    gc.collect()
    gc.freeze()
    # -- reliability (service/http/connections.py): JSON protocol errors, read and keep-alive
    # timeouts, the connection cap (sets uvicorn's `http` protocol: httptools); no event-loop
    # log flood
    connection_layer = connections.uvicorn_options(settings, parser="httptools")
    log_limits.limit_event_loop_errors()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,
        lifespan="on",
        ws="none",
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=_RESPONSE_GRACE_S,
        # TLS without a proxy: HTTPS only on the port (checked at start by the settings)
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
        **connection_layer,
    )
    try:
        DrainingServer(config, app.state.service).run(sockets=list(sockets) if sockets else None)
    except KeyboardInterrupt:  # a second Ctrl-C, or one before serving: stopped, no traceback
        return 130
    return 0
