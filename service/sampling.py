"""One `/samples` request: its plan (model, format, label) and its job (inputs, body).

`plan` resolves validated parameters against the service: the endpoint and the early refusal
(`service.early_refusal`) both use it, so both apply the same checks in the same order.
The job's two callables run in a run slot's thread (`service.pipeline`): the inputs of a large
request are built run by run, never before the request is admitted.
"""

from __future__ import annotations

from dataclasses import dataclass

from service import encoding, seeding
from service.contract import GeneratorSpec
from service.encoding import Format
from service.params import SampleParams, resolve_label
from service.pipeline import Job, Labels, Latents, Pixels
from service.state import ServedModel, ServiceState


@dataclass(frozen=True)
class SamplePlan:
    """What a valid `/samples` request resolves to."""

    served: ServedModel
    format: Format
    label: int | None  # class index; None: random labels


def plan(state: ServiceState, params: SampleParams, accept: str | None) -> SamplePlan:
    """The model, format and label of a request; raises the 4xx/503 errors of each (an
    unacceptable Accept, a service not ready or draining, an unknown model, a bad label)."""
    chosen = encoding.negotiate(params.format, accept)
    served = state.model(params.model)
    return SamplePlan(served, chosen, resolve_label(served.generator.spec, params.label))


def sample_job(spec: GeneratorSpec, fmt: Format, seed: int, n: int, label: int | None) -> Job:
    """n images of `spec` from request seed `seed` (labels random unless `label` is given)."""

    def rows(start: int, stop: int) -> tuple[Latents, Labels | None]:
        inputs = seeding.make_rows(seed, start, stop, spec.latent_dim, spec.num_classes, label)
        return inputs.z, inputs.labels

    def encode(pixels: Pixels) -> bytes:
        seeds: list[int] = []
        labels: list[int] | None = None
        if fmt == "json":  # only JSON lists each image's seed and label: rebuild them here
            inputs = seeding.make_rows(seed, 0, n, 1, spec.num_classes, label)
            seeds = inputs.seeds.tolist()
            labels = None if inputs.labels is None else inputs.labels.tolist()
        return encoding.encode(fmt, pixels, model=spec.name, seed=seed, seeds=seeds, labels=labels)

    return Job(n=n, rows=rows, encode=encode, format=fmt, seeded=(seed, label))
