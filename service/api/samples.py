"""`POST /samples`: n images from a request seed, as JSON, one PNG grid or a .npy array.

    POST /samples?n=16&seed=7&label=sneaker&format=png
    POST /samples  {"n": 16, "seed": 7, "label": "sneaker"}   (Content-Type: application/json)

Image i has seed derive(seed, i); derive(seed, 0) = seed. The checks, in this order: the
parameters, an unacceptable Accept, a service not ready or draining, an unknown model, a bad
label, the key's rate limit, then admission. The job's two callables run in a run slot's
thread (`service.pipeline.scheduler`): the inputs of a large request are built run by run,
never before the request is admitted.
"""

# No `from __future__ import annotations`: FastAPI reads the documented operation's
# annotations at run time, and they refer to `models` in `samples_endpoint`'s scope.

import time
from functools import partial
from typing import Annotated, Any

from fastapi import Body, Query
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from core.contract import GeneratorSpec
from service.api.entry import AnswerResponse, Endpoint, disconnected
from service.api.labels import resolve_label
from service.api.params import ParamModels, SampleQuery, read_params
from service.encoding import formats
from service.encoding.formats import Format
from service.http.access import Access
from service.http.edge import has_body
from service.pipeline import seeding
from service.pipeline.scheduler import Job, Labels, Latents, Pixels
from service.state import ServiceState

SAMPLES_PATH = "/samples"

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The images; headers X-Seed and X-Model. JSON: each image's index, "
        "seed, label, label_name (the class name, conditional models) and PNG (base64).",
        "content": {
            media: {"schema": formats.JSON_SCHEMA} if fmt == "json" else {}
            for fmt, media in formats.MEDIA_TYPES.items()
        },
    },
    404: {"description": "Unknown model."},
    405: {"description": "Not a POST: the message shows the request to send (Allow: POST)."},
    413: {"description": "More images than the model can ever hold (names n)."},
    422: {"description": "Invalid parameter (named in `field`)."},
    429: {"description": "The API key's rate limit (Retry-After)."},
    503: {"description": "Overloaded (Retry-After), not ready or draining."},
    504: {"description": "The request deadline passed."},
}


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
        return formats.encode(
            fmt,
            pixels,
            model=spec.name,
            seed=seed,
            seeds=seeds,
            labels=labels,
            class_names=spec.class_names,
        )

    return Job(n=n, rows=rows, encode=encode, format=fmt, seeded=(seed, label))


def samples_endpoint(
    state: ServiceState, access: Access, models: ParamModels[SampleQuery]
) -> Endpoint:
    """The endpoint, its parameters bounded by `models` (GAN_MAX_SAMPLES)."""

    async def handle(request: Request) -> Response:
        arrived = time.monotonic()
        body = await request.body() if has_body(request.scope) else b""
        params = read_params(
            request.scope["query_string"], body, request.headers.get("content-type"), models
        )
        chosen = formats.negotiate(params.format, request.headers.get("accept"))
        served = state.model(params.model)
        spec = served.spec
        label = resolve_label(spec, params.label)
        access.charge(request.scope, params.n)
        seed = seeding.random_seed() if params.seed is None else params.seed
        job = sample_job(spec, chosen, seed, params.n, label)
        gone = partial(disconnected, request.receive)
        answer = await served.pipeline.answer(job, gone, arrived)
        headers = {"X-Seed": str(seed), "X-Model": spec.name}
        return AnswerResponse(answer, formats.MEDIA_TYPES[chosen], headers)

    def samples(
        query: Annotated[models.query, Query()],  # type: ignore[name-defined]
        body: Annotated[
            models.body | None,  # type: ignore[name-defined]
            Body(
                description="The same parameters as a JSON object (Content-Type: "
                "application/json) instead of the query; a field may not be in both.",
            ),
        ] = None,
    ) -> Response:
        """Generate n images. Image i has seed derive(seed, i); derive(seed, 0) = seed.

        Parameters come as a query or as a JSON body (`service.api.params`)."""
        raise NotImplementedError  # documents the operation; requests go to `handle`

    route = APIRoute(
        SAMPLES_PATH, samples, methods=["POST"], response_class=Response, responses=RESPONSES
    )
    return Endpoint(route, handle)
