"""HTTP routes: /samples, /models, /healthz, /readyz, /metrics.

Parameters are validated here, at the edge; everything below raises domain errors that
`service.errors` turns into the one JSON error shape.
"""

# No `from __future__ import annotations` here: FastAPI reads the parameter annotations at
# run time, and they refer to `settings` in create_router's scope.

import asyncio
import time
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service import encoding, seeding
from service.encoding import Format
from service.errors import InvalidParameter, error_body
from service.generator import ModelSpec
from service.settings import Settings
from service.state import ServiceState


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(get_state)]


def resolve_label(spec: ModelSpec, label: str | None) -> int | None:
    """A class index from `label` (an index or a class name, any case); None: random labels."""
    if label is None:
        return None
    if not spec.conditional or spec.num_classes is None:
        raise InvalidParameter(f"model {spec.name} is unconditional: it takes no label", "label")
    text = label.strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if 0 <= index < spec.num_classes:
            return index
        raise InvalidParameter(
            f"label {index} is out of range 0..{spec.num_classes - 1} of model {spec.name}",
            "label",
        )
    names = {name.lower(): i for i, name in enumerate(spec.class_names or ())}
    if text.lower() in names:
        return names[text.lower()]
    known = ", ".join(spec.class_names) if spec.class_names else f"0..{spec.num_classes - 1}"
    raise InvalidParameter(f"unknown label {label!r} of {spec.name}; classes: {known}", "label")


async def _disconnected(request: Request) -> None:
    """Complete when the client closes the connection (the request has no body to read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _timed_encode(*args: Any, **kwargs: Any) -> tuple[bytes, float]:
    """encoding.encode, and how long it took (in the worker, without the wait for one)."""
    started = time.perf_counter()
    body = encoding.encode(*args, **kwargs)
    return body, time.perf_counter() - started


def _model_card(state: ServiceState, name: str) -> dict[str, Any]:
    served, s = state.models[name], state.settings
    spec, gen = served.generator.spec, served.generator
    return {
        "name": name,
        "file": spec.path.name,
        "sha256": spec.sha256,
        "provider": gen.provider,
        "provider_fallback": gen.fallback,
        "default": name == state.default_model,
        "latent_dim": spec.latent_dim,
        "image_shape": list(spec.image_shape),
        "conditional": spec.conditional,
        "num_classes": spec.num_classes,
        "class_names": list(spec.class_names) if spec.class_names else None,
        "metadata": spec.metadata,
        "limits": {
            "max_samples": s.max_samples,
            "max_batch": s.max_batch,
            "max_delay_ms": s.max_delay_ms,
            "max_queue": s.max_queue,
            "request_timeout_s": s.request_timeout_s,
        },
    }


def create_router(settings: Settings) -> APIRouter:
    """The service's routes; `settings` fix the documented parameter limits."""
    router = APIRouter()

    @router.post(
        "/samples",
        response_class=Response,
        responses={
            200: {
                "description": "The images; headers X-Seed and X-Model.",
                "content": {media: {} for media in encoding.MEDIA_TYPES.values()},
            },
            404: {"description": "Unknown model."},
            422: {"description": "Invalid parameter."},
            503: {"description": "Queue full (Retry-After), not ready or draining."},
            504: {"description": "Deadline passed before the images ran."},
        },
    )
    async def samples(
        request: Request,
        state: State,
        n: Annotated[int, Query(ge=1, le=settings.max_samples, description="Images.")] = 16,
        seed: Annotated[
            int | None,
            Query(ge=0, le=seeding.MAX_SEED, description="Request seed; drawn when absent."),
        ] = None,
        label: Annotated[
            str | None, Query(description="Class index or name (conditional models).")
        ] = None,
        model: Annotated[str | None, Query(description="Model name; else the default.")] = None,
        fmt: Annotated[
            Format | None, Query(alias="format", description="json, png or npy; else Accept.")
        ] = None,
    ) -> Response:
        """Generate n images. Image i has seed derive(seed, i); derive(seed, 0) = seed."""
        arrived = time.monotonic()
        chosen = encoding.negotiate(fmt, request.headers.get("accept"))
        served = state.model(model)
        spec = served.generator.spec
        label_index = resolve_label(spec, label)
        seed = seeding.random_seed() if seed is None else seed
        loop = asyncio.get_running_loop()
        state.active += 1
        try:
            served.batcher.check_room(n)  # before spending time on the inputs
            inputs = await loop.run_in_executor(
                state.workers,
                seeding.make_inputs,
                seed,
                n,
                spec.latent_dim,
                spec.num_classes,
                label_index,
            )
            left = settings.request_timeout_s - (time.monotonic() - arrived)
            ticket = served.batcher.submit(inputs.z, inputs.labels, left)
            images = await served.batcher.wait(ticket, _disconnected(request))
            labels = None if inputs.labels is None else inputs.labels.tolist()
            body, seconds = await loop.run_in_executor(
                state.workers,
                partial(
                    _timed_encode,
                    chosen,
                    images,
                    model=spec.name,
                    seed=seed,
                    seeds=inputs.seeds,
                    labels=labels,
                ),
            )
            state.metrics.encode_duration.labels(format=chosen).observe(seconds)
        finally:
            state.active -= 1
        return Response(
            body,
            media_type=encoding.MEDIA_TYPES[chosen],
            headers={"X-Seed": str(seed), "X-Model": spec.name},
        )

    @router.get("/models")
    async def models(state: State) -> dict[str, Any]:
        """Every served model: metadata, sha256, provider and limits."""
        return {
            "default": state.default_model,
            "models": [_model_card(state, name) for name in sorted(state.models)],
        }

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves HTTP. No model work."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"description": "starting, draining or failed"}})
    async def readyz(state: State) -> JSONResponse:
        """Readiness: 200 once every model is loaded and warmed, 503 otherwise."""
        providers = {name: m.generator.provider for name, m in sorted(state.models.items())}
        body: dict[str, Any] = {"status": state.status.value, "models": providers}
        if state.status.value == "ready":
            return JSONResponse(body)
        body["reason"] = state.reason
        body.update(error_body("not_ready", f"{state.status.value}: {state.reason}"))
        return JSONResponse(body, status_code=503)

    @router.get("/metrics", include_in_schema=False)
    async def metrics(state: State) -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
