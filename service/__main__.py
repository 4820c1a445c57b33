"""`gan-serve` (or `python -m service`): serve the generator ONNX files over HTTP.

    gan-serve --host 0.0.0.0 --port 8000      # settings: GAN_* variables, see docs/service.md

One uvicorn worker (scale with replicas). Before uvicorn starts, every model file is checked
against the ONNX contract: no models, or a file that is not a generator, ends the process
with one line on stderr and exit status 2. SIGTERM makes /readyz answer 503 "draining" at
once, lets queued and running requests finish (up to GAN_DRAIN_TIMEOUT_S), then exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

import uvicorn
from pydantic import ValidationError

from service import generator
from service.app import create_app
from service.settings import Settings
from service.state import ServiceState

log = logging.getLogger("service")

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
        if sig != signal.SIGTERM or self._draining:
            super().handle_exit(sig, frame)  # SIGINT, or a second SIGTERM: stop now
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gan-serve",
        description="Serve GAN generator ONNX files over HTTP. Other settings: GAN_* "
        "environment variables (docs/service.md); flags override them.",
    )
    parser.add_argument("--host", help="address to bind (GAN_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (GAN_PORT, default 8000)")
    return parser


def _one_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return (
        f"invalid setting GAN_{where.upper()}: {message}"
        if where
        else f"invalid settings: {message}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {key: value for key, value in vars(args).items() if value is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"gan-serve: {_one_line(exc)}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        paths = generator.discover(settings.model_dir, settings.model_path)
        if not paths:
            print(
                f"gan-serve: no models: no *.onnx file in {settings.model_dir} "
                "(set GAN_MODEL_DIR or GAN_MODEL_PATH)",
                file=sys.stderr,
            )
            return 2
        generator.check_all(paths)
    except generator.ModelError as exc:
        print(f"gan-serve: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings)
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
    )
    DrainingServer(config, app.state.service).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
