"""Peer: BentoML with adaptive batching (up to 16 requests per batch).

    BENCH_MODEL=models/fashion-cdcgan.onnx bentoml serve bentoml_service:Front --port 8006

A batchable BentoML API takes and returns lists, and its HTTP response is the caller's slice
of that list, serialised; so, as BentoML's docs compose batching, a front service answers
`POST /samples?n=16&format=png` with the PNG and calls the batchable `Generator` service
(its own worker process), whose dispatcher batches the fronts' calls into one run.
"""

from __future__ import annotations

import bentoml
from starlette.responses import Response
from work import Sampler

_QUIET = {"access": {"enabled": False}}


def _keep_pool_open(proxy: object) -> None:
    """Work around BentoML 1.4.40's service-to-service client, which replaces its aiohttp
    session every 100 requests (SessionManager.max_requests) and closes the old one with
    requests still in flight on it, so answers at 8 or more clients fail with 500s
    (docs/benchmarks.md, "The peers"). A user would hit that too; the benchmark measures
    BentoML's speed, not that bug. Internals: if they move, this does nothing."""
    manager = getattr(getattr(proxy, "_async", None), "_session_manager", None)
    if manager is not None and getattr(manager, "max_requests", 0) < 2**40:
        manager.max_requests, manager.max_age = 2**62, float("inf")


@bentoml.service(workers=1, logging=_QUIET)
class Generator:
    def __init__(self) -> None:
        self.sampler = Sampler.from_env()

    @bentoml.api(batchable=True, max_batch_size=16, max_latency_ms=30_000)
    def pngs(self, counts: list[int]) -> list[bytes]:
        return self.sampler.pngs(counts)  # one onnxruntime run for the whole batch


@bentoml.service(workers=1, logging=_QUIET)
class Front:
    generator = bentoml.depends(Generator)

    # No return annotation: BentoML would build a schema for it; a Response passes through.
    @bentoml.api(route="/samples")
    async def samples(self, ctx: bentoml.Context):
        _keep_pool_open(self.generator)
        n = int(ctx.request.query_params.get("n", "16"))
        (png,) = await self.generator.to_async.pngs([n])
        return Response(png, media_type="image/png")
