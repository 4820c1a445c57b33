"""What a v2 infer request means to a generator, whichever protocol carried it.

Two forms of input, one `Job` for the pipeline (`Pipeline.answer`, the one /samples uses):

- raw: `z` FP32 [n, latent] (and `label` INT64 [n] for a conditional model), exactly the
  ONNX file's inputs;
- seeded: `seed` INT64 [n] of image seeds (and, optionally, `label`): row i gets the `z`
  and random label image seed i gets in `/samples` (`service.pipeline.seeding`), so image i
  of `/samples?seed=S` is `seed = derive(S, i)` here, bit for bit.

Outputs, any of them, chosen with the request's `outputs`: `image` FP32 [n, C, H, W] (the
generator's output), `pixels` UINT8 [n, C, H, W] (`core.contract.to_uint8`, as /samples),
`png` BYTES [n] (one PNG per image). Default: `image` for the raw form, `pixels` for the
seeded one (the seeded form is /samples' images, and /samples gives pixels).

The front end reads the tensors (`service.v2.tensors`) and says how to write the outputs
(`render`, run in a slot's thread with the rest of the encoding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from core.contract import INPUT_LABEL, INPUT_Z, OUTPUT_IMAGE, GeneratorSpec, to_uint8
from service.encoding import formats
from service.errors import BadRequest, ModelNotFound, TooLarge
from service.pipeline import seeding
from service.pipeline.jobs import Images, Job, Labels, Latents, Pixels
from service.v2 import tensors

INPUT_SEED = "seed"
OUTPUT_PIXELS = "pixels"
OUTPUT_PNG = "png"
OUTPUTS = (OUTPUT_IMAGE, OUTPUT_PIXELS, OUTPUT_PNG)
PLATFORM = "onnxruntime_onnx"
ENCODE_LABEL = "v2"  # the format label of gan_encode_duration_seconds


@dataclass(frozen=True)
class Tensor:
    """An input as read, or an output to write: `data` an array, or (BYTES) a list."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: npt.NDArray[Any] | list[bytes]
    binary: bool | None = None  # an output's wish for the binary extension (HTTP only)


def raw_bytes(tensor: Tensor) -> bytes:
    """A tensor's raw form (binary extension, raw_output_contents): little-endian values,
    row-major; BYTES elements each behind its 4-byte length."""
    if isinstance(tensor.data, list):
        return tensors.bytes_tensor(tensor.data)
    return np.ascontiguousarray(tensor.data, tensor.data.dtype.newbyteorder("<")).tobytes()


Render = Callable[[list[Tensor]], bytes]
Wanted = Sequence[tuple[str, bool | None]]  # requested outputs: (name, binary)


def version(spec: GeneratorSpec) -> str:
    """A model's one version: its file's sha256."""
    return spec.sha256


def check_version(spec: GeneratorSpec, asked: str | None) -> None:
    if asked and asked != version(spec):
        raise ModelNotFound(
            f"model {spec.name} has no version {asked[:80]!r}; it has {version(spec)}"
        )


def signature(spec: GeneratorSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The inputs (both forms: `z` or `seed`, with `label` for a conditional model) and
    outputs of a model's metadata; -1 is the batch dimension n."""
    inputs = [{"name": INPUT_Z, "datatype": "FP32", "shape": [-1, spec.latent_dim]}]
    inputs.append({"name": INPUT_SEED, "datatype": "INT64", "shape": [-1]})
    if spec.conditional:
        inputs.append({"name": INPUT_LABEL, "datatype": "INT64", "shape": [-1]})
    image = [-1, *spec.image_shape]
    outputs = [
        {"name": OUTPUT_IMAGE, "datatype": "FP32", "shape": image},
        {"name": OUTPUT_PIXELS, "datatype": "UINT8", "shape": image},
        {"name": OUTPUT_PNG, "datatype": "BYTES", "shape": [-1]},
    ]
    return inputs, outputs


def model_metadata(spec: GeneratorSpec) -> dict[str, Any]:
    """`GET /v2/models/{name}`: the protocol's fields, and the model's own in `parameters`."""
    inputs, outputs = signature(spec)
    return {
        "name": spec.name,
        "versions": [version(spec)],
        "platform": PLATFORM,
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {
            "class_names": list(spec.class_names) if spec.class_names else None,
            "num_classes": spec.num_classes,
            "latent_dim": spec.latent_dim,
            "image_shape": list(spec.image_shape),
        },
    }


def plan(
    spec: GeneratorSpec,
    inputs: Sequence[Tensor],
    wanted: Wanted | None,
    max_samples: int,
    render: Render,
) -> Job:
    """The job of one infer request: its inputs checked against the model, its rows' inputs
    and the encoding of the outputs it asks for; BadRequest (or TooLarge) when they do not fit."""
    by_name = _by_name(spec, inputs)
    seeded = INPUT_SEED in by_name
    first = by_name[INPUT_SEED if seeded else INPUT_Z]
    n = first.shape[0] if first.shape else 0
    if n > max_samples:
        raise TooLarge(f"{n} images in one request; at most {max_samples} (GAN_MAX_SAMPLES)")
    z = None if seeded else _z(spec, by_name[INPUT_Z])
    seeds = _seeds(by_name[INPUT_SEED]) if seeded else None
    labels = _labels(spec, by_name.get(INPUT_LABEL), n)
    outputs = _outputs(wanted, OUTPUT_PIXELS if seeded else OUTPUT_IMAGE)

    def rows(start: int, stop: int) -> tuple[Latents, Labels | None]:
        part = None if labels is None else labels[start:stop]
        if seeds is None:
            assert z is not None
            return z[start:stop], part
        image_seeds = seeds[start:stop]
        if spec.num_classes is not None and part is None:
            part = seeding.random_labels(image_seeds, spec.num_classes)
        return seeding.latents(image_seeds, spec.latent_dim), part

    def encode(pixels: Pixels) -> bytes:
        return render([_output(name, binary, None, pixels) for name, binary in outputs])

    def encode_images(images: Images) -> bytes:
        pixels = to_uint8(images) if any(name != OUTPUT_IMAGE for name, _ in outputs) else None
        return render([_output(name, binary, images, pixels) for name, binary in outputs])

    floats = any(name == OUTPUT_IMAGE for name, _ in outputs)
    return Job(
        n=n,
        rows=rows,
        encode=encode,
        format=ENCODE_LABEL,
        encode_images=encode_images if floats else None,
    )


def _by_name(spec: GeneratorSpec, inputs: Sequence[Tensor]) -> dict[str, Tensor]:
    """The inputs by name: one of the two forms, nothing unknown, nothing twice."""
    by_name: dict[str, Tensor] = {}
    for tensor in inputs:
        if tensor.name in by_name:
            raise BadRequest(f"input {tensor.name} given twice")
        by_name[tensor.name] = tensor
    label = " and label INT64 [n]" if spec.conditional else ""
    forms = f"z FP32 [n, {spec.latent_dim}]{label}, or seed INT64 [n] (label optional)"
    unknown = set(by_name) - {INPUT_Z, INPUT_SEED, *([INPUT_LABEL] if spec.conditional else [])}
    if unknown:
        raise BadRequest(f"unknown input {sorted(unknown)[0]!r}: model {spec.name} takes {forms}")
    if (INPUT_Z in by_name) == (INPUT_SEED in by_name):
        which = "both" if INPUT_Z in by_name else "neither"
        raise BadRequest(f"give z or seed, not {which}: model {spec.name} takes {forms}")
    if INPUT_Z in by_name and spec.conditional and INPUT_LABEL not in by_name:
        raise BadRequest(f"model {spec.name} is conditional: z needs label INT64 [n]")
    return by_name


def _check(tensor: Tensor, datatype: str, shape: tuple[int, ...]) -> npt.NDArray[Any]:
    """The tensor's array, if it has this datatype and shape (-1: any n of at least 1)."""
    if tensor.datatype != datatype:
        raise BadRequest(f"input {tensor.name} must be {datatype}, not {tensor.datatype}")
    fits = len(tensor.shape) == len(shape) and all(
        want == got or (want == -1 and got >= 1)
        for want, got in zip(shape, tensor.shape, strict=True)
    )
    if not fits:
        wanted = "[" + ", ".join("n" if d == -1 else str(d) for d in shape) + "]"
        raise BadRequest(
            f"input {tensor.name} must have shape {wanted} (n ≥ 1), not {list(tensor.shape)}"
        )
    assert isinstance(tensor.data, np.ndarray)
    return tensor.data


def _z(spec: GeneratorSpec, tensor: Tensor) -> Latents:
    z: Latents = _check(tensor, "FP32", (-1, spec.latent_dim))
    if not np.isfinite(z).all():
        raise BadRequest("input z holds a NaN or an infinity")
    return np.ascontiguousarray(z)


def _seeds(tensor: Tensor) -> seeding.Seeds:
    seeds = _check(tensor, "INT64", (-1,))
    if (seeds < 0).any():
        raise BadRequest(f"input seed holds a negative seed; seeds are 0 .. {seeding.MAX_SEED}")
    return seeds.astype(np.uint64)


def _labels(spec: GeneratorSpec, tensor: Tensor | None, n: int) -> Labels | None:
    if tensor is None:
        return None
    labels: Labels = _check(tensor, "INT64", (n,))
    assert spec.num_classes is not None  # label is an input of conditional models only
    bad = labels[(labels < 0) | (labels >= spec.num_classes)]
    if bad.size:
        raise BadRequest(
            f"input label holds {int(bad[0])}; classes are 0 .. {spec.num_classes - 1}"
        )
    return np.ascontiguousarray(labels)


def _outputs(wanted: Wanted | None, default: str) -> list[tuple[str, bool | None]]:
    if not wanted:
        return [(default, None)]
    seen: set[str] = set()
    for name, _ in wanted:
        if name not in OUTPUTS:
            raise BadRequest(f"unknown output {name!r}; the outputs are {', '.join(OUTPUTS)}")
        if name in seen:
            raise BadRequest(f"output {name} asked for twice")
        seen.add(name)
    return list(wanted)


def _output(name: str, binary: bool | None, images: Images | None, pixels: Pixels | None) -> Tensor:
    if name == OUTPUT_IMAGE:
        assert images is not None
        return Tensor(name, "FP32", images.shape, images, binary)
    assert pixels is not None
    if name == OUTPUT_PIXELS:
        return Tensor(name, "UINT8", pixels.shape, pixels, binary)
    pngs = [formats.png(image) for image in pixels]
    return Tensor(name, "BYTES", (len(pngs),), pngs, binary)
