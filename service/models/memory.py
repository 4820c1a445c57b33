"""What one image costs in bytes, and how a model's batch size fits the memory budget.

The service bounds memory by bytes, not by image counts (`GAN_MEMORY_BUDGET_MB`):

- while a request is held (admitted → last byte sent), each of its images holds its latent
  vector, its float32 output rows, its uint8 pixels and its encoded bytes (`held`);
- while a run is going, onnxruntime holds the intermediate tensors of every image in it
  (`working`): read from the graph by ONNX shape inference where it can, else assumed to be
  four times the output.

At start-up each model reserves `slots × max_batch × working` for its runs; the rest of the
budget is what admitted requests may hold. A model whose reserve does not fit gets a smaller
max batch (halved until it fits), or is refused when not even one image fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import onnx

MB = 1024 * 1024
_FLOAT32 = 4
# PNG of one image is at most its pixels plus a filter byte per row and chunk headers; the
# JSON format wraps it in base64 (4/3) plus a small record: twice the pixels bounds both.
_ENCODED_PER_PIXEL = 2
_ENCODED_PER_IMAGE = 256


@dataclass(frozen=True)
class ImageCost:
    """Bytes per image of one model: while held by a request, and while in a run."""

    held: int
    working: int


def held_bytes(image_shape: tuple[int, int, int], latent_dim: int) -> int:
    """Bytes one admitted image holds until its response is sent."""
    pixels = math.prod(image_shape)
    return (
        latent_dim * _FLOAT32  # z
        + 8  # label
        + pixels * _FLOAT32  # the run's output rows
        + pixels  # uint8 pixels
        + pixels * _ENCODED_PER_PIXEL
        + _ENCODED_PER_IMAGE
    )


def _element_bytes(elem_type: int) -> int:
    try:
        return int(onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize)
    except (KeyError, TypeError, ValueError):
        return _FLOAT32


def working_bytes(model: onnx.ModelProto, image_shape: tuple[int, int, int]) -> int:
    """Bytes per image of every tensor a run computes (an upper bound of its peak).

    Shapes come from ONNX shape inference with the batch axis as the only unknown; a tensor
    whose other axes stay unknown counts as the output's size.
    """
    output = math.prod(image_shape) * _FLOAT32
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:
        return 4 * output
    total = 0
    for value in [*inferred.graph.value_info, *inferred.graph.output]:
        tensor = value.type.tensor_type
        if not tensor.HasField("shape") or not tensor.shape.dim:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        rest = dims[1:]
        if any(d is None for d in rest):
            total += output
            continue
        total += math.prod(d for d in rest if d is not None) * _element_bytes(tensor.elem_type)
    return max(total, output)


def run_reserve(max_batch: int, slots: int, cost: ImageCost) -> int:
    """Bytes reserved for runs: every slot running a batch of `max_batch` images."""
    return slots * max_batch * cost.working


def fit_max_batch(max_batch: int, slots: int, cost: ImageCost, budget_bytes: int) -> int:
    """The largest batch ≤ max_batch whose runs on every slot, plus one image held, fit the
    budget (halving from max_batch); 0 when not even a batch of one fits."""
    batch = max_batch
    while batch >= 1 and run_reserve(batch, slots, cost) + cost.held > budget_bytes:
        batch //= 2
    return batch
