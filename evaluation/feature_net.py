"""The evaluator network at evaluation time: a small Fashion-MNIST CNN stored as one ONNX
file (`evaluation/assets/evaluator.onnx`), run with onnxruntime. Images in [-1, 1] →
class logits ``(N, K)`` and penultimate features ``(N, F)``, which FCD, KID, the IS
analogue, precision/recall, the class histogram and the two-sample test look through.

Scores are only comparable under the same network, so every report carries its sha256.
Retraining it needs torch: `python -m evaluation.train_feature_net` (docs/evaluation.md).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from evaluation.sampler import EvaluationError, cpu_session

DEFAULT_PATH = Path(__file__).resolve().parent / "assets" / "evaluator.onnx"
INPUT = "image"
OUTPUTS = ("logits", "features")


class FeatureNet:
    """The evaluator network's ONNX file and a CPU session on it."""

    def __init__(self, path: Path, threads: int = 2, batch_size: int = 500) -> None:
        self.path, self.batch_size = path, batch_size
        try:
            data = path.read_bytes()
            model = onnx.load_model_from_string(data)
        except Exception as error:  # OSError, protobuf's DecodeError and friends
            raise EvaluationError(
                f"evaluator {path}: cannot load ({type(error).__name__})"
            ) from None
        self.session = cpu_session(data, threads, f"evaluator {path}")
        outputs = [o.name for o in self.session.get_outputs()]
        if tuple(outputs) != OUTPUTS:
            raise EvaluationError(f"evaluator {path}: outputs {outputs}, expected logits, features")
        self.metadata = {prop.key: prop.value for prop in model.metadata_props}
        self.num_classes = int(self.session.get_outputs()[0].shape[1])
        self.sha256 = hashlib.sha256(data).hexdigest()

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits ``(N, K)``, features ``(N, F)``) of images ``(N, 1, 28, 28)`` in [-1, 1]."""
        logits, features = [], []
        for start in range(0, len(images), self.batch_size):
            batch = np.ascontiguousarray(images[start : start + self.batch_size], dtype=np.float32)
            out = self.session.run(list(OUTPUTS), {INPUT: batch})
            logits.append(out[0])
            features.append(out[1])
        return np.concatenate(logits), np.concatenate(features)

    def describe(self) -> dict[str, Any]:
        """The report's `evaluator` block."""
        accuracy = self.metadata.get("test_accuracy")
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "test_accuracy": float(accuracy) if accuracy is not None else None,
            "metadata": self.metadata,
        }
