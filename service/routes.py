"""HTTP routes: /samples, /models, /healthz, /readyz, /metrics.

Parameters are validated here, at the edge; everything below raises domain errors that
`service.errors` turns into the one JSON error shape.
"""

# No `from __future__ import annotations` here: FastAPI reads the parameter annotations at
# run time, and they refer to `sample_schema` in create_router's scope.

from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service import encoding
from service.errors import error_body
from service.params import SampleModels, read_sample_params
from service.sampling import answer
from service.state import ServiceState

SAMPLES_PATH = "/samples"  # also served, query-only, by service.fast_path


async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(get_state)]


def direct_route(handler: Callable[[Request], Awaitable[Response]]) -> type[APIRoute]:
    """A route class whose OpenAPI operation comes from the endpoint's signature, as usual,
    but whose requests go straight to `handler`, which reads and validates them itself.

    FastAPI's per-parameter dependency solving costs several times the rest of a request's
    time on the event loop; `/samples` is the hot path, so it validates its parameters with
    one pydantic model per part instead (`service.params.read_sample_params`), the same
    models the signature documents."""

    class DirectRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            async def direct(request: Request) -> Response:
                return await handler(request)

            return direct

    return DirectRoute


def _model_card(state: ServiceState, name: str) -> dict[str, Any]:
    served, s = state.models[name], state.settings
    spec, gen = served.generator.spec, served.generator
    return {
        "name": name,
        "file": spec.path.name,
        "sha256": spec.sha256,
        "provider": gen.provider,
        "provider_fallback": gen.fallback,
        "run_slots": gen.slots,
        "intra_op_threads": gen.intra_op_threads,
        "default": name == state.default_model,
        "latent_dim": spec.latent_dim,
        "image_shape": list(spec.image_shape),
        "conditional": spec.conditional,
        "num_classes": spec.num_classes,
        "class_names": list(spec.class_names) if spec.class_names else None,
        "metadata": spec.metadata,
        "limits": {
            "max_samples": s.max_samples,
            "max_batch": served.max_batch,
            "largest_request": served.pipeline.admission.largest_request,
            "bytes_per_image": served.cost.held,
            "run_bytes_per_image": served.cost.working,
            "max_delay_ms": s.max_delay_ms,
            "max_queue": s.max_queue,
            "request_timeout_s": s.request_timeout_s,
        },
    }


def create_router(sample_schema: SampleModels) -> APIRouter:
    """The service's routes; `sample_schema` (from the settings) fixes /samples' limits."""
    router = APIRouter()

    async def serve_samples(request: Request) -> Response:
        """Parameters in a JSON body (query-only requests take `service.fast_path`)."""
        state: ServiceState = request.app.state.service
        return await answer(state, await read_sample_params(request, sample_schema), request)

    async def samples(
        query: Annotated[sample_schema.query, Query()],  # type: ignore[name-defined]
        body: Annotated[
            sample_schema.body | None,  # type: ignore[name-defined]
            Body(
                description="The same parameters as a JSON object (Content-Type: "
                "application/json) instead of the query; a field may not be in both.",
            ),
        ] = None,
    ) -> Response:
        """Generate n images. Image i has seed derive(seed, i); derive(seed, 0) = seed.

        Parameters come as a query or as a JSON body (`service.params`)."""
        raise AssertionError("served by serve_samples")  # the signature documents the route

    router.add_api_route(
        SAMPLES_PATH,
        samples,
        methods=["POST"],
        response_class=Response,
        route_class_override=direct_route(serve_samples),
        responses={
            200: {
                "description": "The images; headers X-Seed and X-Model.",
                "content": {media: {} for media in encoding.MEDIA_TYPES.values()},
            },
            404: {"description": "Unknown model."},
            413: {"description": "More images than the model can ever hold (names n)."},
            422: {"description": "Invalid parameter."},
            503: {"description": "Overloaded (Retry-After), not ready or draining."},
            504: {"description": "The request deadline passed."},
        },
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
