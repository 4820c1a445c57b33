"""One `/samples` request: its job (inputs, body) and its answer.

`answer` takes validated parameters to the response: it resolves the format, the model and
the label, and the model's pipeline admits and runs the job. The FastAPI route (JSON bodies,
`service.routes`) and the fast path (query-only requests, `service.fast_path`) both call it,
so both apply the same checks in the same order. The job's two callables run in a run slot's
thread (`service.pipeline`): the inputs of a large request are built run by run, never before
the request is admitted.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service import encoding, seeding
from service.contract import GeneratorSpec
from service.encoding import Format
from service.params import SampleParams, resolve_label
from service.pipeline import Job, Labels, Latents, Pixels
from service.state import ServiceState


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


async def answer(state: ServiceState, params: SampleParams, request: Request) -> Response:
    """The response to a `/samples` request with these parameters (or a ServiceError).
    Image i has seed derive(seed, i); derive(seed, 0) = seed. The checks, in this order: an
    unacceptable Accept, a service not ready or draining, an unknown model, a bad label, then
    admission."""
    chosen = encoding.negotiate(params.format, request.headers.get("accept"))
    served = state.model(params.model)
    spec = served.generator.spec
    label = resolve_label(spec, params.label)
    seed = seeding.random_seed() if params.seed is None else params.seed
    job = sample_job(spec, chosen, seed, params.n, label)
    body = await served.pipeline.run(job, request)
    return Response(
        body,
        media_type=encoding.MEDIA_TYPES[chosen],
        headers={"X-Seed": str(seed), "X-Model": spec.name},
    )
