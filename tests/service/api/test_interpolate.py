"""`POST /interpolate`: frames between two images' latent vectors, through the pipeline like
/samples; the ends are the two images themselves, bit for bit."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.api.interpolate import slerp
from service.pipeline import seeding
from tests.service.conftest import Server, npy, settings_for


def test_slerp_ends_are_the_inputs_and_the_path_keeps_a_latent_norm() -> None:
    z = seeding.latents(np.array([3, 4], np.uint64), 64)
    path = slerp(z[0], z[1], 9)
    assert path.shape == (9, 64) and path.dtype == np.float32
    assert np.array_equal(path[0], z[0]) and np.array_equal(path[-1], z[1])
    norms = np.linalg.norm(path, axis=1)
    ends = np.linalg.norm(z, axis=1)
    assert norms.min() >= 0.99 * ends.min()  # a straight line would dip in the middle


def test_slerp_of_one_vector_to_itself_stays_put() -> None:
    z = seeding.latent(5, 16)
    assert np.array_equal(slerp(z, z, 4), np.stack([z] * 4))


@pytest.mark.parametrize("model", ["fashion", "digits"])
def test_the_ends_are_the_two_images_bit_for_bit(server: Server, model: str) -> None:
    label = {"label": "coat"} if model == "fashion" else {}
    frames = npy(
        server.client.post(
            "/interpolate",
            params={"from_seed": 11, "to_seed": 12, "steps": 5, "model": model, "format": "npy"}
            | label,
        )
    )
    assert frames.shape == (5, 1, 28, 28)
    for seed, frame in ((11, frames[0]), (12, frames[-1])):
        image = npy(
            server.client.post(
                "/samples", params={"n": 1, "seed": seed, "model": model, "format": "npy"} | label
            )
        )
        assert np.array_equal(image[0], frame)
    assert not np.array_equal(frames[1], frames[0])


def test_without_a_label_a_conditional_model_keeps_from_seeds_label(server: Server) -> None:
    seed = 21
    own = server.client.post("/samples", params={"n": 1, "seed": seed, "model": "fashion"})
    label = own.json()["images"][0]["label"]
    body = server.client.post(
        "/interpolate", params={"from_seed": seed, "to_seed": 22, "steps": 3, "model": "fashion"}
    ).json()
    assert body["label"] == label
    assert body["images"][0]["png"] == own.json()["images"][0]["png"]


def test_json_lists_each_frame_with_its_t(server: Server) -> None:
    response = server.client.post(
        "/interpolate", params={"from_seed": 1, "to_seed": 2, "steps": 4, "model": "digits"}
    )
    assert response.status_code == 200 and response.headers["x-model"] == "digits"
    body = response.json()
    assert (body["model"], body["from_seed"], body["to_seed"], body["label"]) == (
        "digits",
        1,
        2,
        None,
    )
    assert [frame["t"] for frame in body["images"]] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert [frame["index"] for frame in body["images"]] == [0, 1, 2, 3]
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][0]["png"])))
    assert image.size == (28, 28)


def test_png_is_one_strip_left_to_right(server: Server) -> None:
    response = server.client.post(
        "/interpolate",
        params={"from_seed": 1, "to_seed": 2, "steps": 6, "model": "digits", "format": "png"},
    )
    assert response.headers["content-type"] == "image/png"
    strip = Image.open(io.BytesIO(response.content))
    padding = 2
    assert strip.size == (6 * (28 + padding) + padding, 28 + 2 * padding)


def test_the_seeds_may_be_the_largest_seed(server: Server) -> None:
    top = seeding.MAX_SEED
    response = server.client.post(
        "/interpolate", params={"from_seed": top, "to_seed": 0, "steps": 2, "model": "digits"}
    )
    assert response.status_code == 200
    assert f'"from_seed":{top}' in response.text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to_seed": 2}, "from_seed"),
        ({"from_seed": 1}, "to_seed"),
        ({"from_seed": -1, "to_seed": 2}, "from_seed"),
        ({"from_seed": 1, "to_seed": 2**63}, "to_seed"),
        ({"from_seed": "x", "to_seed": 2}, "from_seed"),
        ({"from_seed": 1, "to_seed": 2, "steps": 1}, "steps"),
        ({"from_seed": 1, "to_seed": 2, "steps": 65}, "steps"),
        ({"from_seed": 1, "to_seed": 2, "model": "digits", "label": "bag"}, "label"),
        ({"from_seed": 1, "to_seed": 2, "model": "fashion", "label": "boots"}, "label"),
        ({"from_seed": 1, "to_seed": 2, "format": "gif"}, "format"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    server: Server, params: dict[str, object], field: str
) -> None:
    response = server.client.post("/interpolate", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


def test_an_unknown_model_is_a_404(server: Server) -> None:
    response = server.client.post(
        "/interpolate", params={"from_seed": 1, "to_seed": 2, "model": "nope"}
    )
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "model"


def test_interpolate_is_documented_in_the_openapi_schema(server: Server) -> None:
    operation = server.client.get("/openapi.json").json()["paths"]["/interpolate"]["post"]
    names = {p["name"] for p in operation["parameters"]}
    assert names == {"from_seed", "to_seed", "steps", "label", "model", "format"}
    assert {"200", "404", "422", "503", "504"} <= set(operation["responses"])


def test_frames_count_as_generated_images(server: Server) -> None:
    before = server.metric("gan_images_generated_total", model="digits")
    server.client.post(
        "/interpolate", params={"from_seed": 1, "to_seed": 2, "steps": 7, "model": "digits"}
    )
    assert server.metric("gan_images_generated_total", model="digits") == before + 7


def test_a_json_body_asks_for_the_same_frames_as_the_query(server: Server) -> None:
    query = "/interpolate?from_seed=1&to_seed=2&steps=3&format=npy"
    body = {"from_seed": 1, "to_seed": 2, "steps": 3, "format": "npy"}
    by_body = server.client.post("/interpolate", json=body)
    assert np.array_equal(npy(by_body), npy(server.client.post(query)))
    assert npy(by_body).shape[0] == 3


def test_the_ends_are_needed_from_the_query_or_the_body(server: Server) -> None:
    missing = server.client.post("/interpolate", json={"from_seed": 1})
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "to_seed"
    mixed = server.client.post("/interpolate?from_seed=1&format=npy", json={"to_seed": 2})
    assert npy(mixed).shape[0] == 8


def test_json_frames_carry_the_label_and_its_class_name(server: Server) -> None:
    body = server.client.post(
        "/interpolate", params={"from_seed": 3, "to_seed": 4, "steps": 2, "label": "sneaker"}
    ).json()
    assert (body["label"], body["label_name"]) == (7, "Sneaker")
    unconditional = server.client.post(
        "/interpolate", params={"from_seed": 3, "to_seed": 4, "steps": 2, "model": "digits"}
    ).json()
    assert (unconditional["label"], unconditional["label_name"]) == (None, None)


def test_steps_default_to_at_most_the_limit(serve: Callable[..., Server], model_dir: Path) -> None:
    small = serve(settings_for(model_dir, max_samples=4))
    frames = npy(small.client.post("/interpolate?from_seed=1&to_seed=2&format=npy"))
    assert frames.shape[0] == 4
