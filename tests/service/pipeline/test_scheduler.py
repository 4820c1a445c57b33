"""The request pipeline through the real server: admission, coalescing, splitting, run
slots, Retry-After, deadlines, disconnects and failing runs. Timing-sensitive cases use the
slow model (one run takes about SLOW_RUN_S whatever its size) and wait on metrics, never on
sleeps. Servers run one slot unless a test asks for more, so runs are countable."""

from __future__ import annotations

import base64
import io
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from service.pipeline.slots import SLOT_NICENESS
from tests.service.conftest import SLOW_RUN_S, Server, poll, seconds_per_run, settings_for
from tests.support import onnx_models as models

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """fashion (conditional); runs of up to 8 images, 100 ms to gather one."""
    root = tmp_path_factory.mktemp("batching")
    models.mlp_generator(root / "fashion.onnx", conditional=True)
    srv = Server(settings_for(root, max_batch=8, max_delay_ms=100)).start()
    yield srv
    srv.stop()


@pytest.fixture
def flaky(tmp_path: Path, serve: Callable[..., Server]) -> Server:
    """flaky: labels 5..9 make onnxruntime fail (Gather out of bounds); 1 s to gather a run."""
    models.mlp_generator(tmp_path / "flaky.onnx", conditional=True, embedding_rows=5)
    return serve(settings_for(tmp_path, max_batch=8, max_delay_ms=1000))


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory, slow_iterations: int) -> Iterator[Server]:
    """The slow model; runs of up to 4 images, a queue of 8."""
    root = tmp_path_factory.mktemp("slow")
    models.slow_generator(root / "slow.onnx", iterations=slow_iterations)
    srv = Server(settings_for(root, max_batch=4, max_queue=8, max_samples=8)).start()
    yield srv
    srv.stop()


@pytest.fixture
def hurried(slow_dir: Path, serve: Callable[..., Server]) -> Server:
    """The slow model with a deadline of a quarter of one run, measured now (the machine may
    be shared: its speed drifts); runs of up to 2 images. The grace for work already running
    is far longer than a run however slow the machine gets (bounded grace: its own test)."""
    timeout = max(0.05, seconds_per_run(slow_dir / "slow.onnx") / 4)
    return serve(
        settings_for(slow_dir, max_batch=2, request_timeout_s=timeout, deadline_grace_s=60)
    )


def regenerate(server: Server, images: list[dict]) -> list[np.ndarray]:
    """Each image again, alone: n=1 with its seed and label (sent concurrently)."""

    def one(image: dict) -> np.ndarray:
        params = {"n": 1, "seed": image["seed"], "label": image["label"], "format": "npy"}
        response = server.client.post("/samples", params=params)
        assert response.status_code == 200, response.text
        return np.load(io.BytesIO(response.content))

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, images))


def decode(png_b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(png_b64))))[None, None]


def post(server: Server, **params: object) -> httpx.Response:
    return server.client.post("/samples", params=params)


def test_concurrent_requests_share_runs_and_each_gets_its_own_images(server: Server) -> None:
    runs_before = server.metric("gan_batch_size_count", model="fashion")
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda s: post(server, n=3, seed=1000 + s), range(8)))
    runs = server.metric("gan_batch_size_count", model="fashion") - runs_before
    assert all(r.status_code == 200 for r in responses)
    assert runs < len(responses)  # coalesced: 24 images, runs of up to 8
    images = [image for r in responses for image in r.json()["images"]]
    assert [r.json()["seed"] for r in responses] == [1000 + s for s in range(8)]
    # Each image is the one its own seed and label give, whoever shared its run.
    for image, alone in zip(images, regenerate(server, images), strict=True):
        assert np.array_equal(decode(image["png"]), alone)


def test_request_bigger_than_max_batch_is_split_and_kept_in_order(server: Server) -> None:
    before = server.metrics()
    body = post(server, n=20, seed=77, label=3).json()
    after = server.metrics()
    key = ("gan_batch_size_count", (("model", "fashion"),))
    assert after[key] - before[key] == 3  # 8 + 8 + 4
    total = ("gan_batch_size_sum", (("model", "fashion"),))
    assert after[total] - before[total] == 20
    assert [image["index"] for image in body["images"]] == list(range(20))
    images = body["images"][6:18]  # across both splits
    for image, alone in zip(images, regenerate(server, images), strict=True):
        assert np.array_equal(decode(image["png"]), alone)


def test_failing_run_answers_500_to_all_its_requests_and_service_keeps_serving(
    flaky: Server,
) -> None:
    with ThreadPoolExecutor(1) as pool:
        bad = pool.submit(post, flaky, n=1, model="flaky", label=7)
        poll(lambda: flaky.metric("gan_queue_depth", model="flaky") == 1)
        good = post(flaky, n=1, model="flaky", label=1)  # joins the run within its 1 s window
        bad_response = bad.result()
    assert bad_response.status_code == 500
    assert bad_response.json()["error"]["code"] == "inference_failed"
    assert good.status_code == 500
    assert good.json()["error"]["code"] == "inference_failed"
    assert post(flaky, n=8, model="flaky", label=1).status_code == 200  # a full run: no wait
    assert flaky.client.get("/readyz").status_code == 200


def wait_taken(server: Server, parts: float) -> None:
    """Wait until `parts` request parts have left the queue for a run (counted when taken)."""
    poll(lambda: server.metric("gan_queue_wait_seconds_count", model="slow") >= parts)


def test_admission_counts_running_images_not_only_queued_ones(slow: Server) -> None:
    rejected = slow.metric("gan_rejected_total", reason="overload")
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, slow, n=8)  # 4 run, 4 wait: 8 admitted
        poll(lambda: slow.metric("gan_admitted_images", model="slow") == 8)
        wait_taken(slow, 1)
        response = post(slow, n=1)  # 8 + 1 > GAN_MAX_QUEUE=8, although only 4 wait
        assert first.result().status_code == 200
    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "overloaded",
        "message": response.json()["error"]["message"],
        "field": None,
    }
    assert int(response.headers["retry-after"]) >= 1
    assert slow.metric("gan_rejected_total", reason="overload") == rejected + 1
    poll(lambda: slow.metric("gan_admitted_images", model="slow") == 0)


def test_a_full_model_still_gives_every_other_answer_first(
    slow_dir: Path, serve: Callable[..., Server]
) -> None:
    """A full model's refusals come from the fast path (service.api.fast_path) for a query and
    from the FastAPI route for a JSON body, alike; a request that is wrong in another way
    still gets its own 4xx first."""
    srv = serve(settings_for(slow_dir, max_batch=1, max_queue=8, max_samples=8))

    def count(status: int) -> float:
        return srv.metric("gan_requests_total", route="/samples", status=str(status))

    refusals = srv.metric("gan_rejected_total", reason="overload")
    answered = count(503)
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(post, srv, n=8)  # eight one-image runs: seconds of work
        poll(lambda: srv.metric("gan_admitted_images", model="slow") == 8)
        early = post(srv, n=1)
        in_body = srv.client.post("/samples", json={"n": 1})
        wrong = {
            "seed": post(srv, n=1, seed=-1),
            "format": post(srv, n=1, format="gif"),
            "model": post(srv, n=1, model="nope"),
            "label": post(srv, n=1, label=1),  # the slow model is unconditional
        }
        still_full = srv.metric("gan_admitted_images", model="slow") == 8
        assert holder.result().status_code == 200
    assert still_full
    for refused in (early, in_body):
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "overloaded"
        assert int(refused.headers["retry-after"]) >= 1
    assert {name: (r.status_code, r.json()["error"]["field"]) for name, r in wrong.items()} == {
        "seed": (422, "seed"),
        "format": (422, "format"),
        "model": (404, "model"),
        "label": (422, "label"),
    }
    assert srv.metric("gan_rejected_total", reason="overload") == refusals + 2
    assert count(503) == answered + 2


def test_retry_after_matches_the_wait_that_follows(
    slow_dir: Path, serve: Callable[..., Server]
) -> None:
    """Eight one-image runs (seconds of work) are admitted; a refused request is told how long
    they take to drain, in whole seconds, within a factor of two."""
    srv = serve(settings_for(slow_dir, max_batch=1, max_queue=8, max_samples=8))

    def held() -> float:
        return srv.metric("gan_admitted_images", model="slow")

    with ThreadPoolExecutor(16) as pool:
        admitted = [pool.submit(post, srv, n=1) for _ in range(8)]
        # Three runs done first: the estimate rests on the drain rate measured over them, not
        # on the warm-up's (the machine's speed drifts); then the places are taken again.
        poll(lambda: held() == 8)
        poll(lambda: held() <= 5)
        while (now := held()) < 8:
            admitted.append(pool.submit(post, srv, n=1))
            poll(lambda now=now: held() != now)  # admitted (or another one answered)
        refused = post(srv, n=1)
        told = float(refused.headers["retry-after"])
        started = time.monotonic()
        assert all(f.result().status_code == 200 for f in admitted)
        waited = time.monotonic() - started
    assert refused.status_code == 503
    assert told / 2 <= waited <= told * 2, (told, waited)


def test_work_past_its_deadline_is_dropped_with_504(hurried: Server) -> None:
    timeouts = hurried.metric("gan_rejected_total", reason="timeout")
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(post, hurried, n=2)
        wait_taken(hurried, 1)
        late = post(hurried, n=1)  # waits behind a run longer than its deadline
        assert running.result().status_code == 200  # started in time: not dropped
    assert late.status_code == 504
    assert late.json()["error"]["code"] == "timeout"
    assert hurried.metric("gan_rejected_total", reason="timeout") == timeouts + 1
    assert hurried.metric("gan_queue_depth", model="slow") == 0
    assert hurried.metric("gan_images_generated_total", model="slow") == 2


def test_client_disconnect_removes_its_queued_images(slow: Server) -> None:
    taken = slow.metric("gan_queue_wait_seconds_count", model="slow")
    images = slow.metric("gan_images_generated_total", model="slow")
    cancelled = slow.metric("gan_rejected_total", reason="cancelled")
    port = int(slow.url.rsplit(":", 1)[1])
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(post, slow, n=4)
        wait_taken(slow, taken + 1)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"POST /samples?n=3 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
            poll(lambda: slow.metric("gan_queue_depth", model="slow") == 3)
        poll(lambda: slow.metric("gan_rejected_total", reason="cancelled") == cancelled + 1)
        assert slow.metric("gan_queue_depth", model="slow") == 0
        assert running.result().status_code == 200
    assert slow.metric("gan_images_generated_total", model="slow") == images + 4


def test_health_answers_while_a_run_is_in_progress(slow: Server) -> None:
    taken = slow.metric("gan_queue_wait_seconds_count", model="slow")
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(post, slow, n=4)
        wait_taken(slow, taken + 1)
        assert slow.client.get("/healthz", timeout=SLOW_RUN_S / 2).status_code == 200
        assert running.result().status_code == 200


def test_a_request_running_past_its_deadline_is_answered_504_within_the_grace(
    slow_dir: Path, serve: Callable[..., Server]
) -> None:
    timeout = max(0.05, seconds_per_run(slow_dir / "slow.onnx") / 4)
    srv = serve(settings_for(slow_dir, max_batch=2, request_timeout_s=timeout, deadline_grace_s=0))
    timeouts = srv.metric("gan_rejected_total", reason="timeout")
    images = srv.metric("gan_images_generated_total", model="slow")
    response = post(srv, n=2)  # its one run takes four deadlines; no grace to wait for it
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    assert srv.metric("gan_rejected_total", reason="timeout") == timeouts + 1
    # Nobody waits for the run any more: it is stopped, generates nothing and frees its slot.
    poll(lambda: srv.metric("gan_runs_in_progress", model="slow") == 0)
    poll(lambda: srv.metric("gan_admitted_images", model="slow") == 0)
    assert srv.metric("gan_images_generated_total", model="slow") == images


def test_client_disconnect_while_running_stops_the_rest_of_its_work(
    slow_dir: Path, serve: Callable[..., Server]
) -> None:
    srv = serve(settings_for(slow_dir, max_batch=2))
    images = srv.metric("gan_images_generated_total", model="slow")
    port = int(srv.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /samples?n=8 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        poll(lambda: srv.metric("gan_runs_in_progress", model="slow") == 1)  # 2 of 8 running
    poll(lambda: srv.metric("gan_rejected_total", reason="cancelled") == 1)
    poll(lambda: srv.metric("gan_runs_in_progress", model="slow") == 0)
    assert srv.metric("gan_queue_depth", model="slow") == 0
    # the 6 queued rows never ran, and the run of the other 2 was stopped: nothing generated
    assert srv.metric("gan_images_generated_total", model="slow") == images
    poll(lambda: srv.metric("gan_admitted_images", model="slow") == 0)


def test_free_slots_run_at_once_in_parallel(slow_dir: Path, serve: Callable[..., Server]) -> None:
    srv = serve(settings_for(slow_dir, max_batch=4, run_slots=2))
    assert srv.client.get("/models").json()["models"][0]["run_slots"] == 2
    with ThreadPoolExecutor(2) as pool:
        answers = [pool.submit(post, srv, n=1) for _ in range(2)]
        poll(lambda: srv.metric("gan_runs_in_progress", model="slow") == 2)
        assert all(a.result().status_code == 200 for a in answers)
    assert srv.metric("gan_batch_size_count", model="slow") == 2  # one run each, no waiting


def test_a_large_request_is_split_across_free_slots(
    slow_dir: Path, serve: Callable[..., Server]
) -> None:
    srv = serve(settings_for(slow_dir, max_batch=8, run_slots=2))
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(post, srv, n=16)
        poll(lambda: srv.metric("gan_runs_in_progress", model="slow") == 2)
        assert answer.result().status_code == 200
    assert srv.metric("gan_batch_size_count", model="slow") == 2
    assert srv.metric("gan_batch_size_sum", model="slow") == 16


def test_a_cheap_request_is_not_split_across_free_slots(
    tmp_path: Path, serve: Callable[..., Server]
) -> None:
    models.mlp_generator(tmp_path / "fashion.onnx", conditional=True)  # microseconds a run
    srv = serve(settings_for(tmp_path, max_batch=8, run_slots=2))
    assert post(srv, n=8).status_code == 200
    assert srv.metric("gan_batch_size_count", model="fashion") == 1
    assert srv.metric("gan_batch_size_sum", model="fashion") == 8


def test_every_request_of_a_burst_is_answered_by_its_deadline_plus_the_grace(
    slow_dir: Path, serve: Callable[..., Server]
) -> None:
    """Twelve requests for twelve runs of the slow model with a deadline of about two runs:
    a few are answered 200, the rest 504 at their deadline — none waits longer."""
    run_s = seconds_per_run(slow_dir / "slow.onnx")
    timeout, grace = 2 * run_s, run_s / 2
    srv = serve(
        settings_for(
            slow_dir, max_batch=1, max_queue=64, request_timeout_s=timeout, deadline_grace_s=grace
        )
    )

    def timed(_: int) -> tuple[int, float]:
        started = time.monotonic()
        status = post(srv, n=1).status_code
        return status, time.monotonic() - started

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(timed, range(12)))
    statuses = sorted(status for status, _ in answers)
    assert set(statuses) == {200, 504}, statuses
    # The bound the service promises, plus the client's own connection and scheduling time.
    slack = 1.0
    assert max(took for _, took in answers) <= timeout + grace + slack, answers


def test_a_request_that_does_not_fit_waits_for_room_within_the_admission_wait(
    slow_dir: Path, serve: Callable[..., Server]
) -> None:
    srv = serve(
        settings_for(slow_dir, max_batch=8, max_queue=8, max_samples=8, admission_wait_ms=30_000)
    )
    rejected = srv.metric("gan_rejected_total", reason="overload")
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, srv, n=8)
        poll(lambda: srv.metric("gan_admitted_images", model="slow") == 8)
        second = pool.submit(post, srv, n=1)  # no room until the first is answered
        assert first.result().status_code == 200
        assert second.result().status_code == 200
    assert srv.metric("gan_rejected_total", reason="overload") == rejected


def test_run_slots_run_at_a_lower_cpu_priority_than_the_event_loop(server: Server) -> None:
    """When cores are short, admission, refusals and /healthz (the event loop) come first."""
    assert post(server, n=2).status_code == 200
    slots = [t for t in threading.enumerate() if t.name.startswith("run-fashion")]
    assert slots, [t.name for t in threading.enumerate()]
    process_nice = os.getpriority(os.PRIO_PROCESS, 0)
    for slot in slots:
        assert slot.native_id is not None
        expected = min(process_nice + SLOT_NICENESS, 19)
        assert os.getpriority(os.PRIO_PROCESS, slot.native_id) == expected


def test_the_max_batch_is_lowered_to_runs_within_gan_max_run_ms(
    slow_dir: Path, model_dir: Path, serve: Callable[..., Server]
) -> None:
    # Every run of the slow model takes about SLOW_RUN_S whatever its size: a limit of a
    # tenth of that leaves runs of one image, and a request of three is split into three runs.
    slow = serve(settings_for(slow_dir, max_batch=8, max_run_ms=SLOW_RUN_S * 100))
    assert slow.client.get("/models").json()["models"][0]["limits"]["max_batch"] == 1
    runs = slow.metric("gan_batch_size_count", model="slow")
    assert slow.client.post("/samples", params={"n": 3, "format": "npy"}).status_code == 200
    assert slow.metric("gan_batch_size_count", model="slow") == runs + 3
    # the tiny models run in microseconds: their max batch stays what was set
    fast = serve(settings_for(model_dir, max_batch=8, max_run_ms=50))
    assert {m["limits"]["max_batch"] for m in fast.client.get("/models").json()["models"]} == {8}
