"""Prometheus metrics of one app instance, on a registry of its own.

Names and labels are a contract (docs/service.md); labels take only bounded values: model
names, route templates, status codes, formats and rejection reasons.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REJECT_REASONS = ("overload", "timeout", "cancelled")


def batch_buckets(max_batch: int) -> tuple[float, ...]:
    """Images per run: powers of two up to max_batch."""
    sizes = {float(1 << k) for k in range(max_batch.bit_length()) if (1 << k) <= max_batch}
    return tuple(sorted(sizes | {float(max_batch)}))


class Metrics:
    def __init__(self, latency_buckets: Sequence[float], max_batch: int) -> None:
        self.registry = CollectorRegistry()
        r, buckets = self.registry, tuple(latency_buckets)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.requests = Counter(
            "gan_requests", "HTTP requests answered.", ["route", "status"], registry=r
        )
        self.request_duration = Histogram(
            "gan_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["route"],
            buckets=buckets,
            registry=r,
        )
        self.queue_wait = Histogram(
            "gan_queue_wait_seconds",
            "Time images waited in the queue before their run.",
            ["model"],
            buckets=buckets,
            registry=r,
        )
        self.inference_duration = Histogram(
            "gan_inference_duration_seconds",
            "Duration of one onnxruntime run.",
            ["model"],
            buckets=buckets,
            registry=r,
        )
        self.batch_size = Histogram(
            "gan_batch_size",
            "Images per onnxruntime run.",
            ["model"],
            buckets=batch_buckets(max_batch),
            registry=r,
        )
        self.encode_duration = Histogram(
            "gan_encode_duration_seconds",
            "Time to encode one response.",
            ["format"],
            buckets=buckets,
            registry=r,
        )
        self.queue_depth = Gauge("gan_queue_depth", "Images waiting to run.", ["model"], registry=r)
        self.images_generated = Counter(
            "gan_images_generated", "Images generated.", ["model"], registry=r
        )
        self.rejected = Counter(
            "gan_rejected",
            "Requests refused or dropped: overload, timeout, cancelled.",
            ["reason"],
            registry=r,
        )
        self.model_info = Gauge(
            "gan_model_info",
            "Served models (always 1).",
            ["model", "sha256", "provider"],
            registry=r,
        )
        self.provider_fallback = Gauge(
            "gan_provider_fallback",
            "1 when the model runs on a later provider than the first one asked for.",
            ["model"],
            registry=r,
        )
        self.ready = Gauge("gan_ready", "1 when /readyz answers 200.", registry=r)
        for reason in REJECT_REASONS:  # series exist at 0 from the start, so rate() works
            self.rejected.labels(reason=reason)

    def add_model(self, model: str, sha256: str, provider: str, fallback: bool) -> None:
        self.model_info.labels(model=model, sha256=sha256, provider=provider).set(1)
        self.provider_fallback.labels(model=model).set(1 if fallback else 0)
        self.queue_depth.labels(model=model).set(0)
        self.images_generated.labels(model=model)
