"""Prometheus metrics of one app instance, on a registry of its own.

Names and labels are a contract (docs/service.md); labels take only bounded values: model
names, route templates, status codes, formats and rejection reasons.

With several worker processes (`GAN_WORKERS`), each writes its values into prometheus-client's
multiprocess directory and one scrape of any worker reads them all (`exposition`): counters
and histograms summed over the processes, gauges summed over the live ones (the ready gauge:
the least of them), with the service-wide collectors added (`add_collector`) in place of the
one process's own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

REJECT_REASONS = ("overload", "timeout", "cancelled")
AUTH_REJECT_REASONS = ("unauthorized", "rate_limited")
WORKERS_HELP = "Worker processes the service runs (GAN_WORKERS)."
RESTARTS_HELP = "Worker processes started again after they ended unasked."
WORKER_CPU_HELP = (
    "CPU time of each worker process (label: its index), in seconds; its rate is the share "
    "of one core the worker keeps busy."
)


class OneWorkerCpu(Collector):
    """gan_worker_cpu_seconds_total of a service that is one process: worker 0 is itself
    (with several, service.workers.collector reports each)."""

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("gan_worker_cpu_seconds", WORKER_CPU_HELP, labels=["worker"])
        family.add_metric(["0"], time.process_time())
        yield family


def batch_buckets(max_batch: int) -> tuple[float, ...]:
    """Images per run: powers of two up to max_batch."""
    sizes = {float(1 << k) for k in range(max_batch.bit_length()) if (1 << k) <= max_batch}
    return tuple(sorted(sizes | {float(max_batch)}))


@dataclass(frozen=True)
class ModelMetrics:
    """The series of one model, looked up once: `labels()` costs microseconds per call, and
    the request path would otherwise pay it several times per request."""

    queue_depth: Gauge
    admitted_images: Gauge
    admission_waiting: Gauge
    runs_in_progress: Gauge
    queue_wait: Histogram
    inference_duration: Histogram
    batch_size: Histogram
    images_generated: Counter


class Metrics:
    def __init__(
        self, latency_buckets: Sequence[float], max_batch: int, multiprocess: bool = False
    ) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = multiprocess
        self._service_collectors: list[Collector] = []
        r, buckets = self.registry, tuple(latency_buckets)
        if not multiprocess:  # one process's own: with several, `add_collector` sums them
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            r.register(OneWorkerCpu())
        self.requests = Counter(
            "gan_requests",
            "Requests answered: HTTP (status: its code) and gRPC (route: the method, status: "
            "the gRPC status code's name).",
            ["route", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "gan_request_duration_seconds",
            "Time to answer an HTTP request or a gRPC call.",
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
        self.queue_depth = Gauge(
            "gan_queue_depth",
            "Images waiting to run.",
            ["model"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.admitted_images = Gauge(
            "gan_admitted_images",
            "Images held by admitted requests, from admission to their last byte sent.",
            ["model"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.admission_waiting = Gauge(
            "gan_admission_waiting_requests",
            "Requests waiting for room to be admitted (GAN_ADMISSION_WAIT_MS), in arrival order.",
            ["model"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.runs_in_progress = Gauge(
            "gan_runs_in_progress",
            "Run slots busy (building inputs, in onnxruntime or encoding).",
            ["model"],
            multiprocess_mode="livesum",
            registry=r,
        )
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
            multiprocess_mode="livemax",
            registry=r,
        )
        self.provider_fallback = Gauge(
            "gan_provider_fallback",
            "1 when the model runs on a later provider than the first one asked for.",
            ["model"],
            multiprocess_mode="livemax",
            registry=r,
        )
        self.ready = Gauge(
            "gan_ready", "1 when /readyz answers 200.", multiprocess_mode="livemin", registry=r
        )
        self.workers_ready = Gauge(
            "gan_workers_ready",
            "Worker processes ready to serve.",
            multiprocess_mode="livesum",
            registry=r,
        )
        # With several workers, service.workers.collector reports these for the whole service.
        self.workers: Gauge | None = None
        self.restarts: Counter | None = None
        if not multiprocess:
            self.workers = Gauge("gan_workers", WORKERS_HELP, registry=r)
            self.workers.set(1)
            self.restarts = Counter("gan_process_restarts", RESTARTS_HELP, registry=r)
        self._request_series: dict[tuple[str, int | str], tuple[Counter, Histogram]] = {}
        self._encode_series: dict[str, Histogram] = {}
        for reason in REJECT_REASONS:  # series exist at 0 from the start, so rate() works
            self.rejected.labels(reason=reason)
        # -- access control (service/http/access.py): reasons only, never a key ----------
        self.auth_rejected = Counter(
            "gan_auth_rejected",
            "Requests refused by access control: unauthorized (401), rate_limited (429).",
            ["reason"],
            registry=r,
        )
        for reason in AUTH_REJECT_REASONS:
            self.auth_rejected.labels(reason=reason)

    def add_collector(self, collector: Collector) -> None:
        """A collector of the whole service, for the multiprocess scrape."""
        self._service_collectors.append(collector)

    def exposition(self) -> bytes:
        """The scrape: this registry, or with several workers every worker's values."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        for collector in self._service_collectors:
            merged.register(collector)
        return generate_latest(merged)

    def add_model(self, model: str, sha256: str, provider: str, fallback: bool) -> None:
        self.model_info.labels(model=model, sha256=sha256, provider=provider).set(1)
        self.provider_fallback.labels(model=model).set(1 if fallback else 0)

    def for_model(self, model: str) -> ModelMetrics:
        """The model's series, created at 0 so rate() and alerts see them from the start."""
        return ModelMetrics(
            queue_depth=self.queue_depth.labels(model=model),
            admitted_images=self.admitted_images.labels(model=model),
            admission_waiting=self.admission_waiting.labels(model=model),
            runs_in_progress=self.runs_in_progress.labels(model=model),
            queue_wait=self.queue_wait.labels(model=model),
            inference_duration=self.inference_duration.labels(model=model),
            batch_size=self.batch_size.labels(model=model),
            images_generated=self.images_generated.labels(model=model),
        )

    def request_series(self, route: str, status: int | str) -> tuple[Counter, Histogram]:
        """gan_requests_total and gan_request_duration_seconds of one route and status,
        cached (both label sets are bounded: route templates and status codes)."""
        key = (route, status)
        series = self._request_series.get(key)
        if series is None:
            series = (
                self.requests.labels(route=route, status=str(status)),
                self.request_duration.labels(route=route),
            )
            self._request_series[key] = series
        return series

    def encode_series(self, fmt: str) -> Histogram:
        series = self._encode_series.get(fmt)
        if series is None:
            series = self._encode_series[fmt] = self.encode_duration.labels(format=fmt)
        return series
