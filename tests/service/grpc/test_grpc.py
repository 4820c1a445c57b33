"""The Open Inference Protocol over gRPC, spoken by real clients: tritonclient.grpc (sync)
and tritonclient.grpc.aio, against the real server with GAN_GRPC_PORT set.

    python -m pytest tests/service/grpc/test_grpc.py -q
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.grpc.aio as tgrpc_aio
from tritonclient.utils import InferenceServerException

from core.contract import inspect, to_uint8
from service.grpc.messages import MESSAGES, SERVICE
from service.pipeline import seeding
from tests.service.api.test_v2_http import run_model
from tests.service.conftest import Server, samples_npy, seconds_per_run
from tests.service.grpc.conftest import grpc_settings, grpc_url
from tests.service.test_main import self_signed
from tests.support.gan_serve import poll

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

LATENT = 8


@pytest.fixture
def client(grpc_server: Server) -> Iterator[tgrpc.InferenceServerClient]:
    triton = tgrpc.InferenceServerClient(grpc_url(grpc_server))
    yield triton
    triton.close()


def tensor(name: str, array: np.ndarray) -> tgrpc.InferInput:
    datatype = {np.float32: "FP32", np.int64: "INT64"}[array.dtype.type]
    made = tgrpc.InferInput(name, list(array.shape), datatype)
    made.set_data_from_numpy(array)
    return made


def outputs(*names: str) -> list[tgrpc.InferRequestedOutput]:
    return [tgrpc.InferRequestedOutput(name) for name in names]


def image_seeds(seed: int, n: int) -> np.ndarray:
    return np.array([seeding.derive(seed, i) for i in range(n)], np.int64)


def test_server_liveness_readiness_and_metadata(client: tgrpc.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata(as_json=True)
    assert meta["name"] == "ganserve" and meta["extensions"] == ["binary_tensor_data"]


def test_model_metadata_and_readiness(client: tgrpc.InferenceServerClient, model_dir: Path) -> None:
    spec = inspect(model_dir / "fashion.onnx")
    meta = client.get_model_metadata("fashion", as_json=True)
    assert meta["versions"] == [spec.sha256] and meta["platform"] == "onnxruntime_onnx"
    assert [i["name"] for i in meta["inputs"]] == ["z", "seed", "label"]
    assert {"name": "png", "datatype": "BYTES", "shape": ["-1"]} in meta["outputs"]
    assert client.is_model_ready("fashion") and client.is_model_ready("fashion", spec.sha256)
    with pytest.raises(InferenceServerException, match="unknown model 'nope'") as caught:
        client.is_model_ready("nope")
    assert caught.value.status() == "StatusCode.NOT_FOUND"


def test_the_raw_form_gives_the_onnx_files_own_image(
    client: tgrpc.InferenceServerClient, model_dir: Path
) -> None:
    z = np.random.default_rng(4).standard_normal((3, LATENT)).astype(np.float32)
    labels = np.array([1, 2, 3], np.int64)
    result = client.infer("fashion", [tensor("z", z), tensor("label", labels)], request_id="a")
    image = result.as_numpy("image")
    assert image.dtype == np.float32
    assert np.array_equal(image, run_model(model_dir / "fashion.onnx", z, labels))
    response = result.get_response(as_json=True)
    assert (
        response["id"] == "a"
        and response["model_version"] == inspect(model_dir / "fashion.onnx").sha256
    )


def test_the_seeded_form_gives_the_samples_images_bit_for_bit(
    client: tgrpc.InferenceServerClient, grpc_server: Server
) -> None:
    seed, n = 4321, 4
    expected = samples_npy(grpc_server, n=n, seed=seed, model="fashion")
    result = client.infer(
        "fashion", [tensor("seed", image_seeds(seed, n))], outputs=outputs("image", "pixels", "png")
    )
    assert np.array_equal(result.as_numpy("pixels"), expected)
    assert np.array_equal(to_uint8(result.as_numpy("image")), expected)
    pngs = result.as_numpy("png")
    assert pngs.shape == (n,) and all(bytes(p).startswith(b"\x89PNG") for p in pngs)
    default = client.infer("fashion", [tensor("seed", image_seeds(seed, n))])
    assert [o.name for o in default.get_response().outputs] == ["pixels"]


def test_contents_instead_of_raw_bytes_are_read_too(grpc_server: Server) -> None:
    request = MESSAGES["ModelInferRequest"](model_name="digits")
    seeds = image_seeds(77, 2)
    request.inputs.add(name="seed", datatype="INT64", shape=[2]).contents.int64_contents.extend(
        seeds.tolist()
    )
    with grpc.insecure_channel(grpc_url(grpc_server)) as channel:
        call = channel.unary_unary(
            f"/{SERVICE}/ModelInfer",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=MESSAGES["ModelInferResponse"].FromString,
        )
        response = call(request, timeout=30)
    pixels = np.frombuffer(response.raw_output_contents[0], np.uint8).reshape(2, 1, 28, 28)
    assert np.array_equal(pixels, samples_npy(grpc_server, n=2, seed=77, model="digits"))


def test_the_aio_client_speaks_the_same(grpc_server: Server, model_dir: Path) -> None:
    z = np.ones((2, LATENT), np.float32)

    async def talk() -> tuple[bool, dict, np.ndarray]:
        triton = tgrpc_aio.InferenceServerClient(grpc_url(grpc_server))
        try:
            ready = await triton.is_server_ready() and await triton.is_model_ready("digits")
            meta = await triton.get_model_metadata("digits", as_json=True)
            result = await triton.infer("digits", [tensor("z", z)])
            return ready, meta, result.as_numpy("image")
        finally:
            await triton.close()

    ready, meta, image = asyncio.run(talk())
    assert ready and meta["name"] == "digits"
    assert np.array_equal(image, run_model(model_dir / "digits.onnx", z))


def test_calls_are_counted_under_their_method_and_status(
    client: tgrpc.InferenceServerClient, grpc_server: Server
) -> None:
    route = f"/{SERVICE}/ModelInfer"
    ok = grpc_server.metric("gan_requests_total", route=route, status="OK")
    bad = grpc_server.metric("gan_requests_total", route=route, status="NOT_FOUND")
    client.infer("digits", [tensor("seed", np.array([1], np.int64))])
    with pytest.raises(InferenceServerException):
        client.infer("nope", [tensor("seed", np.array([1], np.int64))])
    assert grpc_server.metric("gan_requests_total", route=route, status="OK") == ok + 1
    assert grpc_server.metric("gan_requests_total", route=route, status="NOT_FOUND") == bad + 1


def test_keys_and_rate_limits_hold_over_grpc(serve: Callable[..., Server], model_dir: Path) -> None:
    settings = grpc_settings(
        model_dir, api_keys=["k1"], rate_limit_images_per_s=0.001, rate_limit_burst=64
    )
    srv = serve(settings)
    triton = tgrpc.InferenceServerClient(grpc_url(srv))
    seeds = tensor("seed", np.arange(60, dtype=np.int64))
    try:
        assert triton.is_server_ready()  # the server-level calls stay open, like the probes
        with pytest.raises(InferenceServerException, match="API key is needed") as caught:
            triton.infer("digits", [seeds])
        assert caught.value.status() == "StatusCode.UNAUTHENTICATED"
        with pytest.raises(InferenceServerException, match="not valid"):
            triton.get_model_metadata("digits", headers={"authorization": "Bearer k2"})
        assert (
            triton.infer("digits", [seeds], headers={"x-api-key": "k1"}).as_numpy("pixels").shape[0]
            == 60
        )
        with pytest.raises(InferenceServerException, match="rate limit") as caught:
            triton.infer(
                "digits",
                [tensor("seed", np.arange(5, dtype=np.int64))],
                headers={"authorization": "Bearer k1"},
            )
        assert caught.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    finally:
        triton.close()
    assert srv.metric("gan_auth_rejected_total", reason="unauthorized") == 2
    assert srv.metric("gan_auth_rejected_total", reason="rate_limited") == 1


def test_the_calls_not_served_are_unimplemented(client: tgrpc.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_config("digits")
    assert caught.value.status() == "StatusCode.UNIMPLEMENTED"
    assert client.is_server_live()


def test_a_call_cancelled_by_its_deadline_stops_costing_work(
    serve: Callable[..., Server], slow_dir: Path
) -> None:
    srv = serve(grpc_settings(slow_dir, max_batch=1, default_model="slow"))
    triton = tgrpc.InferenceServerClient(grpc_url(srv))
    before = srv.metric("gan_rejected_total", reason="cancelled")
    try:
        # Two images of ~0.6 s each, and a client that waits 0.3 s: its call ends first.
        with pytest.raises(InferenceServerException) as caught:
            triton.infer("slow", [tensor("seed", np.array([1, 2], np.int64))], client_timeout=0.3)
        assert caught.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    finally:
        triton.close()
    poll(lambda: srv.metric("gan_rejected_total", reason="cancelled") == before + 1)
    poll(lambda: srv.metric("gan_queue_depth", model="slow") == 0)


def test_with_tls_files_grpc_is_tls_only(
    serve: Callable[..., Server], model_dir: Path, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    srv = serve(grpc_settings(model_dir, tls_cert_file=cert, tls_key_file=key))
    secure = tgrpc.InferenceServerClient(grpc_url(srv), ssl=True, root_certificates=str(cert))
    try:
        assert secure.is_server_ready()
        result = secure.infer("digits", [tensor("seed", np.array([5], np.int64))])
        assert result.as_numpy("pixels").shape == (1, 1, 28, 28)
    finally:
        secure.close()
    plain = tgrpc.InferenceServerClient(grpc_url(srv))
    try:
        with pytest.raises(InferenceServerException) as caught:
            plain.is_server_ready(client_timeout=5)
        assert caught.value.status() == "StatusCode.UNAVAILABLE"
    finally:
        plain.close()


def test_the_request_deadline_holds_over_grpc(serve: Callable[..., Server], slow_dir: Path) -> None:
    timeout = max(0.05, seconds_per_run(slow_dir / "slow.onnx") / 4)
    srv = serve(
        grpc_settings(slow_dir, max_batch=1, request_timeout_s=timeout, default_model="slow")
    )
    triton = tgrpc.InferenceServerClient(grpc_url(srv))
    try:
        with pytest.raises(InferenceServerException, match="deadline") as caught:
            triton.infer("slow", [tensor("seed", np.array([1, 2], np.int64))])
        assert caught.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    finally:
        triton.close()
