"""Response bodies (npy layout, PNG modes) and content negotiation; the pixel mapping and
the grid layout are the contract's (test_contract.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core import contract
from service.encoding import formats
from service.errors import NotAcceptable


def test_rgb_images_become_rgb_pngs() -> None:
    images = np.zeros((2, 3, 4, 5), np.float32)
    images[:, 0] = 1.0  # red
    pixels = contract.to_uint8(images)
    body = formats.encode("png", pixels, model="m", seed=0, seeds=[0, 1], labels=None)
    png = Image.open(io.BytesIO(body))
    assert png.mode == "RGB" and png.getpixel((2, 2)) == (255, 128, 128)


def test_npy_layout_is_n_c_h_w_uint8() -> None:
    images = np.linspace(-1, 1, 2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    pixels = contract.to_uint8(images)
    body = formats.encode("npy", pixels, model="m", seed=0, seeds=[0, 1], labels=None)
    array = np.load(io.BytesIO(body), allow_pickle=False)
    assert array.dtype == np.uint8 and array.shape == (2, 3, 4, 5)
    assert np.array_equal(array, contract.to_uint8(images))


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
    assert formats.negotiate(None, accept) == fmt


def test_negotiate_prefers_the_format_parameter() -> None:
    assert formats.negotiate("png", "application/json") == "png"


def test_negotiate_refuses_what_it_cannot_write() -> None:
    with pytest.raises(NotAcceptable):
        formats.negotiate(None, "text/html, image/gif")


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (3, "RGB"), (4, "RGBA")])
@pytest.mark.parametrize(("height", "width"), [(1, 1), (28, 28), (7, 33), (122, 122)])
def test_png_files_decode_to_exactly_the_pixels(
    channels: int, mode: str, height: int, width: int
) -> None:
    pixels = np.random.default_rng(height * width).integers(
        0, 256, (channels, height, width), dtype=np.uint8
    )
    decoded = Image.open(io.BytesIO(formats.png(pixels)))
    decoded.load()  # checks every chunk's CRC and the zlib stream
    assert decoded.mode == mode and decoded.size == (width, height)
    array = np.asarray(decoded).reshape(height, width, channels)  # (H, W, C)
    assert np.array_equal(array, pixels.transpose(1, 2, 0))
