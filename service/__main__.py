"""`gan-serve` (or `python -m service`): serve the generator ONNX files over HTTP.

    gan-serve --host 0.0.0.0 --port 8000      # settings: GAN_* variables, see docs/service.md

One process, or `GAN_WORKERS` worker processes on the one port under a supervising parent
(`service.workers`). Before uvicorn starts, every model file is checked
against the ONNX contract: no models, or a file that is not a generator, ends the process
with one line on stderr and exit status 2, as does an invalid setting or a port that cannot
be listened on. SIGTERM or Ctrl-C (SIGINT) makes /readyz answer 503 "draining" at once, lets
queued and running requests finish (up to GAN_DRAIN_TIMEOUT_S), then exits 0 without a
traceback (130 if Ctrl-C arrives before the server is up).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from core import contract
from core.console import OneLineParser, error
from service import serving
from service.app import create_app
from service.models import files
from service.settings import Settings
from service.startup import listen_problem, settings_error
from service.workers.supervisor import supervise, worker_count

log = logging.getLogger("service")
_PROG = "gan-serve"


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
    workers = worker_count(settings)
    if workers > 1:
        return supervise(settings, workers, os.environ)
    return serving.run(create_app(settings, specs), settings)


if __name__ == "__main__":
    sys.exit(main())
