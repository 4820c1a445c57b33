"""The served models: each loaded model with its admission and pipeline, found by name.

`Catalog.load(specs)` loads every model in turn (`service.models.loading`), each one's runs
taking their reserve from the one memory budget before the next is sized, and wires its
admission (images and bytes) and its pipeline. `Catalog.get(name)` is the lookup every
endpoint uses; `service.state` gates it by readiness.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from core.contract import GeneratorSpec, ModelError
from service.errors import ModelNotFound
from service.metrics import Metrics
from service.models.generator import Generator
from service.models.loading import LoadedModel, load_model
from service.models.memory import MB, ImageCost
from service.pipeline.admission import Admission, DrainRate, MemoryBudget
from service.pipeline.jobs import Schedule
from service.pipeline.scheduler import Pipeline
from service.settings import Settings


@dataclass(frozen=True)
class ServedModel:
    """One model as served: the session and the pipeline in front of it."""

    pipeline: Pipeline
    cost: ImageCost

    @property
    def generator(self) -> Generator:
        return self.pipeline.generator

    @property
    def spec(self) -> GeneratorSpec:
        return self.pipeline.generator.spec


def serve(
    loaded: LoadedModel, settings: Settings, budget: MemoryBudget, metrics: Metrics
) -> ServedModel:
    """The admission and pipeline of one loaded model (its run reserve already taken)."""
    s, gen = settings, loaded.generator
    rate = DrainRate(loaded.images_per_s, gen.slots)
    admission = Admission(
        gen.spec.name,
        max_images=s.max_queue,
        held_bytes_per_image=loaded.cost.held,
        budget=budget,
        rate=rate,
        metrics=metrics,
    )
    schedule = Schedule(
        slots=gen.slots,
        max_batch=loaded.max_batch,
        max_delay_s=s.max_delay_ms / 1000,
        timeout_s=s.request_timeout_s,
        grace_s=s.deadline_grace_s,
        admission_wait_s=s.admission_wait_ms / 1000,
    )
    pipeline = Pipeline(gen, admission, rate, metrics, schedule)
    return ServedModel(pipeline, loaded.cost)


class Catalog:
    """Every served model by name, and the default one."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.budget = MemoryBudget(settings.memory_budget_mb * MB)
        self.models: dict[str, ServedModel] = {}
        self.default: str | None = None

    async def load(self, specs: Sequence[GeneratorSpec]) -> None:
        """Load, size and warm each model (in a thread: runs take long), then pick the default."""
        for spec in specs:
            loaded = await asyncio.to_thread(
                load_model, spec, self.settings, self.budget.for_requests
            )
            self.budget.reserve(loaded.reserve_bytes)
            self.models[spec.name] = serve(loaded, self.settings, self.budget, self.metrics)
            gen = loaded.generator
            self.metrics.add_model(spec.name, spec.sha256, gen.provider, gen.fallback)
        wanted = self.settings.default_model
        if wanted is not None and wanted not in self.models:
            raise ModelError(
                f"GAN_DEFAULT_MODEL={wanted!r} is not served; "
                f"served: {', '.join(sorted(self.models))}"
            )
        self.default = wanted or min(self.models)

    def get(self, name: str | None) -> ServedModel:
        """The model named `name`, or the default one when None."""
        key = name if name is not None else self.default
        if key not in self.models:
            raise ModelNotFound(
                f"unknown model {name!r}; served: {', '.join(sorted(self.models))}", field="model"
            )
        return self.models[key]

    @property
    def held_images(self) -> int:
        """Images of admitted requests not yet answered to the last byte, over all models."""
        return sum(m.pipeline.admission.images for m in self.models.values())

    @property
    def idle(self) -> bool:
        """No admitted request is being built, queued, run, encoded or sent."""
        return all(m.pipeline.idle for m in self.models.values()) and self.held_images == 0

    async def close(self) -> None:
        for served in self.models.values():
            await served.pipeline.stop()
