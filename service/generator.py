"""Generator ONNX files: find them, check them against the contract, run them in onnxruntime.

The contract (docs/onnx-contract.md): inputs `z` float32 [batch, latent] and, for
class-conditional models, `label` int64 [batch]; output `image` float32 [batch, C, H, W] in
[-1, 1]; facts about the model in `metadata_props`. A file that breaks it is refused with one
line naming the file (`ModelError`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError

log = logging.getLogger("service.generator")

PROVIDERS = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
_SHORT = {full: short for short, full in PROVIDERS.items()}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

Images = npt.NDArray[np.float32]  # (batch, C, H, W), values in [-1, 1]


class ModelError(Exception):
    """A model file that cannot be served; the message is one line naming the file."""


@dataclass(frozen=True)
class ModelSpec:
    """What the service knows about one generator file, from its graph and metadata."""

    path: Path
    name: str
    sha256: str
    latent_dim: int
    image_shape: tuple[int, int, int]  # (C, H, W)
    conditional: bool
    num_classes: int | None
    class_names: tuple[str, ...] | None
    metadata: dict[str, str] = field(repr=False)


def discover(model_dir: Path, model_path: Path | None) -> list[Path]:
    """The files to serve: `model_path` alone if set, else every *.onnx in `model_dir`."""
    if model_path is not None:
        if not model_path.is_file():
            raise ModelError(f"{model_path}: no such model file")
        return [model_path]
    if not model_dir.is_dir():
        return []
    return sorted(p for p in model_dir.glob("*.onnx") if p.is_file())


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


def _check_signature(graph: onnx.GraphProto, where: str) -> tuple[int, list[int | None], bool]:
    """Return (latent_dim, image dims, conditional) or refuse a non-generator."""
    initializers = {init.name for init in graph.initializer}
    inputs = {i.name: i for i in graph.input if i.name not in initializers}
    outputs = {o.name: o for o in graph.output}
    want = (
        "want inputs z float32 [batch, latent] (+ label int64 [batch]), "
        "output image float32 [batch, C, H, W]"
    )
    signature = f"inputs {sorted(inputs)}, outputs {sorted(outputs)}"
    if set(inputs) not in ({"z"}, {"z", "label"}) or set(outputs) != {"image"}:
        raise ModelError(f"{where}: not a generator: {signature}; {want}")
    z, image = _dims(inputs["z"]), _dims(outputs["image"])
    if z is None or z[0] != onnx.TensorProto.FLOAT or len(z[1]) != 2 or not z[1][1]:
        raise ModelError(f"{where}: not a generator: 'z' is not float32 [batch, latent]; {want}")
    if image is None or image[0] != onnx.TensorProto.FLOAT or len(image[1]) != 4:
        raise ModelError(f"{where}: not a generator: 'image' is not float32 [batch, C, H, W]")
    conditional = "label" in inputs
    if conditional:
        label = _dims(inputs["label"])
        if label is None or label[0] != onnx.TensorProto.INT64 or len(label[1]) != 1:
            raise ModelError(f"{where}: not a generator: 'label' must be int64 [batch]")
    latent_dim = z[1][1]
    assert latent_dim is not None
    return latent_dim, image[1][1:], conditional


def inspect(path: Path, data: bytes | None = None) -> ModelSpec:
    """Read and check one file against the contract, without running it."""
    where = str(path)
    try:
        data = path.read_bytes() if data is None else data
        model = onnx.load_model_from_string(data)
    except OSError as exc:
        raise ModelError(f"{where}: cannot read: {exc.strerror or exc}") from exc
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{where}: not an ONNX model ({type(exc).__name__})") from exc
    graph = model.graph
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer):
        raise ModelError(f"{where}: weights in an external data file; export a self-contained one")
    latent_dim, image_dims, conditional = _check_signature(graph, where)
    meta = {p.key: p.value for p in model.metadata_props}

    if "latent_dim" in meta and meta["latent_dim"] != str(latent_dim):
        raise ModelError(
            f"{where}: metadata latent_dim {meta['latent_dim']} != graph z width {latent_dim}"
        )
    if "image_shape" in meta:
        declared = _json(meta, "image_shape", where)
        if not (
            isinstance(declared, list)
            and len(declared) == 3
            and all(isinstance(d, int) for d in declared)
        ):
            raise ModelError(f"{where}: metadata image_shape is not [C, H, W]: {declared}")
        if any(g is not None and g != d for g, d in zip(image_dims, declared, strict=True)):
            raise ModelError(f"{where}: metadata image_shape {declared} != graph's {image_dims}")
        image_dims = list(declared)
    if any(not d for d in image_dims):
        raise ModelError(f"{where}: image [C, H, W] fixed neither in the graph nor in metadata")
    channels, height, width = (int(d or 0) for d in image_dims)
    if channels not in (1, 3, 4):
        raise ModelError(f"{where}: {channels} image channels; PNG needs 1, 3 or 4")
    if "conditional" in meta and meta["conditional"].lower() != str(conditional).lower():
        has = "has" if conditional else "has no"
        declared = meta["conditional"]
        raise ModelError(f"{where}: metadata conditional={declared} but graph {has} label")

    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    if conditional:
        names = _json(meta, "class_names", where) if "class_names" in meta else None
        if names is not None and not (
            isinstance(names, list) and all(isinstance(n, str) for n in names)
        ):
            raise ModelError(f"{where}: metadata class_names must be a JSON list of strings")
        if "num_classes" in meta:
            if not meta["num_classes"].isdigit() or int(meta["num_classes"]) < 1:
                raise ModelError(f"{where}: metadata num_classes must be a positive integer")
            num_classes = int(meta["num_classes"])
        elif names:
            num_classes = len(names)
        else:
            raise ModelError(f"{where}: conditional, but no num_classes or class_names metadata")
        if names is not None and len(names) != num_classes:
            raise ModelError(f"{where}: {len(names)} class_names for num_classes={num_classes}")
        class_names = tuple(names) if names else None

    name = meta.get("name") or path.stem
    if not _NAME.fullmatch(name):
        raise ModelError(f"{where}: model name {name!r} must match {_NAME.pattern}")
    return ModelSpec(
        path=path,
        name=name,
        sha256=hashlib.sha256(data).hexdigest(),
        latent_dim=latent_dim,
        image_shape=(channels, height, width),
        conditional=conditional,
        num_classes=num_classes,
        class_names=class_names,
        metadata=meta,
    )


def check_all(paths: Sequence[Path]) -> list[ModelSpec]:
    """Inspect every file; refuse the set if two files claim one model name."""
    specs: dict[str, ModelSpec] = {}
    for path in paths:
        spec = inspect(path)
        if spec.name in specs:
            other = specs[spec.name].path
            raise ModelError(f"{path}: model name {spec.name!r} is also the name of {other}")
        specs[spec.name] = spec
    return list(specs.values())


def warmup_sizes(max_batch: int) -> list[int]:
    """The batch sizes warmed up at start: powers of two below max_batch, and max_batch.

    On CUDA the generator pads every run up to one of these, so they are the only shapes it
    ever sees (no cuDNN algorithm search at serving time); on the CPU they size the arena.
    """
    sizes = [1 << k for k in range(max_batch.bit_length()) if (1 << k) < max_batch]
    return [*sizes, max_batch]


class Generator:
    """One onnxruntime session serving one generator file."""

    def __init__(
        self,
        spec: ModelSpec,
        session: ort.InferenceSession,
        requested: Sequence[str],
        *,
        io_binding: bool | None = None,
        pad_to: Sequence[int] = (),
    ) -> None:
        self.spec = spec
        self.session = session
        active = session.get_providers()[0]
        self.provider = _SHORT.get(active, active)
        self.fallback = bool(requested) and self.provider != requested[0]
        # IO binding keeps the output on the device until one copy back; it only pays on GPUs.
        self.io_binding = self.provider == "cuda" if io_binding is None else io_binding
        self._device = "cuda" if self.provider == "cuda" else "cpu"
        self._pad_to = sorted(pad_to)

    def _padded(self, batch: int) -> int:
        return next((size for size in self._pad_to if size >= batch), batch)

    def run(self, z: npt.NDArray[np.float32], labels: npt.NDArray[np.int64] | None) -> Images:
        """One onnxruntime run: z (B, latent) [+ labels (B,)] -> images (B, C, H, W)."""
        batch = z.shape[0]
        size = self._padded(batch)
        if size != batch:  # pad rows are zeros and are dropped after the run
            z = np.concatenate([z, np.zeros((size - batch, z.shape[1]), np.float32)])
            if labels is not None:
                labels = np.concatenate([labels, np.zeros(size - batch, np.int64)])
        feeds: dict[str, npt.NDArray[Any]] = {"z": np.ascontiguousarray(z)}
        if self.spec.conditional:
            assert labels is not None
            feeds["label"] = np.ascontiguousarray(labels)
        if self.io_binding:
            binding = self.session.io_binding()
            for name, array in feeds.items():
                value = ort.OrtValue.ortvalue_from_numpy(array, self._device, 0)
                binding.bind_ortvalue_input(name, value)
            binding.bind_output("image", self._device, 0)
            self.session.run_with_iobinding(binding)
            out = binding.copy_outputs_to_cpu()[0]
        else:
            out = self.session.run(["image"], feeds)[0]
        images = np.asarray(out, dtype=np.float32)[:batch]
        if images.shape != (batch, *self.spec.image_shape):
            raise RuntimeError(f"{self.spec.name}: run returned shape {images.shape}")
        return images

    def warm_up(self, sizes: Sequence[int]) -> float:
        """Run once at each batch size; return images/s measured at the largest."""
        rate = 0.0
        for size in sorted(sizes):
            z = np.zeros((size, self.spec.latent_dim), np.float32)
            labels = np.zeros(size, np.int64) if self.spec.conditional else None
            started = time.perf_counter()
            self.run(z, labels)
            rate = size / max(time.perf_counter() - started, 1e-9)
        return rate


def load(
    path: Path,
    providers: Sequence[str],
    intra_op_threads: int,
    pad_to: Sequence[int] = (),
    io_binding: bool | None = None,
) -> Generator:
    """Check `path` against the contract and open an onnxruntime session on it."""
    data = path.read_bytes()
    spec = inspect(path, data)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1  # one run at a time per model; parallelism is intra-op
    available = set(ort.get_available_providers())
    wanted = [PROVIDERS[p] for p in providers]
    # Providers this onnxruntime build lacks are left out (onnxruntime would only warn):
    # they count as a fallback like a CUDA provider that fails to load.
    usable = [p for p in wanted if p in available] or [PROVIDERS["cpu"]]
    try:
        session = ort.InferenceSession(data, options, providers=usable)
    except Exception as exc:  # onnxruntime raises its own exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: onnxruntime cannot load it: {first}") from exc
    pad = pad_to if session.get_providers()[0] == PROVIDERS["cuda"] else ()
    generator = Generator(spec, session, list(providers), io_binding=io_binding, pad_to=pad)
    log.info("model %s from %s: provider %s", spec.name, path, generator.provider)
    if generator.fallback:
        log.warning(
            "model %s: asked for providers %s but onnxruntime runs it on %s (fallback)",
            spec.name,
            ",".join(providers),
            generator.provider,
        )
    return generator
