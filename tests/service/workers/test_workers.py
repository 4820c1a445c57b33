"""Several worker processes on one port (`GAN_WORKERS`): a real `python -m service` with its
workers, small loads. The speed figures live in the benchmark, not here."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.settings import Settings
from service.workers.worker import part, share
from tests.support.gan_serve import Served, gan_serve, poll

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

KEY = "k-5a6b7c8d9e0f1a2b"


def workers_of(served: Served) -> list[int]:
    """The pids of the supervisor's worker processes."""
    pid = served.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sorted(int(child) for child in children)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fresh_post(served: Served, path: str, **headers: str) -> httpx.Response:
    """One request on a connection of its own: the kernel picks the worker per connection."""
    return httpx.post(served.url + path, headers=headers, timeout=30)


@pytest.fixture
def two(model_dir: Path, tmp_path: Path) -> Iterator[Served]:
    env = {"GAN_MODEL_DIR": str(model_dir), "GAN_WORKERS": "2", "GAN_PROVIDERS": "cpu"}
    with gan_serve(env, tmp_path / "server.log") as served:
        yield served


def test_the_parts_of_a_total_add_up_and_differ_by_at_most_one() -> None:
    for total in (1, 2, 7, 4096):
        for workers in (1, 2, 3, 16):
            parts = [part(total, i, workers) for i in range(workers)]
            assert sum(parts) == total and max(parts) - min(parts) <= 1


def test_each_worker_gets_its_share_of_the_queue_and_budget() -> None:
    settings = Settings(max_queue=4097, memory_budget_mb=1000)
    shares = [share(settings, i, 2) for i in range(2)]
    assert [(s.max_queue, s.memory_budget_mb) for s in shares] == [(2049, 500), (2048, 500)]


def test_two_workers_serve_one_port_and_share_the_connections(two: Served) -> None:
    workers = workers_of(two)
    assert len(workers) == 2
    before = {pid: cpu_seconds(pid) for pid in workers}
    for _ in range(200):
        assert fresh_post(two, "/samples?n=16&format=png").status_code == 200
    spent = {pid: cpu_seconds(pid) - before[pid] for pid in workers}
    total = sum(spent.values())
    assert all(seconds >= 0.2 * total for seconds in spent.values()), spent


def test_one_scrape_shows_the_whole_service(two: Served) -> None:
    before = two.metric("gan_requests_total", route="/samples", status="200")
    for _ in range(40):
        assert fresh_post(two, "/samples?n=2&format=npy&model=fashion").status_code == 200
    assert two.metric("gan_requests_total", route="/samples", status="200") == before + 40
    assert two.metric("gan_images_generated_total", model="fashion") >= 80
    assert (two.metric("gan_workers"), two.metric("gan_workers_ready")) == (2, 2)
    # Each worker's busy share: a CPU counter per worker index, never per pid.
    assert two.metric("gan_worker_cpu_seconds_total", worker="0") > 0
    assert two.metric("gan_worker_cpu_seconds_total", worker="1") > 0
    assert two.metric("gan_ready") == 1
    assert two.metric("process_resident_memory_bytes") > 0
    ready = two.get("/readyz").json()
    assert ready["workers"] == {"ready": 2, "total": 2}


def test_the_same_seed_gives_the_same_bytes_from_every_worker(two: Served) -> None:
    bodies = {fresh_post(two, "/samples?n=3&seed=11&format=npy").content for _ in range(20)}
    assert len(bodies) == 1


def test_a_killed_worker_is_started_again_while_the_other_serves(two: Served) -> None:
    victim = workers_of(two)[0]
    os.kill(victim, signal.SIGKILL)
    answered = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and answered < 5:
        with contextlib.suppress(httpx.TransportError):  # one the dead worker had accepted
            answered += fresh_post(two, "/samples?n=1&format=npy").status_code == 200
    assert answered == 5  # the other worker went on serving
    poll(lambda: two.metric("gan_process_restarts_total") == 1, timeout=10, what="a restart")
    poll(lambda: two.status("/readyz") == 200, timeout=10, what="both workers ready again")
    assert victim not in workers_of(two) and len(workers_of(two)) == 2
    assert "worker 0" in two.log() or "worker 1" in two.log()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_stops_every_worker_and_leaves_no_shared_file(
    two: Served, sig: signal.Signals
) -> None:
    workers = workers_of(two)
    shared = [
        Path(os.readlink(f"/proc/{workers[0]}/fd/{fd}"))
        for fd in os.listdir(f"/proc/{workers[0]}/fd")
        if "gan-serve-" in os.readlink(f"/proc/{workers[0]}/fd/{fd}")
    ]
    assert shared, "the worker maps the shared state file"
    two.process.send_signal(sig)  # SIGHUP too: no worker is left behind as an orphan
    assert two.process.wait(timeout=60) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert not any(path.exists() for path in shared)
    assert not shared[0].parent.exists()


def test_a_keys_rate_limit_is_the_services_not_each_workers(
    model_dir: Path, tmp_path: Path
) -> None:
    env = {
        "GAN_MODEL_DIR": str(model_dir),
        "GAN_WORKERS": "2",
        "GAN_PROVIDERS": "cpu",
        "GAN_API_KEYS": KEY,
        "GAN_RATE_LIMIT_IMAGES_PER_S": "1",
        "GAN_MAX_SAMPLES": "16",
    }
    with gan_serve(env, tmp_path / "server.log") as served:
        started, images = time.monotonic(), 0
        for _ in range(40):  # fresh connections: both workers take some
            response = fresh_post(served, "/samples?n=4&format=npy", **{"X-API-Key": KEY})
            assert response.status_code in (200, 429), response.text
            images += 4 * (response.status_code == 200)
        elapsed = time.monotonic() - started
    assert 16 <= images <= 16 + elapsed * 1 + 4, (images, elapsed)
