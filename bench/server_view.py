"""gan-serve under wrk, cell by cell, with the service's own view of each cell.

    python -m bench server-view [--concurrency 1 2 4 8 16 32] [--n 16] [--duration 3]
        [--service-env GAN_RUN_SLOTS=2 ...]

The service's view: the mean request duration, queue wait, run duration, batch size and
encoding time over the cell, from the differences of its Prometheus histograms before and
after. Where the client sees a slow cell, this says which stage grew (the run, the queue or
the rest), without a profiler. One JSON line per cell.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench import systems, wrk

# Histograms whose _sum / _count give each stage's mean over a cell (/samples only).
STAGES = {
    "gan_request_duration_seconds": "request_ms",
    "gan_queue_wait_seconds": "queue_wait_ms",
    "gan_inference_duration_seconds": "run_ms",
    "gan_encode_duration_seconds": "encode_ms",
    "gan_batch_size": "batch_rows",
}


def histogram_totals(base_url: str) -> dict[str, float]:
    """{name_sum: total, name_count: total} over every label set, /samples requests only."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    wanted = {f"{stage}{part}" for stage in STAGES for part in ("_sum", "_count")}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted and sample.labels.get("route", "/samples") == "/samples":
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def stage_means(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    means = {}
    for stage, label in STAGES.items():
        count = after.get(f"{stage}_count", 0.0) - before.get(f"{stage}_count", 0.0)
        if count > 0:
            total = after[f"{stage}_sum"] - before.get(f"{stage}_sum", 0.0)
            scale = 1.0 if stage == "gan_batch_size" else 1e3
            means[label] = round(total / count * scale, 3)
    return means


def cell(base_url: str, connections: int, n: int, duration_s: float) -> dict[str, Any]:
    before = histogram_totals(base_url)
    result = wrk.run(base_url, wrk.Request(f"/samples?n={n}&format=png"), connections, duration_s)
    after = histogram_totals(base_url)
    return {
        "c": connections,
        "n": n,
        "req_per_s": round(result.requests_per_s, 1),
        "latency_ms": result.latency_ms,
        "non_2xx": result.non_2xx,
        "server_means": stage_means(before, after),
    }


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, default=Path("models/fashion-cdcgan.onnx"), help="generator served"
    )
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32], help="one cell each"
    )
    parser.add_argument("--n", type=int, default=16, help="images per request (png)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per cell")
    parser.add_argument(
        "--service-env",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra GAN_* settings for gan-serve",
    )
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.service_env)
    with tempfile.TemporaryDirectory(prefix="server-view-") as scratch:
        # gan-serve picks its own provider (GAN_PROVIDERS); the provider argument is the peers'
        server = systems.start(
            systems.SYSTEMS["gan-serve"], args.model, "cpu", Path(scratch), Path(scratch), env
        )
        try:
            provider, _ = systems.active_provider(server.base_url)
            wrk.run(server.base_url, wrk.Request(f"/samples?n={args.n}&format=png"), 8, 1)
            for connections in args.concurrency:
                row = cell(server.base_url, connections, args.n, args.duration)
                print(json.dumps({"provider": provider, **row}), flush=True)
        finally:
            server.stop()
    return 0
