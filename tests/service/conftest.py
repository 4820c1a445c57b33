"""Fixtures for the service tests: tiny ONNX generators (tests/support/onnx_models.py) and
real uvicorn servers.

Servers run the real app (`create_app`) under a real uvicorn on a free loopback port, in a
thread of the test process (SIGTERM tests start `python -m service` in a subprocess instead).
onnxruntime is real, on the CPU, one intra-op thread per model to go easy on small machines.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import uvicorn

from service.app import create_app
from service.http.connections import Parser, uvicorn_options
from service.settings import Settings
from tests.support import onnx_models as models
from tests.support.gan_serve import metric_samples, poll

SLOW_RUN_S = 0.6  # target duration of one run of the slow model


class Server:
    """The real app under a real uvicorn, in a thread, on a free loopback port."""

    def __init__(self, settings: Settings, parser: Parser = "httptools") -> None:
        self.app = create_app(settings)
        self.settings = settings
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._sock.getsockname()  # for raw sockets
        self.url = f"http://127.0.0.1:{self.address[1]}"
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            ws="none",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=10,
            **uvicorn_options(settings, parser=parser),  # the connection layer gan-serve runs
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def start(self, ready: bool = True) -> Server:
        self.thread.start()
        poll(lambda: self.server.started, timeout=10)
        if ready:
            poll(lambda: self.client.get("/readyz").status_code == 200, timeout=60)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.client.close()
        self._sock.close()
        assert not self.thread.is_alive(), "server did not stop"

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return metric_samples(self.client.get("/metrics").text)

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)


def settings_for(model_dir: Path, **overrides: Any) -> Settings:
    """Test settings: CPU, one thread, small limits; `overrides` as Settings fields."""
    values: dict[str, Any] = {
        "model_dir": model_dir,
        "providers": ["cpu"],
        "intra_op_threads": 1,
        "max_batch": 8,
        "max_samples": 64,
        "max_queue": 256,
        "run_slots": 1,  # one run at a time unless a test asks for more: runs are countable
        "max_run_ms": 0,  # max_batch as set, however long the run: batches are countable
        "drain_timeout_s": 10,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def server(model_dir: Path) -> Iterator[Server]:
    """One server for the tests that only read: "fashion" (conditional, the default) and
    "digits", under the test settings. Tests that need other settings start their own."""
    started = Server(settings_for(model_dir, default_model="fashion")).start()
    yield started
    started.stop()


def npy(response: httpx.Response) -> np.ndarray:
    """The images of a 200 answer in the npy format."""
    assert response.status_code == 200, response.text
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def samples_npy(server: Server, **params: object) -> np.ndarray:
    """`POST /samples` with `params`, as npy."""
    return npy(server.client.post("/samples", params={**params, "format": "npy"}))


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """serve(settings, ready=True) starts a server that is stopped after the test."""
    started: list[Server] = []

    def start(settings: Settings, ready: bool = True) -> Server:
        server = Server(settings)
        started.append(server)
        return server.start(ready=ready)

    yield start
    for server in started:
        server.stop()


def seconds_per_run(path: Path, runs: int = 1) -> float:
    """How long one run of `path` takes now, on one thread (after one unmeasured run)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"z": np.zeros((1, 8), np.float32)}
    session.run(None, feed)
    started = time.perf_counter()
    for _ in range(runs):
        session.run(None, feed)
    return (time.perf_counter() - started) / runs


@pytest.fixture(scope="session")
def slow_iterations(tmp_path_factory: pytest.TempPathFactory) -> int:
    """Loop iterations that make one slow-model run take about SLOW_RUN_S on this machine."""
    path = tmp_path_factory.mktemp("calibrate") / "slow.onnx"
    models.slow_generator(path, iterations=400)
    return max(400, int(SLOW_RUN_S / (seconds_per_run(path, runs=3) / 400)))


@pytest.fixture
def slow_dir(tmp_path: Path, slow_iterations: int) -> Path:
    """A directory with one slow model, "slow"."""
    models.slow_generator(tmp_path / "slow.onnx", iterations=slow_iterations)
    return tmp_path
