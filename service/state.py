"""The readiness of one service instance and its drain.

Created by `service.app.create_app`, loaded and closed by its lifespan. `model(name)` is the
gate every endpoint passes: a service that is starting, failed or draining takes no work.
The models themselves are the catalog's (`service.pipeline.served`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

from core.contract import GeneratorSpec, ModelError
from service.errors import Draining, NotReady
from service.metrics import Metrics
from service.models.loading import read_specs
from service.pipeline.served import Catalog, ServedModel
from service.settings import Settings

log = logging.getLogger("service")


class Peers(Protocol):
    """This process's place among the service's worker processes (`service.workers`)."""

    @property
    def workers(self) -> int: ...
    def mark_ready(self, ready: bool) -> None: ...
    def ready_count(self) -> int: ...


class Status(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    FAILED = "failed"


class ServiceState:
    """Readiness and drain of one app instance; created by the factory, run by the lifespan."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        specs: Sequence[GeneratorSpec] | None = None,
        peers: Peers | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.specs = list(specs) if specs is not None else None  # read by gan-serve at start
        self.peers = peers
        self.catalog = Catalog(settings, metrics)
        self.status = Status.STARTING
        self.reason = "loading models"
        self._drain_deadline: float | None = None
        self._drained = False
        metrics.ready.set(0)

    def set_status(self, status: Status, reason: str = "") -> None:
        self.status, self.reason = status, reason
        self.metrics.ready.set(1 if status is Status.READY else 0)
        self.metrics.workers_ready.set(1 if status is Status.READY else 0)
        if self.peers is not None:
            self.peers.mark_ready(status is Status.READY)

    def readiness(self) -> tuple[Status, str]:
        """What /readyz says: this process's status, unless another worker is not ready."""
        peers = self.peers
        if self.status is Status.READY and peers is not None:
            ready = peers.ready_count()
            if ready < peers.workers:
                return Status.STARTING, f"{ready} of {peers.workers} workers ready"
        return self.status, self.reason

    @property
    def draining(self) -> bool:
        return self.status is Status.DRAINING

    def model(self, name: str | None) -> ServedModel:
        """The model a request asks for (the default one if None), if the service takes work."""
        if self.status is Status.DRAINING:
            raise Draining("service is shutting down")
        if self.status is not Status.READY:
            raise NotReady(f"service is {self.status.value}: {self.reason}")
        return self.catalog.get(name)

    async def load(self) -> None:
        """Load, check, size and warm every model; ready only when all are."""
        try:
            specs = self.specs
            if specs is None:  # built in-process (tests): read the files here, once
                specs = await asyncio.to_thread(read_specs, self.settings)
            await self.catalog.load(specs)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
            log.error("not serving: %s", reason)
            if self.status is Status.STARTING:
                self.set_status(Status.FAILED, reason)
            return
        if self.status is Status.STARTING:
            names = ", ".join(sorted(self.catalog.models))
            log.info("ready: %s (default %s)", names, self.catalog.default)
            self.set_status(Status.READY)

    async def drain(self, timeout_s: float) -> bool:
        """Stop taking work at once, then wait for admitted requests to be answered."""
        if self._drain_deadline is None:  # the first call (SIGTERM) sets the one deadline
            log.info("draining: waiting up to %.1f s for admitted requests", timeout_s)
            self.set_status(Status.DRAINING, "shutting down")
            self._drain_deadline = time.monotonic() + timeout_s
        deadline = self._drain_deadline
        while not self.catalog.idle:
            if time.monotonic() >= deadline:
                held = self.catalog.held_images
                log.warning("drain timed out with %d images of admitted requests unanswered", held)
                return False
            await asyncio.sleep(0.01)
        if not self._drained:
            self._drained = True
            log.info("drained: no request queued, running or being sent")
        return True

    async def close(self) -> None:
        await self.catalog.close()
