"""Sampling a generator ONNX file for `gan-evaluate`: read through the contract
(`core.contract.inspect`, the service's own reader), run on the CPU in batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from core import contract
from core.contract import GeneratorSpec


class EvaluationError(ValueError):
    """A user-facing problem with a model or evaluator file, or the data. One line."""


def cpu_session(model_bytes: bytes, threads: int, where: str) -> ort.InferenceSession:
    """An onnxruntime CPU session with `threads` intra-op threads; errors only on stderr."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no warnings on stderr
    try:
        return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EvaluationError(f"{where}: onnxruntime cannot load it: {first}") from None


class GeneratorSampler:
    """One generator file: its contract spec and an onnxruntime session on its bytes."""

    def __init__(self, spec: GeneratorSpec, data: bytes, threads: int, batch_size: int) -> None:
        self.spec, self.data = spec, data
        self.threads, self.batch_size = threads, batch_size
        self.session = cpu_session(data, threads, str(spec.path))

    @classmethod
    def open(cls, path: Path, threads: int = 2, batch_size: int = 500) -> GeneratorSampler:
        """Read and check `path` against the contract (`contract.ModelError` if it breaks it)."""
        data = path.read_bytes()
        return cls(contract.inspect(path, data), data, threads, batch_size)

    def model(self) -> onnx.ModelProto:
        """The file's ONNX graph (for building an untrained twin)."""
        return onnx.load_model_from_string(self.data)

    def twin(self, model: onnx.ModelProto) -> GeneratorSampler:
        """A sampler of another graph with this file's signature (fresh weights, say)."""
        return GeneratorSampler(self.spec, model.SerializeToString(), self.threads, self.batch_size)

    def sample(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        """Images ``(N, C, H, W)`` float32 in [-1, 1] for latents ``(N, latent)`` (and labels
        ``(N,)`` for a conditional model)."""
        name = self.spec.path.name
        parts = []
        for start in range(0, len(z), self.batch_size):
            feed = {contract.INPUT_Z: z[start : start + self.batch_size]}
            if self.spec.conditional:
                assert labels is not None
                feed[contract.INPUT_LABEL] = labels[start : start + self.batch_size]
            try:
                (image,) = self.session.run([contract.OUTPUT_IMAGE], feed)
            except Exception as error:  # onnxruntime raises its own exception types
                first = str(error).splitlines()[0]
                raise EvaluationError(f"{name}: onnxruntime failed: {first}") from None
            parts.append(np.asarray(image, dtype=np.float32))
        images = np.concatenate(parts)
        if images.shape[1:] != self.spec.image_shape:
            raise EvaluationError(
                f"{name}: image output has shape {list(images.shape)}, the contract says "
                f"[batch, {', '.join(map(str, self.spec.image_shape))}]"
            )
        if not np.isfinite(images).all():
            raise EvaluationError(f"{name} produced non-finite pixel values")
        return np.clip(images, -1.0, 1.0)

    def describe(self) -> dict[str, Any]:
        """The report's `model` block."""
        spec = self.spec
        return {
            "path": str(spec.path),
            "sha256": spec.sha256,
            "name": spec.name,
            "arch": spec.arch,
            "conditional": spec.conditional,
            "latent_dim": spec.latent_dim,
            "num_classes": spec.num_classes,
            "metadata": spec.metadata,
        }
