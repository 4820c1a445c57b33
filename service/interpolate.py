"""`POST /interpolate`: the images on the way from one image's latent vector to another's.

    POST /interpolate?from_seed=7&to_seed=42&steps=8&label=sneaker&format=png

`from_seed` and `to_seed` are image seeds (the `seed` of an image in a `/samples` answer).
Frame i of `steps` has z = slerp(z(from_seed), z(to_seed), i / (steps - 1)): spherical
interpolation, which keeps the frames at the norm a Gaussian latent vector has (a straight
line passes through unlikely short vectors near its middle). The first and last frames are
the two images themselves, bit for bit: `/samples?n=1&seed=<from_seed>&label=<label>`.

For a conditional model every frame has one label: `label` if given, else the one `from_seed`
draws when unlabelled (what `/samples?n=1&seed=<from_seed>` shows). The request goes through
the model's pipeline like `/samples` (admission, deadline, disconnect, drain).
"""

# No `from __future__ import annotations`: FastAPI reads the parameter annotations at run
# time, and they refer to `settings` in create_interpolate_router's scope.

import base64
import json
from typing import Annotated

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from service import contract, encoding, seeding
from service.encoding import Format
from service.params import resolve_label
from service.pipeline import Job, Labels, Latents, Pixels
from service.routes import State
from service.settings import Settings

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


def interpolation_json(
    model: str,
    from_seed: int,
    to_seed: int,
    label: int | None,
    pixels: Pixels,
) -> bytes:
    """`{"model", "from_seed", "to_seed", "label", "images": [{"index", "t", "png"}]}`."""
    steps = pixels.shape[0]
    body = {
        "model": model,
        "from_seed": from_seed,
        "to_seed": to_seed,
        "label": label,
        "images": [
            {
                "index": i,
                "t": i / (steps - 1),
                "png": base64.b64encode(encoding.png(pixels[i])).decode("ascii"),
            }
            for i in range(steps)
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def interpolation_job(
    model: str,
    z: Latents,
    label: int | None,
    fmt: Format,
    from_seed: int,
    to_seed: int,
) -> Job:
    """The pipeline job of one /interpolate request: rows of `z`, encoded as `fmt` (`png` is
    one strip, left to right)."""
    labels: Labels | None = None if label is None else np.full(len(z), label, np.int64)

    def rows(start: int, stop: int) -> tuple[Latents, Labels | None]:
        return z[start:stop], None if labels is None else labels[start:stop]

    def encode(pixels: Pixels) -> bytes:
        if fmt == "json":
            return interpolation_json(model, from_seed, to_seed, label, pixels)
        if fmt == "png":
            return encoding.png(contract.grid(pixels, columns=len(pixels)))
        return encoding.npy(pixels)

    return Job(n=len(z), rows=rows, encode=encode, format=fmt)


def create_interpolate_router(settings: Settings) -> APIRouter:
    """The /interpolate route; `settings` fix the documented limit of `steps`."""
    router = APIRouter()
    seed_query = {"ge": 0, "le": seeding.MAX_SEED}

    @router.post(
        "/interpolate",
        response_class=Response,
        responses={
            200: {
                "description": "The frames; header X-Model. png: one strip, left to right.",
                "content": {media: {} for media in encoding.MEDIA_TYPES.values()},
            },
            404: {"description": "Unknown model."},
            413: {"description": "More images than the model can ever hold (names steps)."},
            422: {"description": "Invalid parameter."},
            503: {"description": "Overloaded (Retry-After), not ready or draining."},
            504: {"description": "The request deadline passed."},
        },
    )
    async def interpolate(
        request: Request,
        state: State,
        from_seed: Annotated[int, Query(**seed_query, description="Image seed of the start.")],
        to_seed: Annotated[int, Query(**seed_query, description="Image seed of the end.")],
        steps: Annotated[
            int,
            Query(ge=2, le=settings.max_samples, description="Frames, both ends included."),
        ] = 8,
        label: Annotated[
            str | None,
            Query(description="Class index or name (conditional models); else from_seed's."),
        ] = None,
        model: Annotated[str | None, Query(description="Model name; else the default.")] = None,
        fmt: Annotated[
            Format | None, Query(alias="format", description="json, png or npy; else Accept.")
        ] = None,
    ) -> Response:
        """Frames from image `from_seed` to image `to_seed`, spherical interpolation of their
        latent vectors; the ends are the two images themselves."""
        chosen = encoding.negotiate(fmt, request.headers.get("accept"))
        served = state.model(model)
        spec = served.generator.spec
        label_index = resolve_label(spec, label)
        if spec.num_classes is not None and label_index is None:
            label_index = seeding.random_label(from_seed, spec.num_classes)
        ends: npt.NDArray[np.float32] = seeding.latents(
            np.array([from_seed, to_seed], np.uint64), spec.latent_dim
        )
        z = slerp(ends[0], ends[1], steps)
        job = interpolation_job(spec.name, z, label_index, chosen, from_seed, to_seed)
        body = await served.pipeline.run(job, request)
        media = encoding.MEDIA_TYPES[chosen]
        return Response(body, media_type=media, headers={"X-Model": spec.name})

    return router
