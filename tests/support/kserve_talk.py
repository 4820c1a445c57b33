"""KServe's v2 clients in a process of their own, for tests/service/grpc/test_kserve_client.py.

kserve's generated messages and tritonclient's both register the proto package `inference`
in protobuf's default pool, so the two clients cannot be imported into one process (the
second import fails: "duplicate symbol 'inference.ServerLiveRequest'"); the test runs this.

    python -m tests.support.kserve_talk HTTP_URL GRPC_ADDRESS OUT.npz

Asks model "digits" for image seeds [derive(11, i) for i < 3] over REST (binary and JSON
tensors, output `pixels`) and for a raw z (output `image`, the default) and image seeds
[derive(12, i) for i < 2] over gRPC; writes the arrays and the readiness answers to OUT.npz.
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

from service.pipeline import seeding

Z = np.random.default_rng(8).standard_normal((2, 8)).astype(np.float32)


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


async def talk(url: str, address: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"z": Z}
    rest = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
    try:
        out["rest_ready"] = np.array(await rest.is_model_ready(url, "digits"))
        for binary in (True, False):
            response = await rest.infer(url, seeded(11, 3, binary), "digits")
            out[f"rest_pixels_{binary}"] = response.outputs[0].as_numpy()
    finally:
        await rest.close()
    grpc_client = InferenceGRPCClient(address, retries=0)
    try:
        ready = await grpc_client.is_server_ready() and await grpc_client.is_model_ready("digits")
        out["grpc_ready"] = np.array(ready)
        out["grpc_image"] = (await grpc_client.infer(raw(Z))).outputs[0].as_numpy()
        out["grpc_pixels"] = (await grpc_client.infer(seeded(12, 2, True))).outputs[0].as_numpy()
    finally:
        await grpc_client.close()
    return out


def main(argv: list[str]) -> None:
    url, address, path = argv
    np.savez(path, **asyncio.run(talk(url, address)))


if __name__ == "__main__":
    main(sys.argv[1:])
