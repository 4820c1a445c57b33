"""`POST /samples`: n images from a request seed, as JSON, one PNG grid or a .npy array.

    POST /samples?n=16&seed=7&label=sneaker&format=png
    POST /samples  {"n": 16, "seed": 7, "label": "sneaker"}   (Content-Type: application/json)

Image i has seed derive(seed, i); derive(seed, 0) = seed. The checks, in this order: the
parameters, an unacceptable Accept, a service not ready or draining, an unknown model, a bad
label, the key's rate limit, then admission. The job's two callables run in a run slot's
thread (`service.pipeline.scheduler`): the inputs of a large request are built run by run,
never before the request is admitted.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from core.contract import GeneratorSpec
from service.api.entry import AnswerResponse, Endpoint, answer, operation, prepare, responses
from service.api.labels import label_name
from service.api.params import ParamModels, SampleQuery
from service.encoding import formats
from service.encoding.formats import Format
from service.http.access import Access
from service.pipeline import seeding
from service.pipeline.jobs import Job, Labels, Latents, Pixels
from service.state import ServiceState

SAMPLES_PATH = "/samples"
DOC = """Generate n images. Image i has seed derive(seed, i); derive(seed, 0) = seed.

Parameters come as a query or as a JSON body (`service.api.params`)."""
ANSWERS = responses(
    "The images; headers X-Seed and X-Model. JSON: each image's index, seed, label, "
    "label_name (the class name, conditional models) and PNG (base64).",
    formats.JSON_SCHEMA,
    "n",
)


def sample_job(spec: GeneratorSpec, fmt: Format, seed: int, n: int, label: int | None) -> Job:
    """n images of `spec` from request seed `seed` (labels random unless `label` is given)."""

    def rows(start: int, stop: int) -> tuple[Latents, Labels | None]:
        inputs = seeding.make_rows(seed, start, stop, spec.latent_dim, spec.num_classes, label)
        return inputs.z, inputs.labels

    def encode(pixels: Pixels) -> bytes:
        seeds: list[int] = []
        labels: list[int] | None = None
        names: list[str | None] | None = None
        if fmt == "json":  # only JSON lists each image's seed and label: rebuild them here
            inputs = seeding.make_rows(seed, 0, n, 1, spec.num_classes, label)
            seeds = inputs.seeds.tolist()
            if inputs.labels is not None:
                labels = inputs.labels.tolist()
                names = [label_name(spec, index) for index in labels]
        return formats.encode(
            fmt, pixels, model=spec.name, seed=seed, seeds=seeds, labels=labels, label_names=names
        )

    return Job(n=n, rows=rows, encode=encode, format=fmt, seeded=(seed, label))


def samples_endpoint(
    state: ServiceState, access: Access, models: ParamModels[SampleQuery]
) -> Endpoint:
    """The endpoint, its parameters bounded by `models` (GAN_MAX_SAMPLES)."""

    async def handle(request: Request) -> Response:
        prepared = await prepare(request, models, state)
        n, spec = prepared.params.n, prepared.spec
        access.charge(request.scope, n)
        seed = seeding.random_seed() if prepared.params.seed is None else prepared.params.seed
        job = sample_job(spec, prepared.format, seed, n, prepared.label)
        headers = {"X-Seed": str(seed), "X-Model": spec.name}
        body = await answer(request, prepared, job)
        return AnswerResponse(body, formats.MEDIA_TYPES[prepared.format], headers)

    route = operation(SAMPLES_PATH, models, DOC, ANSWERS)
    return Endpoint(route, handle)
