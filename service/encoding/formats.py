"""Response bodies: JSON with one base64 PNG per image, one PNG grid, or a NumPy .npy file.

Pixels: the generator's float output x in [-1, 1] becomes uint8 round((x + 1) * 127.5),
clipped to 0..255 (`core.contract.to_uint8`, the one conversion). Layouts:

- `npy`: one uint8 array of shape (N, C, H, W), C-order, image i at [i] (the ONNX output's
  axis order); `np.load(io.BytesIO(body))`, and `.transpose(0, 2, 3, 1)` for (N, H, W, C).
- `png` grid: `cols = ceil(sqrt(N))`, `rows = ceil(N / cols)`; image i sits at row i // cols,
  column i % cols; 2 px of black between and around the images (`core.contract.grid`).
- `json`: `{"model", "seed", "images": [{"index", "seed", "label", "label_name", "png"}]}`,
  `png` being the base64 of one PNG per image; `label` is null for unconditional models,
  `label_name` its class name (null where the model names no classes). `JSON_SCHEMA` says so
  in the OpenAPI schema.
PNG mode follows C: 1 → L (grey), 3 → RGB, 4 → RGBA.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from core.contract import U8Images, grid
from service.encoding.png import encode_png
from service.errors import NotAcceptable

_MAX_ECHO = 40  # characters of the Accept header quoted back in a 406 (as labels are)

Format = Literal["json", "png", "npy"]
MEDIA_TYPES: dict[Format, str] = {
    "json": "application/json",
    "png": "image/png",
    "npy": "application/x-npy",
}
_NULLABLE_INT = {"anyOf": [{"type": "integer"}, {"type": "null"}]}
_NULLABLE_TEXT = {"anyOf": [{"type": "string"}, {"type": "null"}]}
# The `json` body of /samples, for the OpenAPI schema.
JSON_SCHEMA = {
    "type": "object",
    "required": ["model", "seed", "images"],
    "properties": {
        "model": {"type": "string"},
        "seed": {"type": "integer", "description": "The request seed."},
        "images": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "seed", "label", "label_name", "png"],
                "properties": {
                    "index": {"type": "integer"},
                    "seed": {"type": "integer", "description": "This image's seed."},
                    "label": {**_NULLABLE_INT, "description": "Class index (conditional)."},
                    "label_name": {**_NULLABLE_TEXT, "description": "The class's name."},
                    "png": {"type": "string", "contentEncoding": "base64"},
                },
            },
        },
    },
}
# Accept header media types -> format; the first acceptable one in the client's order wins.
_ACCEPT: dict[str, Format] = {
    "application/json": "json",
    "image/png": "png",
    "application/x-npy": "npy",
    "application/octet-stream": "npy",
    "*/*": "json",
    "application/*": "json",
    "image/*": "png",
}


def negotiate(fmt: Format | None, accept: str | None) -> Format:
    """`format` wins; else the Accept header (by q-value); else JSON."""
    if fmt is not None:
        return fmt
    if not accept:
        return "json"
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            ranked.append((-q, position, media.lower()))
    for _, _, media in sorted(ranked):
        if media in _ACCEPT:
            return _ACCEPT[media]
    shown = accept if len(accept) <= _MAX_ECHO else f"{accept[:_MAX_ECHO]}…"
    raise NotAcceptable(
        f"cannot produce any of Accept: {shown}; use format=json|png|npy "
        f"({', '.join(MEDIA_TYPES.values())})",
        field="format",
    )


def png(image: npt.NDArray[np.uint8]) -> bytes:
    """One (C, H, W) uint8 image as PNG (`service.encoding.png`: fast compression, latency
    over bytes)."""
    return encode_png(image)


def npy(images: U8Images) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(images), allow_pickle=False)
    return buffer.getvalue()


def to_json(
    model: str,
    seed: int,
    seeds: Sequence[int],
    labels: Sequence[int] | None,
    images: U8Images,
    label_names: Sequence[str | None] | None = None,
) -> bytes:
    """`{"model", "seed", "images": [{"index", "seed", "label", "label_name", "png"}]}`;
    `label_names` are the labels' class names (null where there are none)."""
    body = {
        "model": model,
        "seed": seed,
        "images": [
            {
                "index": i,
                "seed": seeds[i],
                "label": None if labels is None else labels[i],
                "label_name": None if label_names is None else label_names[i],
                "png": base64.b64encode(png(images[i])).decode("ascii"),
            }
            for i in range(images.shape[0])
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def encode(
    fmt: Format,
    pixels: U8Images,
    *,
    model: str,
    seed: int,
    seeds: Sequence[int],
    labels: Sequence[int] | None,
    label_names: Sequence[str | None] | None = None,
) -> bytes:
    """The response body of one request in format `fmt`, from its uint8 pixels (`to_uint8`)."""
    if fmt == "npy":
        return npy(pixels)
    if fmt == "png":
        return png(grid(pixels))
    return to_json(model, seed, seeds, labels, pixels, label_names)
