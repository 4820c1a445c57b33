"""Peer: a plain FastAPI app, one sync endpoint, no batching (each request runs alone).

    BENCH_MODEL=models/fashion-cdcgan.onnx python -m uvicorn fastapi_app:app --port 8001

Run from bench/peers by uvicorn with one worker; FastAPI runs the sync endpoint in its
threadpool, so on a 2-core machine two requests may run the model at once.
"""

from __future__ import annotations

from fastapi import FastAPI, Query, Response
from work import Sampler

app = FastAPI()
sampler = Sampler.from_env()


@app.post("/samples")
def samples(n: int = Query(16, ge=1, le=1024), format: str = "png") -> Response:
    return Response(sampler.pngs([n])[0], media_type="image/png")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok", "provider": sampler.provider}
