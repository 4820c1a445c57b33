"""onnxruntime wrappers for `gan-evaluate`: a generator file (checked against
docs/onnx-contract.md) and the evaluator network, both run on the CPU in batches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from training.data import ImageDataset
from training.evaluator import file_sha256


class EvaluationError(ValueError):
    """A user-facing problem with a model or evaluator file. One line."""


def _session(model_bytes: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no warnings on stderr
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {prop.key: prop.value for prop in model.metadata_props}


class GeneratorFile:
    """A generator ONNX file: its graph signature, metadata and an onnxruntime session."""

    def __init__(self, model: onnx.ModelProto, path: Path, threads: int, batch_size: int) -> None:
        self.model, self.path, self.batch_size = model, path, batch_size
        self.metadata = _metadata(model)
        inputs = {i.name: i for i in model.graph.input}
        initializers = {i.name for i in model.graph.initializer}
        inputs = {k: v for k, v in inputs.items() if k not in initializers}
        outputs = [o.name for o in model.graph.output]
        name = path.name
        if "z" not in inputs or outputs != ["image"] or set(inputs) - {"z", "label"}:
            raise EvaluationError(
                f"{name} is not a generator: needs inputs z[, label] and output image, has "
                f"inputs {sorted(inputs)} and outputs {outputs}"
            )
        z_dims = inputs["z"].type.tensor_type.shape.dim
        if len(z_dims) != 2 or not z_dims[1].HasField("dim_value"):
            raise EvaluationError(f"{name}: input z must be [batch, latent_dim] with a fixed width")
        self.latent_dim = int(z_dims[1].dim_value)
        self.conditional = "label" in inputs
        meta = self.metadata
        if "latent_dim" in meta and meta["latent_dim"] != str(self.latent_dim):
            raise EvaluationError(f"{name}: metadata latent_dim {meta['latent_dim']} but z has "
                                  f"width {self.latent_dim}")  # fmt: skip
        if "conditional" in meta and (meta["conditional"] == "true") != self.conditional:
            raise EvaluationError(f"{name}: metadata conditional={meta['conditional']} "
                                  "disagrees with the graph's label input")  # fmt: skip
        try:
            self.num_classes = int(meta.get("num_classes", "10"))
            self.class_names: list[str] | None = (
                json.loads(meta["class_names"]) if "class_names" in meta else None
            )
        except ValueError as error:
            raise EvaluationError(f"{name}: unreadable metadata ({error})") from None
        self.arch = meta.get("arch")
        self.dataset = meta.get("dataset")
        try:
            self.session = _session(model.SerializeToString(), threads)
        except Exception as error:  # onnxruntime raises its own exception types
            raise EvaluationError(f"{name}: onnxruntime cannot load it: "
                                  f"{str(error).splitlines()[0]}") from None  # fmt: skip

    @classmethod
    def load(cls, path: Path, threads: int = 2, batch_size: int = 500) -> GeneratorFile:
        try:
            model = onnx.load(str(path))
        except Exception as error:  # protobuf's DecodeError and friends
            raise EvaluationError(
                f"{path}: not a readable ONNX file ({type(error).__name__})"
            ) from None
        return cls(model, path, threads, batch_size)

    def check_compatible(self, data: ImageDataset, evaluator: Evaluator) -> None:
        probe = self.sample(np.zeros((1, self.latent_dim), np.float32),
                            np.zeros(1, np.int64) if self.conditional else None)  # fmt: skip
        if probe.shape[1:] != data.image_shape:
            raise EvaluationError(f"{self.path.name} makes images of shape "
                                  f"{list(probe.shape[1:])}, {data.name} has "
                                  f"{list(data.image_shape)}")  # fmt: skip
        if self.conditional and self.num_classes != evaluator.num_classes:
            raise EvaluationError(f"{self.path.name} has {self.num_classes} classes, the evaluator "
                                  f"{evaluator.num_classes}")  # fmt: skip

    def sample(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        """Images ``(N, C, H, W)`` float32 for latents ``(N, latent)`` (and labels ``(N,)``)."""
        parts = []
        for start in range(0, len(z), self.batch_size):
            feed = {"z": z[start : start + self.batch_size]}
            if self.conditional:
                assert labels is not None
                feed["label"] = labels[start : start + self.batch_size]
            try:
                (image,) = self.session.run(["image"], feed)
            except Exception as error:
                raise EvaluationError(f"{self.path.name}: onnxruntime failed: "
                                      f"{str(error).splitlines()[0]}") from None  # fmt: skip
            parts.append(np.asarray(image, dtype=np.float32))
        images = np.concatenate(parts)
        if images.ndim != 4:
            raise EvaluationError(f"{self.path.name}: image output has shape {list(images.shape)}, "
                                  "expected [batch, C, H, W]")  # fmt: skip
        if not np.isfinite(images).all():
            raise EvaluationError(f"{self.path.name} produced non-finite pixel values")
        return np.clip(images, -1.0, 1.0)

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": file_sha256(self.path),
            "name": self.metadata.get("name", self.path.stem),
            "arch": self.arch,
            "conditional": self.conditional,
            "latent_dim": self.latent_dim,
            "num_classes": self.num_classes,
            "metadata": self.metadata,
        }


class Evaluator:
    """The evaluator CNN: images in [-1, 1] → (logits ``(N, K)``, features ``(N, F)``)."""

    def __init__(self, path: Path, threads: int = 2, batch_size: int = 500) -> None:
        self.path, self.batch_size = path, batch_size
        try:
            model = onnx.load(str(path))
            self.session = _session(model.SerializeToString(), threads)
        except Exception as error:
            raise EvaluationError(
                f"evaluator {path}: cannot load ({type(error).__name__})"
            ) from None
        outputs = [o.name for o in self.session.get_outputs()]
        if outputs != ["logits", "features"]:
            raise EvaluationError(f"evaluator {path}: outputs {outputs}, expected logits, features")
        self.metadata = _metadata(model)
        self.num_classes = int(self.session.get_outputs()[0].shape[1])
        self.sha256 = file_sha256(path)

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, features = [], []
        for start in range(0, len(images), self.batch_size):
            batch = np.ascontiguousarray(images[start : start + self.batch_size], dtype=np.float32)
            out = self.session.run(["logits", "features"], {"image": batch})
            logits.append(out[0])
            features.append(out[1])
        return np.concatenate(logits), np.concatenate(features)

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "test_accuracy": (
                float(self.metadata["test_accuracy"]) if "test_accuracy" in self.metadata else None
            ),
            "metadata": self.metadata,
        }
