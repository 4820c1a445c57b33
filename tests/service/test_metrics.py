"""Metric names and labels (a contract), that they move, one registry per app, and a real
Prometheus server scraping the service."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

from service.app import create_app
from service.metrics import Metrics
from tests.service.conftest import Server, poll, settings_for
from tests.support.ports import free_port

PROMETHEUS = "/usr/bin/prometheus"  # Debian's `prometheus` package (installed by .ci/run)

NAMES = {
    "gan_requests_total",
    "gan_request_duration_seconds_bucket",
    "gan_queue_wait_seconds_bucket",
    "gan_inference_duration_seconds_bucket",
    "gan_batch_size_bucket",
    "gan_encode_duration_seconds_bucket",
    "gan_queue_depth",
    "gan_images_generated_total",
    "gan_rejected_total",
    "gan_model_info",
    "gan_provider_fallback",
    "gan_ready",
    "gan_workers",
    "gan_workers_ready",
    "gan_process_restarts_total",
    "gan_worker_cpu_seconds_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "python_info",
}
LABELS = {"model", "route", "status", "format", "reason", "le", "worker"}


def test_every_metric_is_exposed_after_a_request(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    server = serve(settings_for(model_dir))
    server.client.post("/samples", params={"n": 2})
    names = {name for name, _ in server.metrics()}
    assert names >= NAMES


def test_metrics_move_with_traffic(serve: Callable[..., Server], model_dir: Path) -> None:
    server = serve(settings_for(model_dir))
    before = server.metrics()
    assert (
        server.client.post(
            "/samples", params={"n": 5, "model": "fashion", "format": "png"}
        ).status_code
        == 200
    )
    after = server.metrics()

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("gan_images_generated_total", model="fashion") == 5
    assert delta("gan_requests_total", route="/samples", status="200") == 1
    assert delta("gan_request_duration_seconds_count", route="/samples") == 1
    assert delta("gan_inference_duration_seconds_count", model="fashion") == 1
    assert delta("gan_batch_size_sum", model="fashion") == 5
    assert delta("gan_queue_wait_seconds_count", model="fashion") == 1
    assert delta("gan_encode_duration_seconds_count", format="png") == 1
    assert after[("gan_ready", ())] == 1
    # One process is worker 0 of one; its CPU counter moves with its work.
    assert delta("gan_worker_cpu_seconds_total", worker="0") > 0
    assert after[("gan_workers", ())] == after[("gan_workers_ready", ())] == 1


def test_labels_are_bounded(serve: Callable[..., Server], model_dir: Path) -> None:
    server = serve(settings_for(model_dir))
    server.client.get("/no/such/path/12345")
    server.client.post("/samples", params={"n": 1, "seed": 123456789})
    samples = server.metrics()
    for name, labels in samples:
        if name.startswith("gan_") and name != "gan_model_info":
            assert {key for key, _ in labels} <= LABELS, name
    routes = {dict(labels).get("route") for name, labels in samples if name == "gan_requests_total"}
    assert "other" in routes and not any("12345" in str(r) for r in routes)
    assert not any("123456789" in value for _, labels in samples for _, value in labels)


def test_model_info_and_fallback_describe_each_model(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    server = serve(settings_for(model_dir, providers=["cuda", "cpu"]))
    card = {c["name"]: c for c in server.client.get("/models").json()["models"]}["digits"]
    labels = {"model": "digits", "sha256": card["sha256"], "provider": card["provider"]}
    assert server.metric("gan_model_info", **labels) == 1
    fallback = server.metric("gan_provider_fallback", model="digits")
    assert fallback == (1 if card["provider"] == "cpu" else 0)
    assert card["provider_fallback"] is (fallback == 1)
    assert server.client.get("/readyz").json()["models"]["digits"] == card["provider"]


def test_latency_buckets_are_configurable(serve: Callable[..., Server], model_dir: Path) -> None:
    server = serve(settings_for(model_dir, latency_buckets=(0.001, 0.5)))
    server.client.post("/samples", params={"n": 1})
    bounds = {
        dict(labels)["le"]
        for name, labels in server.metrics()
        if name == "gan_inference_duration_seconds_bucket"
    }
    assert bounds == {"0.001", "0.5", "+Inf"}


def test_each_app_has_its_own_registry(model_dir: Path) -> None:
    first, second = create_app(settings_for(model_dir)), create_app(settings_for(model_dir))
    assert first.state.service.metrics.registry is not second.state.service.metrics.registry
    Metrics((0.1,), 4)  # no clash with anything registered before


def test_prometheus_scrapes_the_service(
    serve: Callable[..., Server], model_dir: Path, tmp_path: Path
) -> None:
    server = serve(settings_for(model_dir))
    assert server.client.post("/samples", params={"n": 7, "model": "digits"}).status_code == 200
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: ganserve\n    static_configs:\n"
        f"      - targets: ['{server.url.removeprefix('http://')}']\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    query = 'gan_images_generated_total{job="ganserve",model="digits"}'

    def scraped() -> float | None:
        assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query})
        except httpx.TransportError:
            return None  # not listening yet
        if response.status_code != 200:
            return None  # starting: 503 "Service Unavailable" in plain text
        result = response.json()["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    try:
        assert poll(scraped, timeout=60, interval=0.5) == 7
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
