"""KServe's own Python client (`kserve`: InferenceRESTClient with the v2 protocol, and
InferenceGRPCClient) against the real server, over HTTP (binary and JSON tensors) and gRPC.
The client runs in a process of its own (tests/support/kserve_talk.py says why).

    python -m pytest tests/service/grpc/test_kserve_client.py -q
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.service.api.test_v2_http import run_model
from tests.service.conftest import Server, samples_npy
from tests.service.grpc.conftest import grpc_url

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

REPO = Path(__file__).resolve().parents[3]


def test_kserves_clients_get_the_samples_images_and_the_onnx_files_image(
    grpc_server: Server, model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "kserve.npz"
    command = [sys.executable, "-m", "tests.support.kserve_talk", grpc_server.url]
    run = subprocess.run(
        [*command, grpc_url(grpc_server), str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    got = np.load(out)
    assert got["rest_ready"] and got["grpc_ready"]
    expected = samples_npy(grpc_server, n=3, seed=11, model="digits")
    for binary in (True, False):  # REST, binary and JSON tensors
        assert np.array_equal(got[f"rest_pixels_{binary}"].reshape(expected.shape), expected)
    assert np.array_equal(got["grpc_image"], run_model(model_dir / "digits.onnx", got["z"]))
    expected = samples_npy(grpc_server, n=2, seed=12, model="digits")
    assert np.array_equal(got["grpc_pixels"], expected)
