"""Pixel mapping, grid layout, npy layout and content negotiation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service import encoding
from service.errors import NotAcceptable


def test_to_uint8_maps_minus_one_to_0_and_one_to_255() -> None:
    images = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, -2.0], np.float32).reshape(1, 1, 1, 7)
    assert encoding.to_uint8(images).ravel().tolist() == [0, 64, 128, 191, 255, 255, 0]


@pytest.mark.parametrize(
    ("n", "rows", "cols"),
    [(1, 1, 1), (2, 1, 2), (3, 2, 2), (5, 2, 3), (16, 4, 4), (17, 4, 5), (1024, 32, 32)],
)
def test_grid_is_near_square(n: int, rows: int, cols: int) -> None:
    assert encoding.grid_shape(n) == (rows, cols)


def test_grid_places_image_i_row_major_with_padding() -> None:
    images = np.arange(5, dtype=np.uint8).reshape(5, 1, 1, 1).repeat(3, 2).repeat(3, 3) + 1
    canvas = encoding.grid(images, padding=2)
    assert canvas.shape == (1, 2 * 5 + 2, 3 * 5 + 2)
    assert canvas[0, 2, 2] == 1 and canvas[0, 2, 7] == 2 and canvas[0, 7, 2] == 4
    assert canvas[0, 0, :].max() == 0  # padding is black


def test_rgb_images_become_rgb_pngs() -> None:
    images = np.zeros((2, 3, 4, 5), np.float32)
    images[:, 0] = 1.0  # red
    body = encoding.encode("png", images, model="m", seed=0, seeds=[0, 1], labels=None)
    png = Image.open(io.BytesIO(body))
    assert png.mode == "RGB" and png.getpixel((2, 2)) == (255, 128, 128)


def test_npy_layout_is_n_c_h_w_uint8() -> None:
    images = np.linspace(-1, 1, 2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    body = encoding.encode("npy", images, model="m", seed=0, seeds=[0, 1], labels=None)
    array = np.load(io.BytesIO(body), allow_pickle=False)
    assert array.dtype == np.uint8 and array.shape == (2, 3, 4, 5)
    assert np.array_equal(array, encoding.to_uint8(images))


@pytest.mark.parametrize(
    ("accept", "fmt"),
    [
        (None, "json"),
        ("", "json"),
        ("*/*", "json"),
        ("image/png", "png"),
        ("application/octet-stream", "npy"),
        ("text/html,image/*;q=0.8", "png"),
        ("application/json;q=0.2, application/x-npy", "npy"),
    ],
)
def test_negotiate_follows_accept_by_quality(accept: str | None, fmt: str) -> None:
    assert encoding.negotiate(None, accept) == fmt


def test_negotiate_prefers_the_format_parameter() -> None:
    assert encoding.negotiate("png", "application/json") == "png"


def test_negotiate_refuses_what_it_cannot_write() -> None:
    with pytest.raises(NotAcceptable):
        encoding.negotiate(None, "text/html, image/gif")
