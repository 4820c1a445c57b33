"""A tiny class-conditional generator ONNX file, for the deployment tests (no torch).

The same builder as the service tests' (tests/service/models.py), under a fixed name, so the
e2e has a model to serve even without the shipped ones in models/:

    python -m tests.deploy.tiny_model OUT_DIR      # writes OUT_DIR/deploy-test.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.service.models import mlp_generator

NAME = "deploy-test"
LATENT = 16


def build(out_dir: Path) -> Path:
    """image = reshape(tanh(z @ W + E[label])); returns the file's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return mlp_generator(out_dir / f"{NAME}.onnx", name=NAME, latent=LATENT, conditional=True)


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
