"""SIGTERM on a real `gan-serve` with keep-alive clients: requests sent before the signal are
answered (with `Connection: close`), requests sent during the drain get a 503 JSON answer on
their open connection, never a reset, and the process exits 0."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import onnx_models as models
from tests.support.gan_serve import Served, gan_serve, poll

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane


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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_answers_keep_alive_clients_without_a_reset_then_exits_0(
    served: Served, sig: signal.Signals
) -> None:
    busy, idle = connect(served), connect(served)
    assert _post(idle, "/samples?n=1&format=npy")[0] == 200  # now an idle keep-alive connection
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(_post, busy, "/samples?n=2&format=npy")
        poll(lambda: served.metric("gan_admitted_images", model="slow") == 2)
        served.process.send_signal(sig)  # a terminal's hang-up drains like SIGTERM
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


# -- slow readers: the drain waits for the last byte of every answer -----------------------------

READERS = 4
# What a slow reader takes, and how often (~2 MB/s), into a receive buffer of a fixed size:
# a 16 MB answer takes ~8 s, more than uvicorn's own 5 s of grace after the drain, and more
# than the kernel holds for it (a socket's send buffer grows to 4 MB on Linux).
PACE_BYTES, PACE_S, RECEIVE_BUFFER = 65536, 0.03, 65536


def slow_reader(
    port: int, received: dict[int, tuple[int, int]], index: int, go: threading.Event
) -> None:
    """POST /samples?n=1024&format=json (~16 MB of 64x64 RGB images) with a small receive
    buffer; read nothing until `go`, then at the pace of a slow client; record (body bytes
    received, Content-Length)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)  # before connect
    sock.settimeout(60)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"POST /samples?n=1024&format=json HTTP/1.1\r\nHost: t\r\n\r\n")
    go.wait()
    data = b""
    with sock:
        while True:
            try:
                chunk = sock.recv(PACE_BYTES)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            head, found, body = data.partition(b"\r\n\r\n")
            if found:
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                received[index] = (len(body), length)
            time.sleep(PACE_S)  # the slow client's pace, not a wait for the server


@pytest.mark.parametrize("drain_timeout_s", [30, 1])
def test_sigterm_waits_until_slow_readers_have_the_last_byte(
    tmp_path: Path, drain_timeout_s: int
) -> None:
    models.mlp_generator(tmp_path / "tiny.onnx", shape=(3, 64, 64))
    env = {
        "GAN_MODEL_DIR": str(tmp_path),
        "GAN_PROVIDERS": "cpu",
        "GAN_INTRA_OP_THREADS": "1",
        "GAN_DRAIN_TIMEOUT_S": str(drain_timeout_s),
        "GAN_LOG_LEVEL": "info",
        "GAN_ACCESS_LOG": "false",
    }
    received: dict[int, tuple[int, int]] = {}
    go = threading.Event()
    with gan_serve(env, tmp_path / "server.log", stop_timeout_s=60) as served:
        readers = [
            threading.Thread(target=slow_reader, args=(served.port, received, i, go))
            for i in range(READERS)
        ]
        for reader in readers:
            reader.start()
        # every request admitted (4 x 1024 images held until answered), none answered yet
        poll(lambda: served.metric("gan_admitted_images", model="tiny") == READERS * 1024)
        if drain_timeout_s == 1:  # every answer handed to uvicorn: only the sending is left
            poll(lambda: served.metric("gan_admitted_images", model="tiny") == 0)
        served.process.send_signal(signal.SIGTERM)
        go.set()
        assert served.process.wait(timeout=60) == 0
        for reader in readers:
            reader.join()
    log = served.log()
    complete = [got == length > 10_000_000 for got, length in received.values()]
    if drain_timeout_s == 30:  # time enough: every byte arrives, then the process exits
        assert complete == [True] * READERS, received
        assert log.index("drained") < log.index("every answer sent"), log
    else:  # the drain's time is up first: said in the log, then the process exits anyway
        assert not all(complete), received
        assert f"drain timed out with {READERS} answers not sent in full" in log, log
