"""SIGTERM on a real `gan-serve` with GAN_GRPC_PORT: a ModelInfer call in flight is answered,
a call made during the drain is UNAVAILABLE with a message and ServerReady says false, then
the gRPC server stops with the HTTP one and the process exits 0."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
from tritonclient.utils import InferenceServerException

from tests.support import onnx_models as models
from tests.support.gan_serve import gan_serve, poll
from tests.support.ports import free_port

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane


def seeds(n: int) -> list[tgrpc.InferInput]:
    made = tgrpc.InferInput("seed", [n], "INT64")
    made.set_data_from_numpy(np.arange(n, dtype=np.int64))
    return [made]


def test_sigterm_drains_grpc_calls_then_stops_its_server(
    tmp_path: Path, slow_iterations: int
) -> None:
    models.slow_generator(tmp_path / "slow.onnx", iterations=slow_iterations)
    port = free_port()
    env = {
        "GAN_MODEL_DIR": str(tmp_path),
        "GAN_PROVIDERS": "cpu",
        "GAN_RUN_SLOTS": "1",
        "GAN_MAX_BATCH": "1",  # two images: two runs of ~0.6 s each
        "GAN_DRAIN_TIMEOUT_S": "30",
        "GAN_LOG_LEVEL": "warning",
        "GAN_GRPC_PORT": str(port),
    }
    with gan_serve(env, tmp_path / "server.log", stop_timeout_s=30) as served:
        client = tgrpc.InferenceServerClient(f"127.0.0.1:{port}")
        try:
            assert client.is_server_ready()
            with ThreadPoolExecutor(1) as pool:
                running = pool.submit(client.infer, "slow", seeds(2))
                poll(lambda: served.metric("gan_admitted_images", model="slow") == 2)
                served.process.send_signal(signal.SIGTERM)
                poll(lambda: not client.is_server_ready())
                with pytest.raises(InferenceServerException, match="shutting down") as caught:
                    client.infer("slow", seeds(1))
                assert caught.value.status() == "StatusCode.UNAVAILABLE"
                assert running.result().as_numpy("pixels").shape[0] == 2
        finally:
            client.close()
        assert served.process.wait(timeout=30) == 0
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")  # nobody listens any more
    with channel, pytest.raises(grpc.FutureTimeoutError):
        grpc.channel_ready_future(channel).result(timeout=1)
