"""Fixtures every test package shares: the tiny ONNX generators the contract, the service
and the benchmarks are tested on (tests/support/onnx_models.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import onnx_models as models


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A conditional ("fashion", the Fashion-MNIST class names) and an unconditional
    ("digits") tiny generator."""
    root = tmp_path_factory.mktemp("models")
    models.mlp_generator(root / "fashion.onnx", conditional=True)
    models.mlp_generator(root / "digits.onnx", seed=1)
    return root
