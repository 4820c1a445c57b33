"""The ONNX generator contract: the one file where training, the service and evaluation meet.

`gan-export` writes through this module, `gan-serve` and `gan-evaluate` read through it
(docs/onnx-contract.md). It needs only onnx and numpy, so every install has it:

- the names: inputs `z` float32 [batch, latent] (+ `label` int64 [batch] when
  class-conditional), output `image` float32 [batch, C, H, W] in [-1, 1];
- the `metadata_props` keys (`Keys`) and `FORMAT_VERSION`;
- `GeneratorSpec` and its one reader, `inspect` (and `check_all` for a set of files): a file
  that breaks the contract is refused with one line naming the file (`ModelError`);
- the one float → uint8 pixel conversion (`to_uint8`) and the one grid layout (`grid`),
  kept in core/pixels.py (numpy only, for code without onnx) and named here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnx
from google.protobuf.message import DecodeError

from core.pixels import GRID_PADDING as GRID_PADDING
from core.pixels import U8Images as U8Images
from core.pixels import grid as grid
from core.pixels import grid_shape as grid_shape
from core.pixels import to_uint8 as to_uint8

INPUT_Z: Final = "z"
INPUT_LABEL: Final = "label"
OUTPUT_IMAGE: Final = "image"

# Written by gan-export. A reader refuses a file whose major version is newer than its own:
# bump the major number only for changes an older reader would misread.
FORMAT_VERSION: Final = "1"

NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

Images = npt.NDArray[np.float32]  # (N, C, H, W), values in [-1, 1]


class Keys:
    """The `metadata_props` keys of the contract; every value is a string (JSON if structured)."""

    FORMAT_VERSION: Final = "format_version"
    NAME: Final = "name"
    ARCH: Final = "arch"
    LATENT_DIM: Final = "latent_dim"
    IMAGE_SHAPE: Final = "image_shape"
    OUTPUT_RANGE: Final = "output_range"
    CONDITIONAL: Final = "conditional"
    NUM_CLASSES: Final = "num_classes"
    CLASS_NAMES: Final = "class_names"
    DATASET: Final = "dataset"
    DATASET_FINGERPRINT: Final = "dataset_fingerprint"
    EPOCHS: Final = "epochs"
    STEPS: Final = "steps"
    CONFIG_HASH: Final = "config_hash"
    TRAINING_RUN: Final = "training_run"
    CHECKPOINT_SHA256: Final = "checkpoint_sha256"
    WEIGHTS: Final = "weights"
    PARITY_MAX_ABS_DIFF: Final = "parity_max_abs_diff"
    EXPORTED_AT: Final = "exported_at"
    PACKAGE_VERSION: Final = "package_version"


class ModelError(Exception):
    """A model file that breaks the contract; the message is one line naming the file."""


@dataclass(frozen=True)
class GeneratorSpec:
    """What the contract says about one generator file, from its graph and metadata."""

    path: Path
    name: str
    sha256: str
    latent_dim: int
    image_shape: tuple[int, int, int]  # (C, H, W)
    conditional: bool
    num_classes: int | None  # None for unconditional models
    class_names: tuple[str, ...] | None
    metadata: dict[str, str] = field(repr=False)

    @property
    def arch(self) -> str | None:
        return self.metadata.get(Keys.ARCH)

    @property
    def dataset(self) -> str | None:
        return self.metadata.get(Keys.DATASET)


def _dims(value_info: onnx.ValueInfoProto) -> tuple[int, list[int | None]] | None:
    """(element type, dims with None for symbolic axes) of a tensor input/output."""
    tensor = value_info.type.tensor_type
    if not value_info.type.HasField("tensor_type") or not tensor.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    return tensor.elem_type, dims


def _json(meta: dict[str, str], key: str, where: str) -> Any:
    try:
        return json.loads(meta[key])
    except (json.JSONDecodeError, TypeError) as exc:
        raise ModelError(f"{where}: metadata {key!r} is not valid JSON: {meta[key]!r}") from exc


def _check_format_version(meta: dict[str, str], where: str) -> None:
    """Files without the key predate it (or come from elsewhere) and are read as version 1."""
    declared = meta.get(Keys.FORMAT_VERSION)
    if declared is None:
        return
    major = declared.split(".", 1)[0]
    if not major.isdigit():
        raise ModelError(f"{where}: metadata format_version {declared!r} is not a version number")
    if int(major) > int(FORMAT_VERSION.split(".", 1)[0]):
        raise ModelError(
            f"{where}: format_version {declared} is newer than this reader's {FORMAT_VERSION}; "
            "upgrade ganserve to read it"
        )


def _check_signature(graph: onnx.GraphProto, where: str) -> tuple[int, list[int | None], bool]:
    """Return (latent_dim, image dims, conditional) or refuse a non-generator."""
    initializers = {init.name for init in graph.initializer}
    inputs = {i.name: i for i in graph.input if i.name not in initializers}
    outputs = {o.name: o for o in graph.output}
    want = (
        f"want inputs {INPUT_Z} float32 [batch, latent] (+ {INPUT_LABEL} int64 [batch]), "
        f"output {OUTPUT_IMAGE} float32 [batch, C, H, W]"
    )
    signature = f"inputs {sorted(inputs)}, outputs {sorted(outputs)}"
    if set(inputs) not in ({INPUT_Z}, {INPUT_Z, INPUT_LABEL}) or set(outputs) != {OUTPUT_IMAGE}:
        raise ModelError(f"{where}: not a generator: {signature}; {want}")
    z, image = _dims(inputs[INPUT_Z]), _dims(outputs[OUTPUT_IMAGE])
    if z is None or z[0] != onnx.TensorProto.FLOAT or len(z[1]) != 2 or not z[1][1]:
        raise ModelError(f"{where}: not a generator: 'z' is not float32 [batch, latent]; {want}")
    if image is None or image[0] != onnx.TensorProto.FLOAT or len(image[1]) != 4:
        raise ModelError(f"{where}: not a generator: 'image' is not float32 [batch, C, H, W]")
    conditional = INPUT_LABEL in inputs
    if conditional:
        label = _dims(inputs[INPUT_LABEL])
        if label is None or label[0] != onnx.TensorProto.INT64 or len(label[1]) != 1:
            raise ModelError(f"{where}: not a generator: 'label' must be int64 [batch]")
    latent_dim = z[1][1]
    assert latent_dim is not None
    return latent_dim, image[1][1:], conditional


def _image_shape(
    meta: dict[str, str], graph_dims: list[int | None], where: str
) -> tuple[int, int, int]:
    """(C, H, W) from the graph, completed or confirmed by the metadata."""
    dims = graph_dims
    if Keys.IMAGE_SHAPE in meta:
        declared = _json(meta, Keys.IMAGE_SHAPE, where)
        if not (
            isinstance(declared, list)
            and len(declared) == 3
            and all(isinstance(d, int) for d in declared)
        ):
            raise ModelError(f"{where}: metadata image_shape is not [C, H, W]: {declared}")
        if any(g is not None and g != d for g, d in zip(graph_dims, declared, strict=True)):
            raise ModelError(f"{where}: metadata image_shape {declared} != graph's {graph_dims}")
        dims = list(declared)
    if any(not d for d in dims):
        raise ModelError(f"{where}: image [C, H, W] fixed neither in the graph nor in metadata")
    channels, height, width = (int(d or 0) for d in dims)
    if channels not in (1, 3, 4):
        raise ModelError(f"{where}: {channels} image channels; PNG needs 1, 3 or 4")
    return channels, height, width


def _classes(meta: dict[str, str], where: str) -> tuple[int, tuple[str, ...] | None]:
    """(num_classes, class names) of a conditional model."""
    names = _json(meta, Keys.CLASS_NAMES, where) if Keys.CLASS_NAMES in meta else None
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise ModelError(f"{where}: metadata class_names must be a JSON list of strings")
    if Keys.NUM_CLASSES in meta:
        if not meta[Keys.NUM_CLASSES].isdigit() or int(meta[Keys.NUM_CLASSES]) < 1:
            raise ModelError(f"{where}: metadata num_classes must be a positive integer")
        num_classes = int(meta[Keys.NUM_CLASSES])
    elif names:
        num_classes = len(names)
    else:
        raise ModelError(f"{where}: conditional, but no num_classes or class_names metadata")
    if names is not None and len(names) != num_classes:
        raise ModelError(f"{where}: {len(names)} class_names for num_classes={num_classes}")
    return num_classes, tuple(names) if names else None


def inspect(path: Path, data: bytes | None = None) -> GeneratorSpec:
    """Read and check one file (or its bytes, `data`) against the contract, without running it."""
    where = str(path)
    try:
        data = path.read_bytes() if data is None else data
        model = onnx.load_model_from_string(data)
    except OSError as exc:
        raise ModelError(f"{where}: cannot read: {exc.strerror or exc}") from exc
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{where}: not an ONNX model ({type(exc).__name__})") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    _check_format_version(meta, where)
    graph = model.graph
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer):
        raise ModelError(f"{where}: weights in an external data file; export a self-contained one")
    latent_dim, image_dims, conditional = _check_signature(graph, where)

    if Keys.LATENT_DIM in meta and meta[Keys.LATENT_DIM] != str(latent_dim):
        raise ModelError(
            f"{where}: metadata latent_dim {meta[Keys.LATENT_DIM]} != graph z width {latent_dim}"
        )
    image_shape = _image_shape(meta, image_dims, where)
    if Keys.CONDITIONAL in meta and meta[Keys.CONDITIONAL].lower() != str(conditional).lower():
        has = "has" if conditional else "has no"
        declared = meta[Keys.CONDITIONAL]
        raise ModelError(f"{where}: metadata conditional={declared} but graph {has} label")
    num_classes, class_names = _classes(meta, where) if conditional else (None, None)

    name = meta.get(Keys.NAME) or path.stem
    if not NAME_PATTERN.fullmatch(name):
        raise ModelError(f"{where}: model name {name!r} must match {NAME_PATTERN.pattern}")
    return GeneratorSpec(
        path=path,
        name=name,
        sha256=hashlib.sha256(data).hexdigest(),
        latent_dim=latent_dim,
        image_shape=image_shape,
        conditional=conditional,
        num_classes=num_classes,
        class_names=class_names,
        metadata=meta,
    )


def check_all(paths: Sequence[Path]) -> list[GeneratorSpec]:
    """Inspect every file; refuse the set if two files claim one model name."""
    specs: dict[str, GeneratorSpec] = {}
    for path in paths:
        spec = inspect(path)
        if spec.name in specs:
            other = specs[spec.name].path
            raise ModelError(f"{path}: model name {spec.name!r} is also the name of {other}")
        specs[spec.name] = spec
    return list(specs.values())
