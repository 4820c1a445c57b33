"""One worker process of a several-worker `gan-serve`: started by the supervisor, never by hand.

    python -m service.workers.worker     # GANSERVE_WORKER_INDEX, GANSERVE_WORKER_STATE set

It reads the same `GAN_*` settings as the supervisor (the service's totals) and serves its
share of them (`share`) on its own `SO_REUSEPORT` socket of the service's port.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

from core import contract
from service import serving
from service.app import create_app
from service.models import files
from service.settings import Settings
from service.workers.shared import Seat, SharedState
from service.workers.supervisor import INDEX_ENV, STATE_ENV, reuseport_socket

_BACKLOG = 2048  # uvicorn's own default


def part(total: int, index: int, workers: int) -> int:
    """Worker `index`'s part of `total` split as evenly as whole numbers allow (the parts add
    up to `total`)."""
    return total // workers + (1 if index < total % workers else 0)


def share(settings: Settings, index: int, workers: int) -> Settings:
    """Worker `index`'s settings: its part of the queue and the memory budget, so that the
    service as a whole keeps the limits it was given (at least one of each).

    The cores are not split: each worker may run as many runs at once as the machine has
    cores, each on one intra-op thread below every event loop's priority, so a lone request
    still spreads over every core (split into one cores' share each, a request of the shipped
    model at c = 1 took 0.62x the throughput of one worker; docs/benchmarks.md, "Worker
    processes"). One-thread runs have no spinning thread pool to oversubscribe the cores."""
    return settings.model_copy(
        update={
            "max_queue": max(1, part(settings.max_queue, index, workers)),
            "memory_budget_mb": max(1, part(settings.memory_budget_mb, index, workers)),
        }
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """This worker's own socket of the one port."""
    sock = reuseport_socket(host, port)
    sock.listen(_BACKLOG)
    return sock


def main() -> int:
    index = int(os.environ[INDEX_ENV])
    shared = SharedState.attach(Path(os.environ[STATE_ENV]))
    total = Settings()
    logging.basicConfig(
        level=total.log_level.upper(),
        format=f"%(asctime)s %(levelname)s worker {index} %(name)s: %(message)s",
    )
    settings = share(total, index, shared.workers)
    specs = contract.check_all(files.discover(settings.model_dir, settings.model_path))
    app = create_app(settings, specs, Seat(shared, index))
    return serving.run(app, settings, [listening_socket(settings.host, settings.port)])


if __name__ == "__main__":
    sys.exit(main())
