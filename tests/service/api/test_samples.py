"""Every endpoint of the real app under uvicorn: shapes, headers, formats, labels, errors."""

from __future__ import annotations

import base64
import io
import json
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.contract import GRID_PADDING, grid_shape
from service.pipeline import seeding
from tests.service.conftest import Server, samples_npy, settings_for
from tests.support.onnx_models import CLASS_NAMES


def test_samples_json_has_the_documented_shape_and_headers(server: Server) -> None:
    response = server.client.post("/samples", params={"n": 3, "seed": 42})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-seed"] == "42"
    assert response.headers["x-model"] == "fashion"
    body = response.json()
    assert set(body) == {"model", "seed", "images"}
    assert body["model"] == "fashion" and body["seed"] == 42
    assert [img["index"] for img in body["images"]] == [0, 1, 2]
    assert [img["seed"] for img in body["images"]] == [seeding.derive(42, i) for i in range(3)]
    assert body["images"][0]["seed"] == 42
    for img in body["images"]:
        assert set(img) == {"index", "seed", "label", "label_name", "png"}
        assert 0 <= img["label"] < 10
        assert img["label_name"] == CLASS_NAMES[img["label"]]
        png = Image.open(io.BytesIO(base64.b64decode(img["png"])))
        assert (png.format, png.mode, png.size) == ("PNG", "L", (28, 28))


def test_samples_default_n_is_16(server: Server) -> None:
    assert len(server.client.post("/samples").json()["images"]) == 16


def test_samples_without_seed_draws_and_returns_one(server: Server) -> None:
    response = server.client.post("/samples", params={"n": 2, "format": "npy"})
    seed = int(response.headers["x-seed"])
    assert 0 <= seed <= seeding.MAX_SEED
    again = samples_npy(server, n=2, seed=seed)
    assert np.array_equal(np.load(io.BytesIO(response.content)), again)


def test_npy_is_uint8_n_c_h_w(server: Server) -> None:
    response = server.client.post("/samples", params={"n": 5, "seed": 1, "format": "npy"})
    assert response.headers["content-type"] == "application/x-npy"
    array = np.load(io.BytesIO(response.content), allow_pickle=False)
    assert array.dtype == np.uint8 and array.shape == (5, 1, 28, 28)


def test_npy_pixels_match_the_json_pngs(server: Server) -> None:
    body = server.client.post("/samples", params={"n": 4, "seed": 9}).json()
    array = samples_npy(server, n=4, seed=9)
    for i, img in enumerate(body["images"]):
        png = np.asarray(Image.open(io.BytesIO(base64.b64decode(img["png"]))))
        assert np.array_equal(png, array[i, 0])


@pytest.mark.parametrize("n", [1, 5, 10])
def test_png_is_one_near_square_grid(server: Server, n: int) -> None:
    response = server.client.post("/samples", params={"n": n, "seed": 3, "format": "png"})
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    rows, cols = grid_shape(n)
    assert abs(rows - cols) <= 1
    assert image.size == (
        cols * (28 + GRID_PADDING) + GRID_PADDING,
        rows * (28 + GRID_PADDING) + GRID_PADDING,
    )
    tiles = np.asarray(image)
    last = n - 1
    top = GRID_PADDING + (last // cols) * (28 + GRID_PADDING)
    left = GRID_PADDING + (last % cols) * (28 + GRID_PADDING)
    assert np.array_equal(
        tiles[top : top + 28, left : left + 28], samples_npy(server, n=n, seed=3)[last, 0]
    )


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        ("image/png", "image/png"),
        ("application/x-npy", "application/x-npy"),
        ("text/html, */*;q=0.1", "application/json"),
        ("image/png;q=0.5, application/json", "application/json"),
    ],
)
def test_accept_header_picks_the_format(server: Server, accept: str, media: str) -> None:
    response = server.client.post("/samples", params={"n": 1}, headers={"accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"] == media


def test_format_parameter_wins_over_accept(server: Server) -> None:
    response = server.client.post(
        "/samples", params={"n": 1, "format": "npy"}, headers={"accept": "image/png"}
    )
    assert response.headers["content-type"] == "application/x-npy"


def test_unacceptable_accept_header_is_406(server: Server) -> None:
    response = server.client.post("/samples", params={"n": 1}, headers={"accept": "text/html"})
    assert response.status_code == 406
    assert response.json()["error"]["code"] == "not_acceptable"


@pytest.mark.parametrize("label", ["7", "Sneaker", "sneaker", "SNEAKER"])
def test_label_by_index_or_case_insensitive_name(server: Server, label: str) -> None:
    body = server.client.post("/samples", params={"n": 3, "seed": 5, "label": label}).json()
    assert [img["label"] for img in body["images"]] == [CLASS_NAMES.index("Sneaker")] * 3


def test_label_by_name_and_by_index_give_the_same_images(server: Server) -> None:
    assert np.array_equal(
        samples_npy(server, n=3, seed=5, label="Bag"), samples_npy(server, n=3, seed=5, label=8)
    )


@pytest.mark.parametrize("label", ["10", "-1", "Cat"])
def test_bad_label_is_422_on_field_label(server: Server, label: str) -> None:
    response = server.client.post("/samples", params={"n": 1, "label": label})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter" and error["field"] == "label"


def test_label_for_an_unconditional_model_is_422(server: Server) -> None:
    response = server.client.post("/samples", params={"model": "digits", "label": "3"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "label"


def test_unconditional_model_images_have_null_labels(server: Server) -> None:
    response = server.client.post("/samples", params={"model": "digits", "n": 2})
    assert response.headers["x-model"] == "digits"
    assert [img["label"] for img in response.json()["images"]] == [None, None]


def test_unknown_model_is_404_json(server: Server) -> None:
    response = server.client.post("/samples", params={"model": "nope"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["field"] == "model"
    assert "fashion" in error["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"n": 0}, "n"),
        ({"n": 65}, "n"),
        ({"n": "x"}, "n"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"format": "gif"}, "format"),
    ],
)
def test_validation_errors_use_the_one_error_shape(
    server: Server, params: dict, field: str
) -> None:
    response = server.client.post("/samples", params=params)
    assert response.status_code == 422
    assert response.json() == {
        "error": {
            "code": "invalid_parameter",
            "field": field,
            "message": response.json()["error"]["message"],
        }
    }
    assert response.json()["error"]["message"]


def test_largest_seed_is_accepted(server: Server) -> None:
    response = server.client.post("/samples", params={"n": 1, "seed": seeding.MAX_SEED})
    assert response.status_code == 200 and response.json()["seed"] == seeding.MAX_SEED


def test_unknown_route_and_wrong_method_use_the_error_shape(server: Server) -> None:
    missing = server.client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = server.client.get("/samples")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_models_lists_metadata_sha256_provider_and_limits(server: Server, model_dir: Path) -> None:
    import hashlib

    body = server.client.get("/models").json()
    assert body["default"] == "fashion"
    cards = {card["name"]: card for card in body["models"]}
    assert set(cards) == {"fashion", "digits"}
    fashion = cards["fashion"]
    assert (
        fashion["sha256"] == hashlib.sha256((model_dir / "fashion.onnx").read_bytes()).hexdigest()
    )
    assert fashion["provider"] == "cpu" and fashion["provider_fallback"] is False
    assert fashion["conditional"] is True and fashion["num_classes"] == 10
    assert fashion["class_names"] == CLASS_NAMES
    assert fashion["latent_dim"] == 8 and fashion["image_shape"] == [1, 28, 28]
    assert json.loads(fashion["metadata"]["image_shape"]) == [1, 28, 28]
    assert fashion["limits"]["max_samples"] == 64 and fashion["limits"]["max_batch"] == 8
    assert cards["digits"]["conditional"] is False and cards["digits"]["class_names"] is None


def test_healthz_is_200(server: Server) -> None:
    response = server.client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_200_ready_with_providers(server: Server) -> None:
    response = server.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "models": {"digits": "cpu", "fashion": "cpu"}}


def test_metrics_is_a_plain_route_in_prometheus_text_format(server: Server) -> None:
    response = server.client.get("/metrics", follow_redirects=False)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "gan_ready 1.0" in response.text


def test_openapi_docs_are_served(server: Server) -> None:
    assert server.client.get("/docs").status_code == 200
    spec = server.client.get("/openapi.json").json()
    params = {p["name"] for p in spec["paths"]["/samples"]["post"]["parameters"]}
    assert params == {"n", "seed", "label", "model", "format"}


def test_json_images_carry_their_class_name_and_the_schema_says_so(server: Server) -> None:
    body = server.client.post("/samples", params={"n": 2, "label": "sneaker"}).json()
    assert [(i["label"], i["label_name"]) for i in body["images"]] == [(7, "Sneaker")] * 2
    digits = server.client.post("/samples", params={"n": 1, "model": "digits"}).json()
    assert (digits["images"][0]["label"], digits["images"][0]["label_name"]) == (None, None)
    schema = server.client.get("/openapi.json").json()
    for path in ("/samples", "/interpolate"):
        content = schema["paths"][path]["post"]["responses"]["200"]["content"]
        assert "label_name" in json.dumps(content["application/json"]["schema"]), path


@pytest.mark.parametrize("path", ["/samples", "/interpolate"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_another_method_is_405_showing_the_post_to_send(
    server: Server, path: str, method: str
) -> None:
    response = server.client.request(method, f"{path}?n=1")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    error = response.json()["error"]
    assert error["code"] == "method_not_allowed"
    assert "use POST" in error["message"]
    assert f"curl -X POST '{server.url}{path}?n=1'" in error["message"]


def test_n_defaults_to_at_most_the_limit(serve: Callable[..., Server], model_dir: Path) -> None:
    small = serve(settings_for(model_dir, max_samples=4))
    assert samples_npy(small).shape[0] == 4


@pytest.mark.parametrize("name", ["n", "seed", "label", "model", "format"])
@pytest.mark.parametrize("values", [("1", "2"), ("2", "1")])
def test_a_parameter_given_twice_is_a_422_naming_it(
    server: Server, name: str, values: tuple[str, str]
) -> None:
    first, second = values
    response = server.client.post(f"/samples?{name}={first}&{name}={second}")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == name


@pytest.mark.parametrize("spelling", ["4.0", "4e0", "0x4", " 4", "4 ", "٤", "four", ""])
def test_n_is_written_in_decimal_digits(server: Server, spelling: str) -> None:
    response = server.client.post("/samples", params={"n": spelling})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "n"


def test_client_refusals_are_counted_under_their_route_not_as_500(
    serve: Callable[..., Server], model_dir: Path
) -> None:
    keyed = serve(settings_for(model_dir, api_keys="k-0123456789abcdef"))
    assert keyed.client.post("/samples?n=1").status_code == 401
    with socket.create_connection(keyed.address) as sock:  # a bad chunk size: a 400
        sock.sendall(
            b"POST /samples HTTP/1.1\r\nHost: x\r\nX-API-Key: k-0123456789abcdef\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 400")
    assert keyed.metric("gan_requests_total", route="/samples", status="401") == 1
    assert keyed.metric("gan_requests_total", route="other", status="500") == 0
