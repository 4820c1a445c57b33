"""`POST /interpolate`: the images on the way from one image's latent vector to another's.

    POST /interpolate?from_seed=7&to_seed=42&steps=8&label=sneaker&format=png
    POST /interpolate  {"from_seed": 7, "to_seed": 42, "steps": 8}  (application/json)

`from_seed` and `to_seed` are image seeds (the `seed` of an image in a `/samples` answer).
Frame i of `steps` has z = slerp(z(from_seed), z(to_seed), i / (steps - 1)): spherical
interpolation, which keeps the frames at the norm a Gaussian latent vector has (a straight
line passes through unlikely short vectors near its middle). The first and last frames are
the two images themselves, bit for bit: `/samples?n=1&seed=<from_seed>&label=<label>`.

For a conditional model every frame has one label: `label` if given, else the one `from_seed`
draws when unlabelled (what `/samples?n=1&seed=<from_seed>` shows). The request goes through
the model's pipeline like `/samples` (admission, deadline, disconnect, drain).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from starlette.requests import Request
from starlette.responses import Response

from core import contract
from service.api.entry import AnswerResponse, Endpoint, answer, operation, prepare, responses
from service.api.labels import label_name
from service.api.params import InterpolateQuery, ParamModels
from service.encoding import formats
from service.encoding.formats import Format
from service.http.access import Access
from service.pipeline import seeding
from service.pipeline.jobs import Job, Labels, Latents, Pixels
from service.state import ServiceState

INTERPOLATE_PATH = "/interpolate"
_NULLABLE = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
# The `json` body, for the OpenAPI schema.
JSON_SCHEMA = {
    "type": "object",
    "required": ["model", "from_seed", "to_seed", "label", "label_name", "images"],
    "properties": {
        "model": {"type": "string"},
        "from_seed": {"type": "integer"},
        "to_seed": {"type": "integer"},
        "label": {**_NULLABLE, "description": "The one class index of every frame."},
        "label_name": {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "description": "The class's name.",
        },
        "images": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "t", "png"],
                "properties": {
                    "index": {"type": "integer"},
                    "t": {"type": "number", "description": "0 at from_seed, 1 at to_seed."},
                    "png": {"type": "string", "contentEncoding": "base64"},
                },
            },
        },
    },
}
ANSWERS = responses(
    "The frames; header X-Model. png: one strip, left to right. JSON: the ends' seeds, the "
    "label and its label_name, each frame's index, t and PNG (base64).",
    JSON_SCHEMA,
    "steps",
)
DOC = """Frames from image `from_seed` to image `to_seed`, spherical interpolation of their latent
vectors; the ends are the two images themselves."""

_PARALLEL = 1e-6  # below this angle the two vectors are parallel: interpolate linearly


def slerp(z0: Latents, z1: Latents, steps: int) -> Latents:
    """`steps` vectors from z0 to z1 (both (latent_dim,)) along the great circle between them,
    scaled by the linearly interpolated norm; the ends are z0 and z1 exactly."""
    a, b = z0.astype(np.float64), z1.astype(np.float64)
    t = np.linspace(0.0, 1.0, steps)[:, None]  # (steps, 1)
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    cosine = float(np.dot(a, b) / max(norm_a * norm_b, 1e-300))
    angle = float(np.arccos(np.clip(cosine, -1.0, 1.0)))
    if angle < _PARALLEL or norm_a == 0 or norm_b == 0:
        path = (1 - t) * a + t * b
    else:
        path = (np.sin((1 - t) * angle) * a + np.sin(t * angle) * b) / np.sin(angle)
    out: Latents = path.astype(np.float32)
    out[0], out[-1] = z0, z1  # exactly the two images, whatever the rounding
    return out


@dataclass(frozen=True)
class Ends:
    """The two images an interpolation joins, and the one label of all its frames."""

    from_seed: int
    to_seed: int
    label: int | None
    label_name: str | None


def interpolation_json(model: str, ends: Ends, pixels: Pixels) -> bytes:
    """`{"model", "from_seed", "to_seed", "label", "label_name", "images": [{"index", "t",
    "png"}]}`."""
    steps = pixels.shape[0]
    body = {
        "model": model,
        "from_seed": ends.from_seed,
        "to_seed": ends.to_seed,
        "label": ends.label,
        "label_name": ends.label_name,
        "images": [
            {
                "index": i,
                "t": i / (steps - 1),
                "png": base64.b64encode(formats.png(pixels[i])).decode("ascii"),
            }
            for i in range(steps)
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def interpolation_job(model: str, z: Latents, ends: Ends, fmt: Format) -> Job:
    """The pipeline job of one /interpolate request: rows of `z`, encoded as `fmt` (`png` is
    one strip, left to right)."""
    label = ends.label
    labels: Labels | None = None if label is None else np.full(len(z), label, np.int64)

    def rows(start: int, stop: int) -> tuple[Latents, Labels | None]:
        return z[start:stop], None if labels is None else labels[start:stop]

    def encode(pixels: Pixels) -> bytes:
        if fmt == "json":
            return interpolation_json(model, ends, pixels)
        if fmt == "png":
            return formats.png(contract.grid(pixels, columns=len(pixels)))
        return formats.npy(pixels)

    return Job(n=len(z), rows=rows, encode=encode, format=fmt)


def interpolate_endpoint(
    state: ServiceState, access: Access, models: ParamModels[InterpolateQuery]
) -> Endpoint:
    """The endpoint, its `steps` bounded by `models` (GAN_MAX_SAMPLES)."""

    async def handle(request: Request) -> Response:
        prepared = await prepare(request, models, state)
        params, spec, label = prepared.params, prepared.spec, prepared.label
        from_seed, to_seed = params.from_seed, params.to_seed
        assert from_seed is not None and to_seed is not None  # required by `models`
        if spec.num_classes is not None and label is None:
            label = seeding.random_label(from_seed, spec.num_classes)
        access.charge(request.scope, params.steps)
        ends: npt.NDArray[np.float32] = seeding.latents(
            np.array([from_seed, to_seed], np.uint64), spec.latent_dim
        )
        z = slerp(ends[0], ends[1], params.steps)
        ends_of = Ends(from_seed, to_seed, label, label_name(spec, label))
        job = interpolation_job(spec.name, z, ends_of, prepared.format)
        body = await answer(request, prepared, job)
        return AnswerResponse(body, formats.MEDIA_TYPES[prepared.format], {"X-Model": spec.name})

    route = operation(INTERPOLATE_PATH, models, DOC, ANSWERS)
    return Endpoint(route, handle)
