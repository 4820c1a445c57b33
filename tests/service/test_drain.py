"""SIGTERM on a real `gan-serve` with keep-alive clients: requests sent before the signal are
answered (with `Connection: close`), requests sent during the drain get a 503 JSON answer on
their open connection, never a reset, and the process exits 0."""

from __future__ import annotations

import http.client
import json
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import onnx_models as models
from tests.support.gan_serve import Served, gan_serve, poll


def connect(served: Served) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    conn.connect()
    return conn


@pytest.fixture
def served(tmp_path: Path, slow_iterations: int) -> Iterator[Served]:
    """gan-serve on the slow model: one slot, one image per run (two runs take ~2 × 0.6 s)."""
    models.slow_generator(tmp_path / "slow.onnx", iterations=slow_iterations)
    env = {
        "GAN_MODEL_DIR": str(tmp_path),
        "GAN_PROVIDERS": "cpu",
        "GAN_RUN_SLOTS": "1",
        "GAN_MAX_BATCH": "1",
        "GAN_DRAIN_TIMEOUT_S": "30",
        "GAN_LOG_LEVEL": "warning",
    }
    with gan_serve(env, tmp_path / "server.log", stop_timeout_s=30) as running:
        yield running


def _post(conn: http.client.HTTPConnection, path: str) -> tuple[int, dict[str, str], bytes]:
    conn.request("POST", path, headers={"Content-Length": "0"})
    response = conn.getresponse()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_sigterm_answers_keep_alive_clients_without_a_reset_then_exits_0(served: Served) -> None:
    busy, idle = connect(served), connect(served)
    assert _post(idle, "/samples?n=1&format=npy")[0] == 200  # now an idle keep-alive connection
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(_post, busy, "/samples?n=2&format=npy")
        poll(lambda: served.metric("gan_admitted_images", model="slow") == 2)
        served.process.send_signal(signal.SIGTERM)
        poll(lambda: served.get("/readyz").json()["status"] == "draining")
        # A request sent after the signal on a connection opened before it: 503, not a reset.
        status, headers, body = _post(idle, "/samples?n=1")
        assert status == 503
        assert json.loads(body)["error"]["code"] == "draining"
        assert headers["connection"] == "close"
        # The request sent before the signal is answered in full, and told to close.
        status, headers, body = running.result()
    assert status == 200 and len(body) > 0
    assert headers["connection"] == "close"
    assert served.process.wait(timeout=30) == 0
    busy.close()
    idle.close()
