"""The state of one service instance: its models, their batchers, readiness and workers.

Created by `service.app.create_app`, loaded and closed by its lifespan; routes reach it
through `request.app.state.service`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from service import generator
from service.batcher import ModelBatcher
from service.errors import Draining, ModelNotFound, NotReady
from service.generator import Generator, ModelError
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("service")


class Status(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    FAILED = "failed"


@dataclass
class ServedModel:
    generator: Generator
    batcher: ModelBatcher


class ServiceState:
    """Everything one app instance serves with; created by the factory, run by the lifespan."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.models: dict[str, ServedModel] = {}
        self.default_model: str | None = None
        self.status = Status.STARTING
        self.reason = "loading models"
        self.active = 0  # /samples requests being answered
        self._drain_deadline: float | None = None
        self._drained = False
        self.workers = ThreadPoolExecutor(settings.encode_threads, thread_name_prefix="encode")
        metrics.ready.set(0)

    def set_status(self, status: Status, reason: str = "") -> None:
        self.status, self.reason = status, reason
        self.metrics.ready.set(1 if status is Status.READY else 0)

    def model(self, name: str | None) -> ServedModel:
        """The model a request asks for (the default one if None), if the service takes work."""
        if self.status is Status.DRAINING:
            raise Draining("service is shutting down")
        if self.status is not Status.READY:
            raise NotReady(f"service is {self.status.value}: {self.reason}")
        key = name if name is not None else self.default_model
        if key not in self.models:
            raise ModelNotFound(
                f"unknown model {name!r}; served: {', '.join(sorted(self.models))}", field="model"
            )
        return self.models[key]

    async def load(self) -> None:
        """Load, check and warm every model; ready only when all are."""
        s = self.settings
        sizes = generator.warmup_sizes(s.max_batch)
        try:
            paths = generator.discover(s.model_dir, s.model_path)
            if not paths:
                raise ModelError(f"no *.onnx models in {s.model_dir} (GAN_MODEL_DIR)")
            for path in paths:
                gen = await asyncio.to_thread(
                    generator.load, path, s.providers, s.intra_op_threads, sizes
                )
                name = gen.spec.name
                if name in self.models:
                    other = self.models[name].generator.spec.path
                    raise ModelError(f"{path}: model name {name!r} is also the name of {other}")
                rate = await asyncio.to_thread(gen.warm_up, sizes)
                batcher = ModelBatcher(
                    gen,
                    self.metrics,
                    max_batch=s.max_batch,
                    max_delay_s=s.max_delay_ms / 1000,
                    max_queue=s.max_queue,
                    images_per_s=rate,
                )
                batcher.start()
                self.models[name] = ServedModel(gen, batcher)
                self.metrics.add_model(name, gen.spec.sha256, gen.provider, gen.fallback)
            if s.default_model is not None and s.default_model not in self.models:
                raise ModelError(
                    f"GAN_DEFAULT_MODEL={s.default_model!r} is not served; "
                    f"served: {', '.join(sorted(self.models))}"
                )
            self.default_model = s.default_model or min(self.models)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
            log.error("not serving: %s", reason)
            if self.status is Status.STARTING:
                self.set_status(Status.FAILED, reason)
            return
        if self.status is Status.STARTING:
            log.info("ready: %s (default %s)", ", ".join(sorted(self.models)), self.default_model)
            self.set_status(Status.READY)

    async def drain(self, timeout_s: float) -> bool:
        """Stop taking work at once, then wait for queued and running requests to finish."""
        if self._drain_deadline is None:  # the first call (SIGTERM) sets the one deadline
            log.info("draining: waiting up to %.1f s for queued and running requests", timeout_s)
            self.set_status(Status.DRAINING, "shutting down")
            self._drain_deadline = time.monotonic() + timeout_s
        deadline = self._drain_deadline
        while self.active or not all(m.batcher.idle for m in self.models.values()):
            if time.monotonic() >= deadline:
                log.warning("drain timed out with %d requests unanswered", self.active)
                return False
            await asyncio.sleep(0.02)
        if not self._drained:
            self._drained = True
            log.info("drained: no request queued or running")
        return True

    async def close(self) -> None:
        for served in self.models.values():
            await served.batcher.stop()
        self.workers.shutdown(wait=False, cancel_futures=True)
