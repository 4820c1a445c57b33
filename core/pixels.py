"""Pixels and the grid: the one float → uint8 conversion (`to_uint8`) and the one grid layout
(`grid`), needing only numpy.

The ONNX contract (core/contract.py) names them as its own; they live here, apart from it,
so that code without onnx shares them too: the benchmarks' peer servers run in virtual
environments of their own (numpy, isal, onnxruntime and their framework) and import this
module from the checkout, so every system draws the same grid.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt

GRID_PADDING: Final = 2

U8Images = npt.NDArray[np.uint8]  # (N, C, H, W)


def to_uint8(images: npt.NDArray[np.floating[Any]]) -> U8Images:
    """Generator output in [-1, 1] -> uint8 pixels round((x + 1) * 127.5), clipped to 0..255.

    Works on any shape; values outside [-1, 1] (tanh rounding) clip.
    """
    scaled = np.rint((np.asarray(images, dtype=np.float32) + 1.0) * 127.5)
    pixels: U8Images = np.clip(scaled, 0, 255).astype(np.uint8)
    return pixels


def grid_shape(n: int, columns: int | None = None) -> tuple[int, int]:
    """(rows, cols) of a grid of n images: `columns` wide, else near-square
    (cols = ceil(sqrt(n)), rows = ceil(n / cols))."""
    cols = columns if columns is not None else max(1, math.ceil(math.sqrt(n)))
    return max(1, math.ceil(n / cols)), cols


def grid(
    images: U8Images, columns: int | None = None, padding: int = GRID_PADDING
) -> npt.NDArray[np.uint8]:
    """Images (N, C, H, W) tiled row-major into one (C, H', W') image, black padding between
    and around them; image i at row i // cols, column i % cols (`grid_shape`)."""
    n, channels, height, width = images.shape
    rows, cols = grid_shape(n, columns)
    cell_h, cell_w = height + padding, width + padding  # an image and the padding after it
    cells = np.zeros((rows * cols, channels, cell_h, cell_w), np.uint8)
    cells[:n, :, :height, :width] = images
    canvas = np.zeros((channels, rows * cell_h + padding, cols * cell_w + padding), np.uint8)
    # (rows, cols, C, h, w) -> (C, rows, h, cols, w): every tile in place in one copy.
    tiles = cells.reshape(rows, cols, channels, cell_h, cell_w).transpose(2, 0, 3, 1, 4)
    canvas[:, padding:, padding:] = tiles.reshape(channels, rows * cell_h, cols * cell_w)
    return canvas
