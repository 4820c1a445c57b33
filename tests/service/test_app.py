"""The app factory and lifespan: readiness states, model selection, shutdown that drains."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.service.conftest import Server, poll, settings_for
from tests.support import onnx_models as models


def test_readyz_says_starting_until_models_are_warm(
    serve: Callable[..., Server], slow_dir: Path
) -> None:
    server = serve(settings_for(slow_dir, max_batch=4), ready=False)
    response = server.client.get("/readyz")  # warm-up of the slow model takes several runs
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "starting" and body["reason"]
    assert body["error"]["code"] == "not_ready"
    assert server.client.get("/healthz").status_code == 200
    assert server.metric("gan_ready") == 0
    refused = server.client.post("/samples", params={"n": 1})
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "not_ready"
    poll(lambda: server.client.get("/readyz").status_code == 200, timeout=60)
    assert server.metric("gan_ready") == 1
    assert server.client.post("/samples", params={"n": 1}).status_code == 200


def test_readyz_says_failed_when_a_model_cannot_load(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    models.mlp_generator(tmp_path / "good.onnx")
    broken = models.unloadable_generator(tmp_path / "broken.onnx")
    server = serve(settings_for(tmp_path), ready=False)
    poll(lambda: server.client.get("/readyz").json()["status"] == "failed")
    response = server.client.get("/readyz")
    assert response.status_code == 503
    assert str(broken) in response.json()["reason"]
    assert server.client.get("/healthz").status_code == 200
    assert server.client.post("/samples").status_code == 503


def test_readyz_says_failed_without_models(serve: Callable[..., Server], tmp_path: Path) -> None:
    server = serve(settings_for(tmp_path / "empty"), ready=False)
    poll(lambda: server.client.get("/readyz").json()["status"] == "failed")
    assert "no *.onnx models" in server.client.get("/readyz").json()["reason"]


def test_unknown_default_model_fails_readiness(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    server = serve(settings_for(model_dir, default_model="nope"), ready=False)
    poll(lambda: server.client.get("/readyz").json()["status"] == "failed")
    assert "GAN_DEFAULT_MODEL" in server.client.get("/readyz").json()["reason"]


def test_default_model_is_the_first_name_unless_set(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    first = serve(settings_for(model_dir))
    assert first.client.post("/samples", params={"n": 1}).headers["x-model"] == "digits"
    chosen = serve(settings_for(model_dir, default_model="fashion"))
    assert chosen.client.post("/samples", params={"n": 1}).headers["x-model"] == "fashion"


def test_model_path_serves_that_one_file(serve: Callable[..., Server], model_dir: Path) -> None:
    server = serve(settings_for(Path("/nowhere"), model_path=model_dir / "fashion.onnx"))
    assert [m["name"] for m in server.client.get("/models").json()["models"]] == ["fashion"]


def test_stopping_the_server_lets_running_and_queued_requests_finish(
    slow_dir: Path,
) -> None:
    server = Server(settings_for(slow_dir, max_batch=4)).start()
    with ThreadPoolExecutor(2) as pool:
        requests = [pool.submit(server.client.post, "/samples", params={"n": 4}) for _ in range(2)]
        # Both requests admitted (the first running, the second queued) before the stop.
        poll(lambda: server.metric("gan_admitted_images", model="slow") == 8)
        poll(lambda: server.metric("gan_runs_in_progress", model="slow") == 1)
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        responses = [r.result() for r in requests]
        stopper.join(timeout=30)
    assert [r.status_code for r in responses] == [200, 200]
    assert not server.thread.is_alive()
