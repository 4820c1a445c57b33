"""The app factory and its lifespan: the one owner of models, batchers, threads and metrics.

`create_app(settings)` builds a FastAPI app with its own metrics registry and a
`ServiceState`. The lifespan loads and warms every model in the background (so `/healthz`
answers at once and `/readyz` says "starting" meanwhile), then serves; at shutdown it goes
not-ready -> drain -> close. `service.__main__` runs it under uvicorn and turns SIGTERM into
a drain first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import install_error_handlers
from service.metrics import Metrics
from service.routes import create_router
from service.settings import Settings
from service.state import ServiceState


class MetricsMiddleware:
    """Count and time every HTTP request: gan_requests_total, gan_request_duration_seconds."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "other"  # bounded: no raw paths
            self.metrics.requests.labels(route=route, status=str(status)).inc()
            self.metrics.request_duration.labels(route=route).observe(time.perf_counter() - started)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build one service instance; `settings` default to the environment (`GAN_*`)."""
    settings = settings if settings is not None else Settings()
    metrics = Metrics(settings.latency_buckets, settings.max_batch)
    state = ServiceState(settings, metrics)

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
    )
    app.state.service = state
    install_error_handlers(app)
    app.include_router(create_router(settings))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
