"""`gan-serve` (or `python -m service`): serve the generator ONNX files over HTTP.

    gan-serve --host 0.0.0.0 --port 8000      # settings: GAN_* variables, see docs/service.md

One uvicorn worker (scale with replicas). Before uvicorn starts, every model file is checked
against the ONNX contract: no models, or a file that is not a generator, ends the process
with one line on stderr and exit status 2, as does an invalid setting or a port that cannot
be listened on. SIGTERM or Ctrl-C (SIGINT) makes /readyz answer 503 "draining" at once, lets
queued and running requests finish (up to GAN_DRAIN_TIMEOUT_S), then exits 0 without a
traceback (130 if Ctrl-C arrives before the server is up).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

import uvicorn
from pydantic import ValidationError

from core import contract
from core.console import OneLineParser, error
from service.app import create_app
from service.http import connections, log_limits
from service.models import files
from service.settings import Settings
from service.startup import listen_problem, settings_error
from service.state import ServiceState

log = logging.getLogger("service")
_PROG = "gan-serve"

# After the drain, how long uvicorn may take to finish writing responses and close.
_RESPONSE_GRACE_S = 5


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM drains the service before shutting down."""

    def __init__(self, config: uvicorn.Config, state: ServiceState) -> None:
        super().__init__(config)
        self.state = state
        self._draining = False
        self._tasks: set[asyncio.Task[None]] = set()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Ctrl-C (SIGINT) drains like SIGTERM; a second signal of either kind stops now,
        # unless the drain is over and shutdown under way already (a double Ctrl-C): then
        # forcing it would only cut the lifespan's close short and log a traceback.
        if self._draining and self.should_exit:
            return
        if sig not in (signal.SIGTERM, signal.SIGINT) or self._draining:
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
        await self.state.drain(self.state.settings.drain_timeout_s)
        self.should_exit = True


def _parser() -> OneLineParser:
    parser = OneLineParser(
        prog=_PROG,
        description="Serve GAN generator ONNX files over HTTP. Other settings: GAN_* "
        "environment variables (docs/service.md); flags override them.",
    )
    parser.add_argument("--host", help="address to bind (GAN_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (GAN_PORT, default 8000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {key: value for key, value in vars(args).items() if value is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        return error(_PROG, settings_error(exc, overrides))
    if problem := listen_problem(settings, overrides):  # before any model loads or logs
        return error(_PROG, problem)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        paths = files.discover(settings.model_dir, settings.model_path)
        if not paths:
            return error(
                _PROG,
                f"no models: no *.onnx file in {settings.model_dir} "
                "(set GAN_MODEL_DIR or GAN_MODEL_PATH)",
            )
        specs = contract.check_all(paths)  # the one reading of every file (and its name)
    except contract.ModelError as exc:
        return error(_PROG, str(exc))
    app = create_app(settings, specs)
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
        **connection_layer,
    )
    try:
        DrainingServer(config, app.state.service).run()
    except KeyboardInterrupt:  # a second Ctrl-C, or one before serving: stopped, no traceback
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
