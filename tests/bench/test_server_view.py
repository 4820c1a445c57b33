"""bench/server_view.py reads each stage's mean over a cell from a real gan-serve's /metrics;
bench/shape_changes.py times runs of a real onnxruntime session per batch size."""

from __future__ import annotations

from pathlib import Path

import httpx
import onnxruntime as ort
import pytest

from bench import server_view, shape_changes
from tests.support import onnx_models as models
from tests.support.gan_serve import gan_serve

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane


def test_stage_means_count_only_the_requests_between_two_readings(tmp_path: Path) -> None:
    models.mlp_generator(tmp_path / "mlp.onnx")
    env = {"GAN_MODEL_DIR": str(tmp_path), "GAN_PROVIDERS": "cpu", "GAN_RUN_SLOTS": "1"}
    with gan_serve(env, tmp_path / "server.log") as served:
        httpx.post(f"{served.url}/samples", params={"n": 2}, timeout=30).raise_for_status()
        before = server_view.histogram_totals(served.url)
        for _ in range(3):  # one at a time: each request is one run of exactly 5 rows
            httpx.post(f"{served.url}/samples", params={"n": 5}, timeout=30).raise_for_status()
        after = server_view.histogram_totals(served.url)
    means = server_view.stage_means(before, after)
    assert (
        after["gan_request_duration_seconds_count"] - before["gan_request_duration_seconds_count"]
        == 3
    )
    assert means["batch_rows"] == 5.0
    assert 0 < means["run_ms"] < means["request_ms"]
    assert set(means) == set(server_view.STAGES.values())


def test_shape_changes_times_each_size_and_the_alternation(tmp_path: Path) -> None:
    path = models.mlp_generator(tmp_path / "mlp.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    result = shape_changes.measure(session, repeats=3)
    assert sorted(result["per_size"]) == sorted(shape_changes.SIZES)
    for times in result["per_size"].values():
        assert times["first_ms"] > 0 and times["steady_ms"] > 0
    assert result["alternating_median_ms"] > 0
