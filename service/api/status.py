"""What the service is and whether it serves: /models, /healthz, /readyz, /metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service.http.errors import error_body
from service.state import ServiceState


async def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(get_state)]


def _model_card(state: ServiceState, name: str) -> dict[str, Any]:
    served, s = state.catalog.models[name], state.settings
    spec, gen = served.spec, served.generator
    return {
        "name": name,
        "file": spec.path.name,
        "sha256": spec.sha256,
        "provider": gen.provider,
        "provider_fallback": gen.fallback,
        "run_slots": gen.slots,
        "intra_op_threads": gen.intra_op_threads,
        "default": name == state.catalog.default,
        "latent_dim": spec.latent_dim,
        "image_shape": list(spec.image_shape),
        "conditional": spec.conditional,
        "num_classes": spec.num_classes,
        "class_names": list(spec.class_names) if spec.class_names else None,
        "metadata": spec.metadata,
        "limits": {
            "max_samples": s.max_samples,
            "max_batch": served.pipeline.schedule.max_batch,
            "largest_request": served.pipeline.admission.largest_request,
            "bytes_per_image": served.cost.held,
            "run_bytes_per_image": served.cost.working,
            "max_delay_ms": s.max_delay_ms,
            "max_queue": s.max_queue,
            "request_timeout_s": s.request_timeout_s,
        },
    }


def create_status_router() -> APIRouter:
    """The routes that say what the service serves and whether it is up."""
    router = APIRouter()

    @router.get("/models")
    async def models(state: State) -> dict[str, Any]:
        """Every served model: metadata, sha256, provider and limits.

        `limits`: `max_samples` is the most images one request may ask for (GAN_MAX_SAMPLES,
        a 422 above it); `largest_request` the most one request of this model can ever be
        admitted with (GAN_MAX_QUEUE and the memory budget; a 413 above it); `max_batch` the
        most one run of the model holds (a request larger than it is split across runs);
        `bytes_per_image` what an admitted image holds until its answer is sent,
        `run_bytes_per_image` what it needs inside a run; `max_delay_ms`, `max_queue` and
        `request_timeout_s` the settings of the same names."""
        return {
            "default": state.catalog.default,
            "models": [_model_card(state, name) for name in sorted(state.catalog.models)],
        }

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves HTTP. No model work."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"description": "starting, draining or failed"}})
    async def readyz(state: State) -> JSONResponse:
        """Readiness: 200 once every model is loaded and warmed (in every worker process),
        503 otherwise."""
        models = sorted(state.catalog.models.items())
        providers = {name: m.generator.provider for name, m in models}
        status, reason = state.readiness()
        body: dict[str, Any] = {"status": status.value, "models": providers}
        if state.peers is not None:
            body["workers"] = {"ready": state.peers.ready_count(), "total": state.peers.workers}
        if status.value == "ready":
            return JSONResponse(body)
        body["reason"] = reason
        body.update(error_body("not_ready", f"{status.value}: {reason}"))
        return JSONResponse(body, status_code=503)

    @router.get("/metrics", include_in_schema=False)
    async def metrics(state: State) -> Response:
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router
