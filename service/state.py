"""The state of one service instance: its models, their pipelines, readiness and the drain.

Created by `service.app.create_app`, loaded and closed by its lifespan; routes reach it
through `request.app.state.service`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import onnx

from service import generator, memory
from service.admission import Admission, DrainRate, MemoryBudget
from service.contract import GeneratorSpec, check_all
from service.errors import Draining, ModelNotFound, NotReady
from service.generator import Generator, ModelError
from service.memory import MB, ImageCost
from service.metrics import Metrics
from service.pipeline import Pipeline
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
    pipeline: Pipeline
    max_batch: int  # GAN_MAX_BATCH, or less where the memory budget or GAN_MAX_RUN_MS demands it
    cost: ImageCost


class ServiceState:
    """Everything one app instance serves with; created by the factory, run by the lifespan."""

    def __init__(
        self, settings: Settings, metrics: Metrics, specs: Sequence[GeneratorSpec] | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.specs = list(specs) if specs is not None else None  # read by gan-serve at start
        self.models: dict[str, ServedModel] = {}
        self.default_model: str | None = None
        self.status = Status.STARTING
        self.reason = "loading models"
        self.budget = MemoryBudget(settings.memory_budget_mb * MB)
        self._drain_deadline: float | None = None
        self._drained = False
        metrics.ready.set(0)

    def set_status(self, status: Status, reason: str = "") -> None:
        self.status, self.reason = status, reason
        self.metrics.ready.set(1 if status is Status.READY else 0)

    @property
    def draining(self) -> bool:
        return self.status is Status.DRAINING

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
        """Load, check, size and warm every model; ready only when all are."""
        s = self.settings
        try:
            specs = self.specs
            if specs is None:  # built in-process (tests): read the files here, once
                paths = generator.discover(s.model_dir, s.model_path)
                if not paths:
                    raise ModelError(f"no *.onnx models in {s.model_dir} (GAN_MODEL_DIR)")
                specs = await asyncio.to_thread(check_all, paths)
            for spec in specs:
                served = await asyncio.to_thread(self._load_one, spec)
                name = spec.name
                self.models[name] = served
                gen = served.generator
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

    def _load_one(self, spec: GeneratorSpec) -> ServedModel:
        """In a thread: open a session, fit its batch to the memory budget and the longest run,
        warm it up."""
        s = self.settings
        path = spec.path
        gen = generator.load(
            path,
            s.providers,
            s.intra_op_threads,
            generator.warmup_sizes(s.max_batch),
            run_slots=s.run_slots,
            spec=spec,
        )
        cost = ImageCost(
            held=memory.held_bytes(spec.image_shape, spec.latent_dim),
            working=memory.working_bytes(onnx.load(str(path)), spec.image_shape),
        )
        max_batch = memory.fit_max_batch(s.max_batch, gen.slots, cost, self.budget.for_requests)
        if max_batch == 0:
            raise ModelError(
                f"{path}: one image needs "
                f"{(memory.run_reserve(1, gen.slots, cost) + cost.held) / MB:.1f} MB "
                f"on {gen.slots} run slots; GAN_MEMORY_BUDGET_MB={s.memory_budget_mb} leaves "
                f"{self.budget.for_requests / MB:.1f} MB"
            )
        if max_batch < s.max_batch:
            log.warning(
                "model %s: max batch lowered from %d to %d to fit GAN_MEMORY_BUDGET_MB=%d "
                "(%.2f MB per image in a run, %d run slots)",
                spec.name,
                s.max_batch,
                max_batch,
                s.memory_budget_mb,
                cost.working / MB,
                gen.slots,
            )
        if s.max_run_ms > 0:
            max_batch = self._fit_run_time(gen, max_batch)
        if max_batch < s.max_batch:
            gen.set_pad_to(generator.warmup_sizes(max_batch))
        self.budget.reserve(memory.run_reserve(max_batch, gen.slots, cost))
        sizes = generator.warmup_sizes(max_batch)
        rate = DrainRate(gen.warm_up(sizes, concurrent=gen.slots) * gen.slots, gen.slots)
        admission = Admission(
            spec.name,
            max_images=s.max_queue,
            held_bytes_per_image=cost.held,
            budget=self.budget,
            rate=rate,
            metrics=self.metrics,
        )
        pipeline = Pipeline(
            gen,
            admission,
            rate,
            self.metrics,
            slots=gen.slots,
            max_batch=max_batch,
            max_delay_s=s.max_delay_ms / 1000,
            timeout_s=s.request_timeout_s,
            grace_s=s.deadline_grace_s,
            admission_wait_s=s.admission_wait_ms / 1000,
        )
        return ServedModel(gen, pipeline, max_batch, cost)

    def _fit_run_time(self, gen: Generator, max_batch: int) -> int:
        """`max_batch`, or less where a run that size would take longer than GAN_MAX_RUN_MS: a
        run whose clients have all gone stops only between two of the model's nodes, so a
        short run frees its slot for live requests quickly (on this CPU with the shipped
        model, for ~7 % of throughput under heavy load: docs/benchmarks.md, "Short runs")."""
        limit_ms = self.settings.max_run_ms
        fitted = gen.largest_batch_within(generator.warmup_sizes(max_batch), limit_ms / 1000)
        if fitted < max_batch:
            log.info(
                "model %s: max batch %d, the largest whose run takes at most GAN_MAX_RUN_MS=%g",
                gen.spec.name,
                fitted,
                limit_ms,
            )
        return fitted

    @property
    def idle(self) -> bool:
        """No admitted request is being built, queued, run, encoded or sent."""
        return all(
            m.pipeline.idle and m.pipeline.admission.images == 0 for m in self.models.values()
        )

    async def drain(self, timeout_s: float) -> bool:
        """Stop taking work at once, then wait for admitted requests to be answered."""
        if self._drain_deadline is None:  # the first call (SIGTERM) sets the one deadline
            log.info("draining: waiting up to %.1f s for admitted requests", timeout_s)
            self.set_status(Status.DRAINING, "shutting down")
            self._drain_deadline = time.monotonic() + timeout_s
        deadline = self._drain_deadline
        while not self.idle:
            if time.monotonic() >= deadline:
                held = sum(m.pipeline.admission.images for m in self.models.values())
                log.warning("drain timed out with %d images of admitted requests unanswered", held)
                return False
            await asyncio.sleep(0.01)
        if not self._drained:
            self._drained = True
            log.info("drained: no request queued, running or being sent")
        return True

    async def close(self) -> None:
        for served in self.models.values():
            await served.pipeline.stop()
