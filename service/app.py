"""The app factory and its lifespan: the one owner of models, pipelines, threads and metrics.

`create_app(settings)` builds a FastAPI app with its own metrics registry and a
`ServiceState`. The lifespan loads and warms every model in the background (so `/healthz`
answers at once and `/readyz` says "starting" meanwhile), then serves; at shutdown it goes
not-ready -> drain -> close. `service.__main__` runs it under uvicorn and turns SIGTERM into
a drain first. With GAN_GRPC_PORT, the lifespan also runs the Open Inference Protocol's gRPC
server (`service.grpc`) on the same state, stopped after the drain.

A request's way, outermost first: the request metrics and drain header
(`service.http.lifecycle`), HTTP checks and HEAD as GET (`service.http.edge`), CORS and
access control (`service.http.access`), the body limit (`service.http.edge`), then the
generating endpoints before routing (`service.api.entry`: `/samples`, `/interpolate`) or
FastAPI's routes (`/models`, probes, metrics, docs, gallery).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from core.contract import GeneratorSpec
from service.api.docs import install_docs
from service.api.entry import Endpoints, document
from service.api.gallery import create_gallery_router
from service.api.interpolate import interpolate_endpoint
from service.api.params import interpolate_models, sample_models
from service.api.samples import samples_endpoint
from service.api.status import create_status_router
from service.api.v2 import create_v2_infer_endpoints, create_v2_router
from service.grpc import server as grpc_server
from service.grpc.servicer import Servicer
from service.http.access import Access, install_access_control
from service.http.edge import BodyLimit, HeadAsGet, ProtocolChecks
from service.http.errors import install_error_handlers
from service.http.lifecycle import RequestLifecycle
from service.http.v2_errors import V2ErrorShape
from service.metrics import Metrics
from service.settings import Settings
from service.state import ServiceState
from service.workers.collector import WorkerCollector
from service.workers.shared import Seat


def create_app(
    settings: Settings | None = None,
    specs: Sequence[GeneratorSpec] | None = None,
    seat: Seat | None = None,
) -> FastAPI:
    """Build one service instance; `settings` default to the environment (`GAN_*`); `specs`
    are the model files as gan-serve read them before starting (else read at load); `seat`
    is this process's place among several workers (`service.workers`), None when alone."""
    settings = settings if settings is not None else Settings()
    metrics = Metrics(settings.latency_buckets, settings.max_batch, multiprocess=seat is not None)
    if seat is None:
        state = ServiceState(settings, metrics, specs)
        access = Access(settings, metrics)
    else:
        metrics.add_collector(WorkerCollector(seat.shared))
        state = ServiceState(settings, metrics, specs, peers=seat)
        access = Access(settings, metrics, shared=seat.shared)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        v2_grpc = None
        if settings.grpc_port is not None:  # before loading: ServerLive answers meanwhile
            servicer = Servicer(state, access)
            v2_grpc = await grpc_server.start(settings, servicer, access, metrics, seat is not None)
        loader = asyncio.create_task(state.load(), name="load-models")
        try:
            yield
        finally:
            await state.drain(settings.drain_timeout_s)  # at once if SIGTERM drained already
            if v2_grpc is not None:
                await grpc_server.stop(v2_grpc)
            loader.cancel()
            await asyncio.gather(loader, return_exceptions=True)
            await state.close()

    app = FastAPI(
        title="ganserve",
        summary="Samples from GAN generators exported to ONNX.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served from installed files by service.api.docs, not from a CDN
        redoc_url=None,
        # The service's observability is Prometheus (service.metrics). FastAPI's own
        # OpenTelemetry hooks would otherwise ask the tracer, meter and logger providers on
        # every request: a measurable share of the event loop's time (docs/benchmarks.md).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.service = state
    install_error_handlers(app)
    endpoints = [
        samples_endpoint(state, access, sample_models(settings)),
        interpolate_endpoint(state, access, interpolate_models(settings)),
        *create_v2_infer_endpoints(state, access),
    ]
    app.include_router(create_status_router())
    app.include_router(create_gallery_router())
    app.include_router(create_v2_router(state, access))
    install_docs(app)
    document(app, [endpoint.route for endpoint in endpoints])
    # Middleware, innermost first (each add_middleware wraps what is there).
    app.add_middleware(Endpoints, endpoints=endpoints)
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes)
    # Keys before any body is read: a refused client is not invited to send one
    # (`Expect: 100-continue` gets its 401 or 429, never `100 Continue` first).
    install_access_control(app, settings, access)
    app.add_middleware(HeadAsGet)
    app.add_middleware(ProtocolChecks)
    app.add_middleware(V2ErrorShape)  # every error under /v2 in the protocol's shape
    app.add_middleware(
        RequestLifecycle,
        metrics=metrics,
        draining=lambda: state.draining,
        routes=lambda: [*app.routes, *(endpoint.route for endpoint in endpoints)],
    )
    return app
