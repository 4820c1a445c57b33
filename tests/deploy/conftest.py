"""Shared helpers of the deployment tests (tests/deploy/).

These tests drive external tools: hadolint, promtool and prometheus, docker compose,
kubectl (kustomize) and kubernetes-validate, a Docker engine. `.ci/run` installs all of
them, so in CI (CI set) a missing tool fails its test; on a developer machine it skips it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.support import onnx_models

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
IN_CI = bool(os.environ.get("CI"))

# The benchmark the autoscaling targets derive from (deploy/kserve/, deploy/k8s/overlays/keda/,
# docs/deploy.md "KServe and autoscaling"): a 2-CPU pod of the shipped model saturates at
# about 8 requests of n = 16 images in flight.
BENCH_COMMAND = (
    "python -m bench workers --model models/fashion-cdcgan.onnx --concurrency 1 8 32 128"
)
SATURATION_REQUESTS = 8
IMAGES_PER_REQUEST = 16


def require(tool: str) -> str:
    """The path of `tool` (on PATH or beside this Python); fail in CI, skip elsewhere."""
    path = shutil.which(tool) or shutil.which(tool, path=str(Path(sys.executable).parent))
    if path is None:
        message = f"{tool} is not installed (.ci/run installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding one tiny conditional generator, `deploy-test`
    (tests/support/onnx_models.py)."""
    directory = tmp_path_factory.mktemp("models")
    onnx_models.deploy_model(directory)
    return directory
