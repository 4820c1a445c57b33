"""The app factory and its lifespan: the one owner of models, pipelines, threads and metrics.

`create_app(settings)` builds a FastAPI app with its own metrics registry and a
`ServiceState`. The lifespan loads and warms every model in the background (so `/healthz`
answers at once and `/readyz` says "starting" meanwhile), then serves; at shutdown it goes
not-ready -> drain -> close. `service.__main__` runs it under uvicorn and turns SIGTERM into
a drain first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.auth import install_access_control
from service.contract import GeneratorSpec
from service.docs import install_docs
from service.edge import BodyLimit, HeadAsGet, ProtocolChecks
from service.errors import install_error_handlers
from service.fast_path import SamplesFastPath
from service.gallery import create_gallery_router
from service.interpolate import create_interpolate_router
from service.metrics import Metrics
from service.params import sample_models
from service.pipeline import PERMITS_KEY
from service.routes import SAMPLES_PATH, create_router
from service.settings import Settings
from service.state import ServiceState


class RequestLifecycleMiddleware:
    """Around every HTTP request: count and time it (gan_requests_total,
    gan_request_duration_seconds), release what its admission held once its last byte is sent,
    and while draining answer with `Connection: close` so keep-alive clients move on."""

    def __init__(self, app: ASGIApp, metrics: Metrics, state: ServiceState) -> None:
        self.app = app
        self.metrics = metrics
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500
        state = self.state

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if state.draining:
                    headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            for permit in scope.get(PERMITS_KEY, ()):
                permit.release()
            route = getattr(scope.get("route"), "path", None) or "other"  # bounded: no raw paths
            count, duration = self.metrics.request_series(route, status)
            count.inc()
            duration.observe(time.perf_counter() - started)


def create_app(
    settings: Settings | None = None, specs: Sequence[GeneratorSpec] | None = None
) -> FastAPI:
    """Build one service instance; `settings` default to the environment (`GAN_*`); `specs`
    are the model files as gan-serve read them before starting (else read at load)."""
    settings = settings if settings is not None else Settings()
    metrics = Metrics(settings.latency_buckets, settings.max_batch)
    state = ServiceState(settings, metrics, specs)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loader = asyncio.create_task(state.load(), name="load-models")
        try:
            yield
        finally:
            await state.drain(settings.drain_timeout_s)  # at once if SIGTERM drained already
            loader.cancel()
            await asyncio.gather(loader, return_exceptions=True)
            await state.close()

    app = FastAPI(
        title="ganserve",
        summary="Samples from GAN generators exported to ONNX.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served from installed files by service.docs, not from a CDN
        redoc_url=None,
        # The service's observability is Prometheus (service.metrics). FastAPI's own
        # OpenTelemetry hooks would otherwise ask the tracer, meter and logger providers on
        # every request: 3.5 % of the event loop's time at n = 1 (py-spy, docs/benchmarks.md).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.service = state
    install_error_handlers(app)
    sample_schema = sample_models(settings)
    router = create_router(sample_schema)
    app.include_router(router)
    # -- newcomer: /interpolate, the gallery page at /, offline /docs (no ReDoc) --
    app.include_router(create_interpolate_router(settings))
    app.include_router(create_gallery_router())
    install_docs(app)
    # -- pipeline: query-only /samples before routing, behind the access control (fast_path) --
    samples_route = next(r for r in router.routes if getattr(r, "path", None) == SAMPLES_PATH)
    app.add_middleware(SamplesFastPath, state=state, schema=sample_schema, route=samples_route)
    # -- reliability: keys and CORS, body limit, HEAD (service/auth.py, service/edge.py) --
    install_access_control(app, settings, metrics)
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(HeadAsGet)
    app.add_middleware(ProtocolChecks)
    app.add_middleware(RequestLifecycleMiddleware, metrics=metrics, state=state)
    return app
