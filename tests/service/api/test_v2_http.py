"""The Open Inference Protocol over HTTP, spoken by a real client: tritonclient's HTTP
clients (sync on geventhttpclient, aio on aiohttp), JSON and binary tensors, against the
real server (the session's "fashion" and "digits" models).

    python -m pytest tests/service/api/test_v2_http.py -q
"""

from __future__ import annotations

import asyncio
import base64
import io
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as http
import tritonclient.http.aio as http_aio
from PIL import Image
from tritonclient.utils import InferenceServerException

from core.contract import inspect, to_uint8
from service.pipeline import seeding
from tests.service.conftest import Server, samples_npy, seconds_per_run, settings_for
from tests.support.gan_serve import poll

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

LATENT = 8


@pytest.fixture
def client(server: Server) -> Iterator[http.InferenceServerClient]:
    triton = http.InferenceServerClient(server.url.removeprefix("http://"))
    yield triton
    triton.close()


def run_model(path: Path, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """The ONNX file's own answer: onnxruntime on one thread, as the server runs it."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"z": z} if labels is None else {"z": z, "label": labels}
    return session.run(["image"], feed)[0]


def tensor(name: str, array: np.ndarray, binary: bool) -> http.InferInput:
    datatype = {np.float32: "FP32", np.int64: "INT64"}[array.dtype.type]
    made = http.InferInput(name, list(array.shape), datatype)
    made.set_data_from_numpy(array, binary_data=binary)
    return made


def outputs(*names: str, binary: bool = True) -> list[http.InferRequestedOutput]:
    return [http.InferRequestedOutput(name, binary_data=binary) for name in names]


def image_seeds(seed: int, n: int) -> np.ndarray:
    return np.array([seeding.derive(seed, i) for i in range(n)], np.int64)


def test_server_liveness_readiness_and_metadata(client: http.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "ganserve" and "binary_tensor_data" in meta["extensions"]


def test_model_metadata_has_the_signature_version_and_class_names(
    client: http.InferenceServerClient, model_dir: Path
) -> None:
    spec = inspect(model_dir / "fashion.onnx")
    meta = client.get_model_metadata("fashion")
    assert meta["versions"] == [spec.sha256]
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        "z": "FP32",
        "seed": "INT64",
        "label": "INT64",
    }
    assert {"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]} in meta["outputs"]
    assert meta["parameters"]["class_names"] == list(spec.class_names or ())
    assert client.get_model_metadata("fashion", model_version=spec.sha256) == meta
    assert client.is_model_ready("fashion") and client.is_model_ready("digits")
    assert client.is_model_ready("fashion", model_version=spec.sha256)
    assert not client.is_model_ready("fashion", model_version="2")
    assert not client.is_model_ready("nope")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_the_raw_form_gives_the_onnx_files_own_image(
    client: http.InferenceServerClient, model_dir: Path, binary: bool
) -> None:
    z = np.random.default_rng(3).standard_normal((3, LATENT)).astype(np.float32)
    labels = np.array([0, 4, 9], np.int64)
    result = client.infer(
        "fashion",
        [tensor("z", z, binary), tensor("label", labels, binary)],
        outputs=outputs("image", binary=binary),
    )
    image = result.as_numpy("image")
    assert image.dtype == np.float32 and image.shape == (3, 1, 28, 28)
    assert np.array_equal(image, run_model(model_dir / "fashion.onnx", z, labels))
    assert result.get_response()["model_version"] == inspect(model_dir / "fashion.onnx").sha256


def test_the_raw_form_answers_image_by_default_in_json(
    client: http.InferenceServerClient, model_dir: Path
) -> None:
    z = np.zeros((1, LATENT), np.float32)
    response = client.infer("digits", [tensor("z", z, binary=False)], outputs=None)
    assert [o["name"] for o in response.get_response()["outputs"]] == ["image"]
    assert np.array_equal(response.as_numpy("image"), run_model(model_dir / "digits.onnx", z))


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_the_seeded_form_gives_the_samples_images_bit_for_bit(
    client: http.InferenceServerClient, server: Server, binary: bool
) -> None:
    seed, n = 1234, 5
    expected = samples_npy(server, n=n, seed=seed, model="fashion")
    result = client.infer(
        "fashion",
        [tensor("seed", image_seeds(seed, n), binary)],
        outputs=outputs("pixels", "png", "image", binary=binary),
    )
    pixels = result.as_numpy("pixels")
    assert pixels.dtype == np.uint8 and np.array_equal(pixels, expected)
    assert np.array_equal(to_uint8(result.as_numpy("image")), expected)
    pngs = result.as_numpy("png")
    assert pngs.shape == (n,)
    for i, png in enumerate(pngs):
        data = png if binary else base64.b64decode(png)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)))[None], expected[i])


def test_the_seeded_form_answers_pixels_by_default_and_takes_a_label(
    client: http.InferenceServerClient, server: Server
) -> None:
    seeds = image_seeds(99, 2)
    result = client.infer(
        "fashion", [tensor("seed", seeds, True), tensor("label", np.array([7, 7]), True)]
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["pixels"]
    expected = samples_npy(server, n=2, seed=99, label=7, model="fashion")
    assert np.array_equal(result.as_numpy("pixels"), expected)


def test_a_versioned_infer_and_the_request_id_come_back(
    client: http.InferenceServerClient, model_dir: Path
) -> None:
    version = inspect(model_dir / "digits.onnx").sha256
    result = client.infer(
        "digits", [tensor("seed", np.array([1]), True)], model_version=version, request_id="r-1"
    )
    assert result.get_response()["id"] == "r-1"
    assert result.get_response()["model_version"] == version


def test_errors_come_as_the_protocols_error_with_a_message(
    client: http.InferenceServerClient, server: Server
) -> None:
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        client.infer("nope", [tensor("seed", np.array([1]), True)])
    with pytest.raises(InferenceServerException, match="must be INT64, not FP32"):
        client.infer("digits", [tensor("seed", np.array([1.0], np.float32), True)])
    response = server.client.get("/v2/models/nope")
    assert response.status_code == 404 and response.json() == {"error": response.json()["error"]}
    assert isinstance(response.json()["error"], str)


def test_the_aio_client_speaks_the_same(server: Server, model_dir: Path) -> None:
    async def talk() -> tuple[bool, dict, np.ndarray, np.ndarray]:
        triton = http_aio.InferenceServerClient(server.url.removeprefix("http://"))
        try:
            ready = await triton.is_server_ready() and await triton.is_model_ready("digits")
            meta = await triton.get_model_metadata("digits")
            z = np.ones((2, LATENT), np.float32)
            raw = await triton.infer("digits", [tensor("z", z, True)])
            seeded = await triton.infer(
                "digits", [tensor("seed", image_seeds(5, 3), False)], outputs=outputs("pixels")
            )
            return ready, meta, raw.as_numpy("image"), seeded.as_numpy("pixels")
        finally:
            await triton.close()

    ready, meta, image, pixels = asyncio.run(talk())
    assert ready and meta["name"] == "digits"
    z = np.ones((2, LATENT), np.float32)
    assert np.array_equal(image, run_model(model_dir / "digits.onnx", z))
    assert np.array_equal(pixels, samples_npy(server, n=3, seed=5, model="digits"))


def test_v2_routes_are_counted_under_their_templates(
    client: http.InferenceServerClient, server: Server
) -> None:
    route = "/v2/models/{name}/infer"
    before = server.metric("gan_requests_total", route=route, status="200")
    client.infer("digits", [tensor("seed", np.array([3]), True)])
    assert client.is_server_ready()
    assert server.metric("gan_requests_total", route=route, status="200") == before + 1
    assert server.metric("gan_requests_total", route="/v2/health/ready", status="200") >= 1


def test_the_infer_routes_are_in_the_openapi_schema_as_posts_only(server: Server) -> None:
    paths = server.client.get("/openapi.json").json()["paths"]
    for route in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        assert set(paths[route]) == {"post"}
        assert paths[route]["post"]["summary"] == "Infer"
    refused = server.client.get("/v2/models/digits/versions/1/infer")
    assert refused.status_code == 405 and refused.headers["allow"] == "POST"
    assert "takes POST" in refused.json()["error"]


def test_v2_and_samples_requests_share_one_run(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    # A run waits up to 1 s for more work: the two requests meet in it.
    srv = serve(settings_for(model_dir, max_delay_ms=1000, max_batch=8))
    triton = http.InferenceServerClient(srv.url.removeprefix("http://"))
    z = np.random.default_rng(5).standard_normal((2, LATENT)).astype(np.float32)
    try:
        with ThreadPoolExecutor(1) as pool:
            samples = pool.submit(samples_npy, srv, n=3, seed=8, model="digits")
            poll(lambda: srv.metric("gan_queue_depth", model="digits") == 3)
            image = triton.infer("digits", [tensor("z", z, True)]).as_numpy("image")
            pixels = samples.result()
    finally:
        triton.close()
    assert srv.metric("gan_batch_size_count", model="digits") == 1  # one run of both
    assert srv.metric("gan_batch_size_sum", model="digits") == 5
    assert np.array_equal(image, run_model(model_dir / "digits.onnx", z))
    assert np.array_equal(pixels, samples_npy(srv, n=3, seed=8, model="digits"))


def test_keys_and_rate_limits_hold_on_v2(serve: Callable[..., Server], model_dir: Path) -> None:
    srv = serve(
        settings_for(model_dir, api_keys=["k1"], rate_limit_images_per_s=0.001, rate_limit_burst=64)
    )
    url = srv.url.removeprefix("http://")
    triton = http.InferenceServerClient(url)
    try:
        assert triton.is_server_ready()  # probes stay open
        with pytest.raises(InferenceServerException, match="API key is needed"):
            triton.get_model_metadata("digits")
        key = {"Authorization": "Bearer k1"}
        assert triton.get_model_metadata("digits", headers=key)["name"] == "digits"
        seeds = tensor("seed", np.arange(60, dtype=np.int64), True)
        assert (
            triton.infer("digits", [seeds], headers={"X-API-Key": "k1"}).as_numpy("pixels").shape[0]
            == 60
        )
        # 60 of the 64 images are spent: 5 more are refused
        with pytest.raises(InferenceServerException, match="rate limit"):
            triton.infer(
                "digits", [tensor("seed", np.arange(5, dtype=np.int64), True)], headers=key
            )
    finally:
        triton.close()
    assert srv.metric("gan_auth_rejected_total", reason="rate_limited") == 1


def test_a_client_that_leaves_stops_costing_work(
    serve: Callable[..., Server], slow_dir: Path
) -> None:
    # One image per run (~0.6 s each): the second of two waits in the queue when the client
    # goes, and leaves it.
    srv = serve(settings_for(slow_dir, max_batch=1))
    body = b'{"inputs": [{"name": "seed", "datatype": "INT64", "shape": [2], "data": [1, 2]}]}'
    head = (
        f"POST /v2/models/slow/infer HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    before = srv.metric("gan_rejected_total", reason="cancelled")
    with socket.create_connection(srv.address, timeout=10) as sock:
        sock.sendall(head + body)
        poll(lambda: srv.metric("gan_queue_depth", model="slow") == 1)
    poll(lambda: srv.metric("gan_rejected_total", reason="cancelled") == before + 1)
    poll(lambda: srv.metric("gan_queue_depth", model="slow") == 0)
    assert srv.client.get("/v2/health/ready").status_code == 200


def test_the_request_deadline_holds_on_v2(serve: Callable[..., Server], slow_dir: Path) -> None:
    # Runs of one image, each longer than the deadline: the second image is still queued.
    timeout = max(0.05, seconds_per_run(slow_dir / "slow.onnx") / 4)
    srv = serve(settings_for(slow_dir, max_batch=1, request_timeout_s=timeout))
    body = {"inputs": [{"name": "seed", "datatype": "INT64", "shape": [2], "data": [1, 2]}]}
    response = srv.client.post("/v2/models/slow/infer", json=body)
    assert response.status_code == 504
    assert "deadline" in response.json()["error"]
