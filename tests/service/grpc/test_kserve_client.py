"""KServe's own Python client (`kserve`: InferenceRESTClient with the v2 protocol, and
InferenceGRPCClient) against the real server, over HTTP (binary and JSON tensors) and gRPC.

    python -m pytest tests/service/grpc/test_kserve_client.py -q
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

from service.pipeline import seeding
from tests.service.api.test_v2_http import run_model
from tests.service.conftest import Server, samples_npy
from tests.service.grpc.conftest import grpc_url

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane


def seeded(seed: int, n: int, binary: bool) -> InferRequest:
    seeds = np.array([seeding.derive(seed, i) for i in range(n)], np.int64)
    tensor = InferInput("seed", [n], "INT64")
    tensor.set_data_from_numpy(seeds, binary_data=binary)
    outputs = [RequestedOutput("pixels", {"binary_data": binary})]
    return InferRequest("digits", [tensor], request_outputs=outputs)


def raw(z: np.ndarray) -> InferRequest:
    tensor = InferInput("z", list(z.shape), "FP32")
    tensor.set_data_from_numpy(z)
    return InferRequest("digits", [tensor])


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_kserves_rest_client_gets_the_samples_images(grpc_server: Server, binary: bool) -> None:
    async def talk() -> tuple[bool, np.ndarray]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
        try:
            ready = await client.is_model_ready(grpc_server.url, "digits")
            response = await client.infer(grpc_server.url, seeded(11, 3, binary), "digits")
            return ready, response.outputs[0].as_numpy()
        finally:
            await client.close()

    ready, pixels = asyncio.run(talk())
    assert ready
    expected = samples_npy(grpc_server, n=3, seed=11, model="digits")
    assert np.array_equal(pixels.reshape(expected.shape), expected)


def test_kserves_grpc_client_gets_the_onnx_files_image(
    grpc_server: Server, model_dir: Path
) -> None:
    z = np.random.default_rng(8).standard_normal((2, 8)).astype(np.float32)

    async def talk() -> tuple[bool, np.ndarray, np.ndarray]:
        client = InferenceGRPCClient(grpc_url(grpc_server), retries=0)
        try:
            ready = await client.is_server_ready() and await client.is_model_ready("digits")
            image = (await client.infer(raw(z))).outputs[0].as_numpy()
            pixels = (await client.infer(seeded(12, 2, True))).outputs[0].as_numpy()
            return ready, image, pixels
        finally:
            await client.close()

    ready, image, pixels = asyncio.run(talk())
    assert ready
    assert np.array_equal(image, run_model(model_dir / "digits.onnx", z))
    assert np.array_equal(pixels, samples_npy(grpc_server, n=2, seed=12, model="digits"))
